"""``coattail normalize --source ethereum|solana``'s loop: raw RPC objects (JSONL) -> OnchainEvent JSONL.

Every input line ends exactly once as one of: events (a block line can hold several), a dead letter
(``{"reason", "raw"}`` to ``--dead-letter``) or ignored (a blank line, a log of an event we do not
decode, an NFT transfer, a Sync - whose reserves go to the Swap after it -, a zero-value transaction,
a vote).
The counts add up: lines = event_lines + ignored + dead_lettered.

Prices for ``usd_value`` come from a file of TradeEvent JSON lines (``--prices``, e.g. what
``coattail normalize --exchange binance`` printed): the normaliser values each event from the last
trade of its token's reference instrument at or before the block time (null without one).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson

from coattail.chains.valuation import PriceBook
from coattail.contracts.codec import ContractError, dumps, loads_trade

REASON_MAX_CHARS = 500


class ChainNormalizer(Protocol):
    """What a chain's offline normaliser offers (EthereumNormalizer, SolanaNormalizer)."""

    def normalize_line(self, obj: Any) -> list[Any]: ...


def run_normalize(
    src: Iterable[bytes], out: BinaryIO, norm: ChainNormalizer, dlq: BinaryIO | None
) -> dict[str, int]:
    """Normalise every line of ``src`` in order (a Sync before its Swap, a transaction before its logs)."""
    counts = {"lines": 0, "events": 0, "event_lines": 0, "ignored": 0, "dead_lettered": 0}
    for line in src:
        counts["lines"] += 1
        if not line.strip():
            counts["ignored"] += 1
            continue
        try:
            events = norm.normalize_line(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            _dead(counts, dlq, f"not JSON: {exc}", line)
            continue
        except ValueError as exc:
            _dead(counts, dlq, str(exc), line)
            continue
        except Exception as exc:  # a bug of ours must not stop the other lines; the reason says so
            _dead(counts, dlq, f"internal error: {type(exc).__name__}: {exc}", line)
            continue
        if not events:
            counts["ignored"] += 1
            continue
        counts["event_lines"] += 1
        counts["events"] += len(events)
        for event in events:
            out.write(dumps(event) + b"\n")
    return counts


def _dead(counts: dict[str, int], dlq: BinaryIO | None, reason: str, line: bytes) -> None:
    counts["dead_lettered"] += 1
    if dlq is None:
        return
    text = " ".join(reason.split())
    text = text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 3] + "..."
    raw = line.decode("utf-8", "replace").rstrip("\n")
    dlq.write(orjson.dumps({"reason": text, "raw": raw}) + b"\n")


def load_price_book(path: Path, book: PriceBook | None = None) -> PriceBook:
    """A PriceBook from a file of TradeEvent JSON lines; ValueError (one line, with the line number)."""
    # Keep the file's whole history: blocks of any hour in it are valued (max_age still applies).
    book = book or PriceBook(keep=timedelta(days=36_500))
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        book.update_trade(loads_trade(line))
                    except ContractError as exc:
                        raise ValueError(f"{path}:{number}: not a TradeEvent: {exc}") from None
    except OSError as exc:
        raise ValueError(f"cannot read the prices file {path}: {exc.strerror}") from None
    return book
