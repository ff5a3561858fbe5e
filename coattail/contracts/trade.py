"""TradeEvent: the normalised trade every connector writes to the stream (DESIGN.md "Contracts")."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coattail.contracts.ids import trade_event_id
from coattail.contracts.types import ExactDecimal, UtcDatetime

Side = Literal["buy", "sell"]

SYMBOL_PATTERN = r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$"
EXCHANGE_PATTERN = r"^[a-z][a-z0-9_]{1,31}$"


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
                "event_id": trade_event_id(exchange, symbol, trade_id),
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
        return event.model_copy(update={"quote_volume": event.price * event.quantity})
