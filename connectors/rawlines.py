"""The raw-message JSONL format shared by the simulator, ``connectors replay`` and ``coattail normalize``.

Each line is ``{"exchange": ..., "received_at": "<ISO Z>", "raw": <message as the exchange sent it>}``
or (for normalize) a bare exchange message. The exchange name is case-insensitive (``Binance`` is
``binance``); ``received_at`` must be an ISO-8601 time with an offset inside the contract's window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from connectors.trade import NormalizeError, iso_timestamp


@dataclass(slots=True, frozen=True)
class RawLine:
    exchange: str | None
    received_at: str | None
    message: Any


def parse_line(line: str | bytes) -> RawLine:
    """One JSONL line; raises NormalizeError (with a reason) for lines that are not JSON objects or arrays."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise NormalizeError(f"not JSON: {exc}") from None
    if type(data) is list:  # a bare array message (Kraken v1): the exchange's normaliser judges it
        return RawLine(None, None, data)
    if type(data) is not dict:
        raise NormalizeError(f"expected a JSON object, got {type(data).__name__}")
    if "raw" in data and "exchange" in data:
        exchange = data["exchange"]
        if type(exchange) is not str:
            raise NormalizeError("exchange: expected a string")
        exchange = exchange.lower()
        received = data.get("received_at")
        received_at = iso_timestamp(received, "received_at") if received is not None else None
        return RawLine(exchange, received_at, data["raw"])
    return RawLine(None, None, data)


def envelope(exchange: str, received_at: str, raw: Any) -> bytes:
    return orjson.dumps({"exchange": exchange, "received_at": received_at, "raw": raw})


REASON_MAX_CHARS = 500


def dead_letter_reason(exc: Exception) -> str:
    """One bounded line for a dead letter; a non-NormalizeError is a bug of ours and says so."""
    text = str(exc) if isinstance(exc, NormalizeError) else f"internal error: {type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 3] + "..."
