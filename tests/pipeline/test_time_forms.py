"""Batch mode keeps the contract's microseconds when trades come back from Parquet."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from coattail.contracts import TradeEvent, dumps
from coattail.contracts.spark import spark_schema
from jobs.batchmode import read_events

pytestmark = pytest.mark.spark


def test_parquet_trades_return_to_the_wire_form_with_microseconds(spark: Any, tmp_path: Path) -> None:
    event = TradeEvent.create(
        exchange="coinbase", symbol="BTC-USD", trade_id=7, price="100.5", quantity="0.25", side="buy",
        timestamp=datetime(2026, 1, 5, 12, 0, 0, 123456, tzinfo=UTC),
        ingestion_timestamp=datetime(2026, 1, 5, 12, 0, 0, 200000, tzinfo=UTC),
    )  # fmt: skip
    typed = spark.read.schema(spark_schema(TradeEvent)).json(
        spark.sparkContext.parallelize([dumps(event).decode()])
    )
    typed.write.parquet(str(tmp_path / "trades.parquet"))
    [row] = read_events(spark, tmp_path / "trades.parquet").collect()
    sent = orjson.loads(row["value"])
    # Spark's default JSON time format would write "...00.123Z" and lose the last three digits.
    assert sent["timestamp"] == "2026-01-05T12:00:00.123456Z"
    assert sent["ingestion_timestamp"] == "2026-01-05T12:00:00.200000Z"
