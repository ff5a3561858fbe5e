"""The connectors' hot-path trade record and the checks that make it a valid TradeEvent.

Building a pydantic model per message costs more than parsing the message itself, so normalisers
produce ``Trade`` (a slotted record) after explicit checks of everything the TradeEvent contract
demands: positive finite exact decimals, BASE-QUOTE symbol, known side, UTC timestamps and the
deterministic event_id. ``Trade.to_json`` writes exactly the bytes ``coattail.contracts.dumps`` would;
``Trade.to_event`` gives the fully validated pydantic model off the hot path (tests, tools).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from coattail.contracts import TradeEvent
from coattail.contracts.ids import NAMESPACE
from coattail.contracts.spark import DECIMAL_SCALE
from coattail.contracts.trade import EXCHANGE_PATTERN, FUTURE_MARGIN_SECONDS, SYMBOL_PATTERN, Side
from coattail.contracts.types import (
    DECIMAL_MAX_INTEGER_DIGITS,
    TIMESTAMP_CEILING,
    TIMESTAMP_FLOOR,
    UTC_TEXT_WIDTH,
    format_utc,
)
from coattail.errors import CoattailError

_SYMBOL_RE = re.compile(SYMBOL_PATTERN)
_EXCHANGE_RE = re.compile(EXCHANGE_PATTERN)
# The contract's timestamp window, as epoch ms and as canonical text (string order is time order).
FLOOR_MS = int(TIMESTAMP_FLOOR.timestamp()) * 1000
CEILING_MS = int(TIMESTAMP_CEILING.timestamp()) * 1000  # exclusive
_FLOOR_ISO = format_utc(TIMESTAMP_FLOOR)
_CEILING_ISO = format_utc(TIMESTAMP_CEILING)
_MARGIN = timedelta(seconds=FUTURE_MARGIN_SECONDS)
_CANONICAL_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_ISO_MAX_CHARS = 64
# Exchanges send plain decimals. Bounded as text *before* Decimal sees it: ASCII digits only (Decimal
# itself takes Arabic/full-width digits and "1_000"), no exponent (a 9-character "1E+999999" would
# render as a megabyte), and no more digits than Spark's DecimalType(38, 18) keeps exactly.
_PLAIN = rf"[0-9]{{1,{DECIMAL_MAX_INTEGER_DIGITS}}}(?:\.[0-9]{{1,{DECIMAL_SCALE}}})?"
plain_decimal = re.compile(_PLAIN).fullmatch
# Two plain decimals joined by one space (no space can occur inside one): one regex call per trade.
plain_decimal_pair = re.compile(f"{_PLAIN} {_PLAIN}").fullmatch
_DECIMAL_MAX_CHARS = DECIMAL_MAX_INTEGER_DIGITS + 1 + DECIMAL_SCALE
_SIGNED_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_SCIENTIFIC = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]+")
_NOT_FINITE = frozenset(("nan", "snan", "inf", "infinity"))
# price × quantity must fit Spark's 20 integer digits too.
QUOTE_VOLUME_LIMIT = Decimal(10**DECIMAL_MAX_INTEGER_DIGITS)
# Trade ids become event ids: bounded so that a 5,000-digit id is refused, not converted.
TRADE_ID_LIMIT = 2**63
_CACHE_LIMIT = 4096  # per-key caches (event-id hashers, symbols) are cleared beyond this many keys


class NormalizeError(CoattailError, ValueError):
    """A raw message that claims to be a trade but cannot become a valid TradeEvent; says why in one line."""


class Trade(NamedTuple):
    """One normalised trade. Timestamps are already canonical ISO text (``format_utc``: µs and ``Z``).

    A NamedTuple because it is built once per trade on the hot path (a frozen dataclass costs ~5x
    more to construct). ``event_id`` is derived on demand from exchange, symbol and ``trade_id``.
    """

    exchange: str
    symbol: str
    price: Decimal
    quantity: Decimal
    quote_volume: Decimal
    side: Side
    timestamp: str
    ingestion_timestamp: str
    trade_id: str  # the exchange id the event_id derives from, e.g. "agg:123" (Binance aggTrade) or "123"

    @property
    def event_id(self) -> str:
        ids = _EVENT_IDS.get((self.exchange, self.symbol))
        if ids is None:
            if len(_EVENT_IDS) >= _CACHE_LIMIT:
                _EVENT_IDS.clear()
            ids = _EVENT_IDS[(self.exchange, self.symbol)] = EventIds(self.exchange, self.symbol)
        return ids(self.trade_id)

    @property
    def dedupe_key(self) -> tuple[str, str]:
        """Cheaper than event_id and equivalent within one exchange's connector."""
        return (self.symbol, self.trade_id)

    def as_json_dict(self) -> dict[str, str]:
        return {
            "event_id": self.event_id,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "price": format(self.price, "f"),
            "quantity": format(self.quantity, "f"),
            "quote_volume": format(self.quote_volume, "f"),
            "side": self.side,
            "timestamp": self.timestamp,
            "ingestion_timestamp": self.ingestion_timestamp,
        }

    def to_json(self) -> bytes:
        """The stream payload; byte-identical to ``dumps(self.to_event())``."""
        return orjson.dumps(self.as_json_dict())

    def to_event(self) -> TradeEvent:
        """Fully validated contract model (slow path)."""
        return TradeEvent.model_validate(self.as_json_dict())


