"""Crafted trades for the pipeline tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from coattail.contracts import TradeEvent, dumps

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a window-aligned start


def trade(
    *,
    at: datetime | float,
    quote_volume: Decimal | str | int = 1000,
    price: Decimal | str | int = 100,
    exchange: str = "binance",
    symbol: str = "BTC-USDT",
    trade_id: str | int | None = None,
    side: str = "buy",
) -> TradeEvent:
    """A trade at ``at`` (datetime or seconds after T0) with the given quote volume and price."""
    when = at if isinstance(at, datetime) else T0 + timedelta(seconds=at)
    price_d = Decimal(str(price))
    # Exchange-like precision (8 places) keeps every value inside the lake's decimal(38,18).
    qty = (Decimal(str(quote_volume)) / price_d).quantize(Decimal("0.00000001"))
    tid = trade_id if trade_id is not None else f"{when.timestamp()}-{quote_volume}-{price}"
    return TradeEvent.create(
        exchange=exchange,
        symbol=symbol,
        trade_id=tid,
        price=price_d,
        quantity=qty,
        side=side,  # type: ignore[arg-type]
        timestamp=when,
        ingestion_timestamp=when + timedelta(milliseconds=5),
    )


def line(event: TradeEvent) -> str:
    return dumps(event).decode()


def raw_frame(spark: Any, lines: list[str]) -> Any:
    """Batch DataFrame of raw stream columns (as a source would give them)."""
    from pyspark.sql import functions as F

    df = spark.createDataFrame(
        [(v, f"test/{i}") for i, v in enumerate(lines)], "value string, source_pos string"
    )
    return df.select("value", F.current_timestamp().alias("source_ts"), "source_pos")
