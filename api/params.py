"""Query parameters shared by the routers, and their checks beyond what the types express."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import Query

from api.errors import InvalidParameterError
from coattail.contracts.trade import SYMBOL_PATTERN

TYPE_PATTERN = r"^[a-z][a-z0-9_]{1,63}$"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TypeQuery = Query(
    None, pattern=TYPE_PATTERN, description="An alert type, e.g. `whale_trade` (see GET /alert-types)"
)
SymbolQuery = Query(None, pattern=SYMBOL_PATTERN, description="A symbol, e.g. `BTC-USDT`")
SinceQuery = Query(
    None,
    description="Only alerts detected at or after this UTC instant (ISO-8601 with offset, e.g. "
    "`2026-01-02T03:04:05Z`). Default: 24 hours ago.",
    json_schema_extra={"format": "date-time"},
)


def parse_since(value: str | None, now: datetime, default: timedelta = timedelta(hours=24)) -> datetime:
    """The ``since`` bound; InvalidParameterError (422) when it is not an ISO-8601 instant with an offset."""
    if value is None:
        return now - default
    text = value.strip()
    if len(text) > 10 and text[10] in "tT ":
        text = text[:10] + "T" + text[11:]
    text = text[:-1] + "Z" if text.endswith("z") else text
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameterError(
            "since", f"{value[:60]!r} is not an ISO-8601 timestamp, e.g. 2026-01-02T03:04:05Z"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidParameterError("since", "the timestamp has no UTC offset; append 'Z'")
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        return EPOCH if parsed.year < 1970 else now + timedelta(days=1)
    # Nothing lives before 1970 (ttl_epoch is unsigned), and the fixed-width keys need 4-digit years.
    return max(parsed, EPOCH)