# -- deterministic ids -------------------------------------------------------------------------------
class EventIds:
    """``trade_event_id`` for one (exchange, symbol) with the hash prefix pre-fed: same ids, ~5x faster."""

    __slots__ = ("_base",)

    def __init__(self, exchange: str, symbol: str) -> None:
        prefix = f"trade|{exchange.lower()}|{symbol.upper()}|".encode()
        self._base = hashlib.sha1(NAMESPACE.bytes + prefix, usedforsecurity=False)

    def __call__(self, trade_id: str) -> str:
        h = self._base.copy()
        h.update(trade_id.encode())
        digest = h.digest()
        x = digest.hex()
        # UUIDv5: version nibble 5, RFC 4122 variant bits 10xx (same result as uuid.uuid5).
        variant = "89ab"[(digest[8] >> 4) & 3]
        return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{variant}{x[17:20]}-{x[20:32]}"


_EVENT_IDS: dict[tuple[str, str], EventIds] = {}


# -- field checks ------------------------------------------------------------------------------------
def positive_decimal(value: Any, field: str) -> Decimal:
    """Exact positive decimal from a plain decimal string (floats refused: they are already inexact)."""
    if type(value) is str and plain_decimal(value) is not None:
        result = Decimal(value)
        if result:
            return result
    raise NormalizeError(decimal_problem(value, field))


def price_and_size(p: Any, q: Any, p_field: str, q_field: str) -> tuple[Decimal, Decimal, Decimal]:
    """Exact positive price, size and their product, every exchange's contract check in one place.

    One regex call for both values on the happy path (the hot path); anything unusual gets its
    precise reason from :func:`positive_decimal`.
    """
    if type(p) is str and type(q) is str and plain_decimal_pair(f"{p} {q}"):
        price, size = Decimal(p), Decimal(q)
    else:
        price, size = positive_decimal(p, p_field), positive_decimal(q, q_field)
    if not price or not size:
        positive_decimal(p, p_field), positive_decimal(q, q_field)  # zero: raises with the reason
    quote_volume = price * size
    if quote_volume >= QUOTE_VOLUME_LIMIT:
        raise NormalizeError(f"{p_field}, {q_field}: price × size has more than 20 integer digits")
    return price, size, quote_volume


