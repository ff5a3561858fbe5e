"""Field types shared by the contracts: exact decimals and UTC timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer


def parse_decimal(value: Any) -> Decimal:
    """Exact decimal from a decimal string, int or Decimal. Floats are refused: they are already inexact."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValueError("a boolean is not a decimal")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
    elif isinstance(value, float):
        raise ValueError("floats are not accepted for exact decimals; send the decimal string")
    else:
        raise ValueError(f"expected a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return result


def parse_utc(value: Any) -> datetime:
    """UTC datetime from an aware datetime or an ISO-8601 string with an explicit offset or ``Z``."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    if not isinstance(value, datetime):
        raise ValueError(f"expected an ISO-8601 timestamp, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError("timestamp has no UTC offset; append 'Z'")
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z`` suffix (microseconds kept when present)."""
    value = value.astimezone(UTC)
    spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    return value.isoformat(timespec=spec).replace("+00:00", "Z")


def format_decimal(value: Decimal) -> str:
    """Plain (non-scientific) decimal text so every consumer parses it the same way."""
    return format(value, "f")


ExactDecimal = Annotated[
    Decimal, BeforeValidator(parse_decimal), PlainSerializer(format_decimal, return_type=str)
]
UtcDatetime = Annotated[datetime, BeforeValidator(parse_utc), PlainSerializer(format_utc, return_type=str)]
