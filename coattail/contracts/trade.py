"""TradeEvent: the normalised trade every connector writes to the stream (DESIGN.md "Contracts")."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from coattail.contracts.ids import trade_event_id
from coattail.contracts.types import ExactDecimal, UtcDatetime, check_decimal_bounds

Side = Literal["buy", "sell"]

# Pydantic matches these with Rust regex semantics ("$" is the very end); Python users must fullmatch.
SYMBOL_PATTERN = r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$"
EXCHANGE_PATTERN = r"^[a-z][a-z0-9_]{1,31}$"
# A trade cannot happen after we received it; this much clock skew between exchange and us is tolerated.
# The pipeline's quality stage has its own, configurable margin (quality settings).
FUTURE_MARGIN_SECONDS = 300
TRADE_ID_MAX_CHARS = 64
_FUTURE_MARGIN = timedelta(seconds=FUTURE_MARGIN_SECONDS)


class TradeEvent(BaseModel):
    """One trade. ``side`` is the taker's side; decimals are exact; timestamps are UTC."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    event_id: str = Field(min_length=1, max_length=64)
    exchange: str = Field(pattern=EXCHANGE_PATTERN)
    symbol: str = Field(pattern=SYMBOL_PATTERN, description="BASE-QUOTE, upper case")
    price: ExactDecimal = Field(gt=0)
    quantity: ExactDecimal = Field(gt=0)
    quote_volume: ExactDecimal = Field(ge=0, description="price × quantity")
    side: Side
    timestamp: UtcDatetime = Field(description="exchange trade time")
    ingestion_timestamp: UtcDatetime = Field(description="when our connector received it")

    @model_validator(mode="after")
    def _not_from_the_future(self) -> TradeEvent:
        if self.timestamp > self.ingestion_timestamp + _FUTURE_MARGIN:
            raise ValueError(
                f"timestamp is more than {FUTURE_MARGIN_SECONDS} s after ingestion_timestamp "
                "(a trade cannot happen after it was received)"
            )
        return self

    @classmethod
    def create(
        cls,
        *,
        exchange: str,
        symbol: str,
        trade_id: str | int,
        price: Decimal | str,
        quantity: Decimal | str,
        side: Side,
        timestamp: object,
        ingestion_timestamp: object,
    ) -> TradeEvent:
        """Build an event with the deterministic id and the exact ``quote_volume``."""
        event = cls.model_validate(
            {
                "event_id": trade_event_id(exchange, symbol, check_trade_id(trade_id)),
                "exchange": exchange,
                "symbol": symbol,
                "price": price,
                "quantity": quantity,
                "quote_volume": "0",
                "side": side,
                "timestamp": timestamp,
                "ingestion_timestamp": ingestion_timestamp,
            }
        )
        quote_volume = check_decimal_bounds(event.price * event.quantity)
        return event.model_copy(update={"quote_volume": quote_volume})


def check_trade_id(trade_id: object) -> str | int:
    """An exchange trade id: a non-negative int below 2^63 or 1-64 printable ASCII characters."""
    if type(trade_id) is int:
        if not 0 <= trade_id < 2**63:
            raise ValueError("trade_id: integer ids must be in [0, 2^63)")
        return trade_id
    if type(trade_id) is str:
        if not 0 < len(trade_id) <= TRADE_ID_MAX_CHARS or not (trade_id.isascii() and trade_id.isprintable()):
            raise ValueError(f"trade_id: expected 1-{TRADE_ID_MAX_CHARS} printable ASCII characters")
        return trade_id
    raise ValueError(f"trade_id: expected a string or an integer, got {type(trade_id).__name__}")