def decimal_problem(value: Any, field: str) -> str:
    """Why ``value`` is not a positive plain decimal string (slow path: only for refused values)."""
    if type(value) is not str:
        if isinstance(value, float):
            return f"{field}: floats are not accepted, expected a decimal string"
        if value is None:
            return f"{field}: missing"
        return f"{field}: expected a decimal string, got {type(value).__name__}"
    shown = repr(value[:40])
    if len(value) > _DECIMAL_MAX_CHARS:
        return f"{field}: {shown} is longer than {_DECIMAL_MAX_CHARS} characters"
    if value.strip().lstrip("+-").lower() in _NOT_FINITE or value.lstrip().startswith("-"):
        return f"{field}: {shown} is not a positive finite number"
    if value.isascii() and _SCIENTIFIC.fullmatch(value):
        return f"{field}: {shown} is in scientific notation, expected a plain decimal"
    if value.isascii() and _SIGNED_DECIMAL.fullmatch(value):
        if value.startswith("+"):
            return f"{field}: {shown} has a sign, expected a plain decimal"
        if plain_decimal(value) is not None:  # zero
            return f"{field}: {shown} is not a positive finite number"
        return (
            f"{field}: {shown} has more than {DECIMAL_MAX_INTEGER_DIGITS} integer or "
            f"{DECIMAL_SCALE} fraction digits"
        )
    return f"{field}: {shown} is not a plain decimal number (ASCII digits, optional fraction)"


def check_symbol(symbol: str) -> str:
    # fullmatch: re.match with "$" would accept "BTC-USD\n".
    if not _SYMBOL_RE.fullmatch(symbol):
        raise NormalizeError(f"symbol: {symbol[:40]!r} is not BASE-QUOTE upper case")
    return symbol


def check_exchange(exchange: str) -> str:
    if not _EXCHANGE_RE.fullmatch(exchange):
        raise NormalizeError(f"exchange: {exchange[:40]!r} is not a valid exchange name")
    return exchange


def check_trade_id(value: Any, field: str) -> int:
    """A non-negative integer trade id below 2^63 (the bool ``true`` is not an id)."""
    if type(value) is int and 0 <= value < TRADE_ID_LIMIT:
        return value
    raise NormalizeError(f"{field}: expected a non-negative integer trade id below 2^63")


# -- timestamps --------------------------------------------------------------------------------------
# format_utc's text for epoch ms is a per-second prefix plus one of these: "000000Z" .. "999000Z".
MILLIS = tuple(f"{i:03d}000Z" for i in range(1000))
_PREFIX_CHARS = UTC_TEXT_WIDTH - len(MILLIS[0])  # "YYYY-MM-DDTHH:MM:SS."


class MillisFormatter:
    """Epoch milliseconds -> ``format_utc`` text (``...SS.mmm000Z``); caches the per-second prefix.

    Trades cluster in time, so the prefix (computed by ``format_utc`` itself) is reused.
    The value must lie in [FLOOR_MS, ``before``): ``before`` comes from FutureLimit (never above CEILING_MS).
    ``second``/``prefix`` are the cache, readable so a normaliser can inline the common case.
    """

    __slots__ = ("prefix", "second")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""

    def __call__(self, value: Any, field: str, before: int = CEILING_MS) -> str:
        if type(value) is not int:
            raise NormalizeError(f"{field}: expected epoch milliseconds as an integer")
        if not FLOOR_MS <= value < before:
            raise NormalizeError(_millis_problem(value, field))
        second = value // 1000
        if second != self.second:
            self.prefix = format_utc(datetime.fromtimestamp(second, UTC))[:_PREFIX_CHARS]
            self.second = second
        return self.prefix + MILLIS[value - second * 1000]


