"""Field types shared by the contracts: exact decimals and UTC timestamps, both bounded.

Bounds come first, before any parsing that could allocate: a decimal is checked as text (ASCII digits,
length, exponent) before ``Decimal`` sees it, and a timestamp must lie in the window every engine we
use can represent (Python, Arrow's nanosecond timestamps, Spark) and that a trade can sanely have.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from coattail.contracts.spark import DECIMAL_PRECISION, DECIMAL_SCALE

# No crypto trade happened before the Bitcoin genesis block.
TIMESTAMP_FLOOR = datetime(2009, 1, 3, tzinfo=UTC)
# Exclusive; below Arrow's nanosecond limit (2262-04-11), so Spark/Arrow/Python all represent it.
TIMESTAMP_CEILING = datetime(2262, 1, 1, tzinfo=UTC)
TIMESTAMP_MAX_CHARS = 64

# Spark stores decimals as DecimalType(38, 18): at most 20 integer digits. Fractions may be finer
# than 18 digits only for products (quote_volume = price × quantity of two 18-digit fractions).
DECIMAL_MAX_INTEGER_DIGITS = DECIMAL_PRECISION - DECIMAL_SCALE
DECIMAL_MAX_FRACTION_DIGITS = 2 * DECIMAL_SCALE
DECIMAL_MAX_CHARS = 64
# ASCII digits only (Decimal itself takes Arabic/full-width digits and "1_000"); a 3-digit exponent at
# most, so the text bound also bounds the value before Decimal builds it.
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_LONG_EXPONENT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][+-]?[0-9]{4,}")
_NOT_FINITE = frozenset(("nan", "snan", "inf", "infinity"))
_INTEGER_LIMIT = 10**DECIMAL_MAX_INTEGER_DIGITS
_DECIMAL_LIMIT = Decimal(_INTEGER_LIMIT)


def parse_decimal(value: Any) -> Decimal:
    """Exact decimal from a decimal string, int or Decimal. Floats are refused: they are already inexact."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise ValueError("a boolean is not a decimal")
    elif isinstance(value, int):
        if abs(value) >= _INTEGER_LIMIT:
            raise ValueError(f"integer has more than {DECIMAL_MAX_INTEGER_DIGITS} digits")
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > DECIMAL_MAX_CHARS:
            raise ValueError(f"decimal text is longer than {DECIMAL_MAX_CHARS} characters")
        if _DECIMAL_TEXT.fullmatch(text) is None:
            if text.lstrip("+-").lower() in _NOT_FINITE:
                raise ValueError(f"{value!r} is not a finite number")
            if _LONG_EXPONENT.fullmatch(text):
                raise ValueError(f"{value[:40]!r}: the exponent has more than 3 digits")
            raise ValueError(f"{value[:40]!r} is not a decimal number (ASCII digits, optional fraction)")
        result = Decimal(text)
    elif isinstance(value, float):
        raise ValueError("floats are not accepted for exact decimals; send the decimal string")
    else:
        raise ValueError(f"expected a decimal string, got {type(value).__name__}")
    return check_decimal_bounds(result)


def check_decimal_bounds(value: Decimal) -> Decimal:
    """The value itself if finite, below 10^20 in magnitude and with at most 36 fraction digits."""
    if not value.is_finite():
        raise ValueError(f"{str(value)[:40]!r} is not a finite number")
    if value and abs(value) >= _DECIMAL_LIMIT:
        raise ValueError(f"{value:.3e} is too large (at most {DECIMAL_MAX_INTEGER_DIGITS} integer digits)")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMAL_MAX_FRACTION_DIGITS:
        raise ValueError(f"{value:.3e} has more than {DECIMAL_MAX_FRACTION_DIGITS} fraction digits")
    return value


def parse_utc(value: Any) -> datetime:
    """UTC datetime from an aware datetime or an ISO-8601 string with an explicit offset or ``Z``.

    Any precision is read (seconds, the older millisecond form, microseconds; finer digits are
    truncated), so data written before the one fixed format still loads.

    Refused with a ValueError (never an OverflowError): no offset, outside
    [TIMESTAMP_FLOOR, TIMESTAMP_CEILING), or an offset that moves the time out of Python's range.
    """
    if isinstance(value, str):
        if len(value) > TIMESTAMP_MAX_CHARS:
            raise ValueError(f"timestamp text is longer than {TIMESTAMP_MAX_CHARS} characters")
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    if not isinstance(value, datetime):
        raise ValueError(f"expected an ISO-8601 timestamp, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError("timestamp has no UTC offset; append 'Z'")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the representable range") from None
    return check_utc_window(value)


def check_utc_window(value: datetime) -> datetime:
    """The (aware) value itself if it lies in [TIMESTAMP_FLOOR, TIMESTAMP_CEILING)."""
    if value < TIMESTAMP_FLOOR:
        raise ValueError(f"{format_utc(value)} is before {format_utc(TIMESTAMP_FLOOR)}")
    if value >= TIMESTAMP_CEILING:
        raise ValueError(f"{format_utc(value)} is not before {format_utc(TIMESTAMP_CEILING)}")
    return value


# The one text form of every instant we write: "YYYY-MM-DDTHH:MM:SS.ffffffZ". Microseconds because
# Coinbase and Spark's timestamp type carry them; one fixed width, so string order is time order
# (DynamoDB sort keys, file names and lexical comparisons rely on it).
UTC_TEXT_WIDTH = 27


def from_epoch_us(value: int) -> datetime:
    """UTC datetime from epoch microseconds, exactly (no float on the way)."""
    return datetime.fromtimestamp(value // 1_000_000, UTC).replace(microsecond=value % 1_000_000)


def format_utc(value: datetime) -> str:
    """ISO-8601 in UTC with microseconds and ``Z``, always UTC_TEXT_WIDTH characters (years 1-9999)."""
    # Hot path (connectors' received_at): skip the conversion when already UTC; drop "+00:00" by slicing.
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def format_decimal(value: Decimal) -> str:
    """Plain (non-scientific) decimal text so every consumer parses it the same way."""
    return format(value, "f")


ExactDecimal = Annotated[
    Decimal, BeforeValidator(parse_decimal), PlainSerializer(format_decimal, return_type=str)
]
UtcDatetime = Annotated[datetime, BeforeValidator(parse_utc), PlainSerializer(format_utc, return_type=str)]