def _millis_problem(value: int, field: str) -> str:
    if value < FLOOR_MS or value >= CEILING_MS:
        shown = str(value) if len(str(value)) <= 20 else f"{str(value)[:20]}..."
        return f"{field}: {shown} ms is outside [{_FLOOR_ISO}, {_CEILING_ISO})"
    text = format_utc(datetime.fromtimestamp(value // 1000, UTC).replace(microsecond=value % 1000 * 1000))
    return f"{field}: {text} is more than {FUTURE_MARGIN_SECONDS} s after received_at"


class FutureLimit:
    """How late a trade may be for a ``received_at``: before its second + FUTURE_MARGIN_SECONDS.

    Counting from the start of the received second makes the hot path at most 1 s stricter than the
    contract (``timestamp <= ingestion_timestamp + margin``) and lets the work be cached per second.
    ``received_at`` must be canonical text (``now_iso``/``iso_timestamp`` output, microseconds: it
    becomes the trade's ingestion_timestamp verbatim); it is validated whenever its second changes.
    ``ms`` and ``iso`` are exclusive limits, never beyond the ceiling.
    """

    __slots__ = ("iso", "key", "ms")

    def __init__(self) -> None:
        self.key = ""
        self.ms = CEILING_MS
        self.iso = _CEILING_ISO

    def load(self, received_at: str) -> None:
        """Limits for ``received_at`` (callers skip this while ``received_at[:19] == key``)."""
        if type(received_at) is not str or _CANONICAL_ISO.fullmatch(received_at) is None:
            raise NormalizeError(
                f"received_at: {str(received_at)[:40]!r} is not canonical ISO-8601 UTC "
                "(YYYY-MM-DDTHH:MM:SS.ffffffZ, as now_iso() writes)"
            )
        if received_at < _FLOOR_ISO or received_at >= _CEILING_ISO:
            raise NormalizeError(f"received_at: {received_at} is outside [{_FLOOR_ISO}, {_CEILING_ISO})")
        try:
            second = datetime.fromisoformat(received_at[:19]).replace(tzinfo=UTC)
        except ValueError:
            raise NormalizeError(f"received_at: {received_at!r} is not a valid time") from None
        limit = second + _MARGIN
        self.ms = min(int(limit.timestamp()) * 1000, CEILING_MS)
        self.iso = min(limit.isoformat()[:19], _CEILING_ISO)
        self.key = received_at[:19]


def iso_timestamp(value: Any, field: str, before: str = _CEILING_ISO) -> str:
    """Canonical ISO text (``format_utc``: µs and ``Z``) from any ISO-8601 string with an offset.

    Reads every precision (seconds, ms as we wrote it before, µs; finer digits truncated) and offsets.

    Refused: no offset, an offset that overflows, or outside [floor, ``before``) where ``before`` is
    canonical text (FutureLimit.iso; at most the contract's ceiling).
    """
    if type(value) is not str:
        raise NormalizeError(f"{field}: expected an ISO-8601 timestamp string")
    if len(value) == UTC_TEXT_WIDTH and value[26] == "Z" and value[19] == "." and value[10] == "T":
        # Common exchange form "YYYY-MM-DDTHH:MM:SS.ffffffZ" is already canonical: only validate it.
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise NormalizeError(f"{field}: {value!r} is not an ISO-8601 timestamp") from None
        text = value
    else:
        text = _parse_iso(value, field)
    if not _FLOOR_ISO <= text < before:
        raise NormalizeError(_iso_problem(text, field))
    return text


def _parse_iso(value: str, field: str) -> str:
    if len(value) > _ISO_MAX_CHARS:
        raise NormalizeError(f"{field}: {value[:40]!r}... is too long for an ISO-8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise NormalizeError(f"{field}: {value[:40]!r} is not an ISO-8601 timestamp") from None
    if parsed.tzinfo is None:
        raise NormalizeError(f"{field}: {value[:40]!r} has no UTC offset")
    try:
        return format_utc(parsed)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 or 0001-01-01T00:00:00+01:00
        raise NormalizeError(f"{field}: {value!r} is outside the representable range") from None


def _iso_problem(text: str, field: str) -> str:
    if text < _FLOOR_ISO or text >= _CEILING_ISO:
        return f"{field}: {text} is outside [{_FLOOR_ISO}, {_CEILING_ISO})"
    return f"{field}: {text} is more than {FUTURE_MARGIN_SECONDS} s after received_at"


def now_iso() -> str:
    return format_utc(datetime.now(UTC))
