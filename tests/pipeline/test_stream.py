"""The streaming pipeline on real Kafka + DynamoDB Local + Iceberg: quality on junk, late data."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from coattail.contracts import alert_id
from coattail.settings import Settings
from jobs import metrics
from jobs.framework.runner import PipelineRunner
from jobs.session import sqlite_path, warehouse
from tests.pipeline.helpers import T0, line, trade
from tests.pipeline.streamkit import (
    dynamo_alerts,
    iceberg_rows,
    ingest_totals,
    produce,
)

pytestmark = [pytest.mark.spark, pytest.mark.services]


def _junk(valid: list[str]) -> list[str]:
    good = json.loads(valid[0])
    return [
        "not json at all",
        "[1, 2, 3]",
        "",
        json.dumps({"event_id": "x-1", "exchange": "binance", "symbol": "BTC-USDT"}),  # incomplete
        json.dumps(good | {"event_id": "zero-price", "price": "0"}),
        json.dumps(good | {"event_id": "neg-qty", "quantity": "-1"}),
        json.dumps(good | {"event_id": "doge", "symbol": "DOGE-USDT"}),  # not a configured instrument
        json.dumps(good | {"event_id": "bad-num", "price": "abc"}),
    ]


def test_junk_is_dead_lettered_and_counted(spark: Any, settings: Settings) -> None:
    valid = [line(trade(at=i, quote_volume=1000 + i, price=60_000)) for i in range(20)]
    whale = trade(at=30, quote_volume=250_000, price=60_000)
    inconsistent = json.loads(valid[1]) | {"event_id": "off-by-1pct"}
    inconsistent["quote_volume"] = str(Decimal(inconsistent["quote_volume"]) * Decimal("1.01"))
    good = [*valid, line(whale), json.dumps(inconsistent)]
    junk = _junk(valid)
    duplicates = [valid[0], valid[0], valid[5], line(whale), valid[19]]
    sent = produce(
        settings.stream.kafka.bootstrap_servers, settings.stream.kafka.topic, [*good, *junk, *duplicates]
    )
    assert sent == 35

    server = metrics.serve("127.0.0.1", 0)
    runner = PipelineRunner(spark, settings)
    runner.start()
    try:
        runner.drain()
    finally:
        runner.stop()
    totals = ingest_totals(runner, sent)
    assert totals["processed"] == sent
    assert (totals["passed"], totals["failed"], totals["duplicate"]) == (
        len(good),
        len(junk),
        len(duplicates),
    )
    assert totals["passed"] + totals["failed"] + totals["duplicate"] == totals["processed"]
    assert totals["late"] == len(good)  # crafted trades are from January: flagged, still processed
    assert totals["inconsistent"] == 1
    score = metrics.REGISTRY.get_sample_value("coattail_pipeline_quality_score")
    assert score == pytest.approx(len(good) / sent * 100)  # one micro-batch held everything
    page = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics").read().decode()
    assert "coattail_pipeline_quality_score" in page
    server.shutdown()

    raw = iceberg_rows(spark, settings, "raw_trades")
    assert len(raw) == len(good)
    assert len({r["event_id"] for r in raw}) == len(good)
    reasons = Counter(r["reason"].split(":")[0] for r in iceberg_rows(spark, settings, "dead_letters"))
    assert reasons == {"malformed": 4, "incomplete": 1, "invalid": 3}
    dead = {r["raw"] for r in iceberg_rows(spark, settings, "dead_letters")}
    assert "not json at all" in dead  # the raw payload is kept for investigation

    # The whale went to both alert stores, once.
    expected = alert_id("MOD-002", whale.event_id)
    assert [r["event_id"] for r in iceberg_rows(spark, settings, "whale_trades")] == [whale.event_id]
    assert [r["alert_id"] for r in iceberg_rows(spark, settings, "anomaly_alerts")] == [expected]
    assert [a.alert_id for a in dynamo_alerts(settings)] == [expected]

    # Spark wrote, pyiceberg reads the same catalog (sqlite) and warehouse.
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("lake", uri=f"sqlite:///{sqlite_path(settings)}", warehouse=warehouse(settings))
    table = catalog.load_table((settings.lake.namespace, "raw_trades"))
    assert table.scan().to_arrow().num_rows == len(good)
    assert [f.name for f in table.spec().fields] == ["timestamp_day", "symbol"]


def test_late_data_beyond_the_watermark_is_dropped(spark: Any, settings: Settings) -> None:
    bootstrap, topic = settings.stream.kafka.bootstrap_servers, settings.stream.kafka.topic
    a = {"exchange": "binance", "symbol": "BTC-USDT"}
    b = {"exchange": "coinbase", "symbol": "BTC-USD"}
    runner = PipelineRunner(spark, settings)
    runner.start()
    try:
        # t=5 s and 6 s, then t=100 s: MOD-001 watermark -> 70 s (closes [0,60)), MOD-003 -> 85 s
        produce(bootstrap, topic, [line(trade(at=5, **a)), line(trade(at=6, **b)), line(trade(at=100, **a))])
        runner.drain()
        late = trade(at=10, quote_volume=5000, **a)  # behind both watermarks: dropped by the detectors
        in_time = trade(at=80, quote_volume=7, **a)  # behind nothing for MOD-001 (70 s)
        # t=300 s moves the watermarks on after this batch: [60,120) closes in the next (no-data) batch
        produce(bootstrap, topic, [line(late), line(in_time), line(trade(at=300, **a))])
        runner.drain()
    finally:
        runner.stop()
    windows = {
        (r["exchange"], r["window_start"].minute): (r["window_volume"], r["trade_count"])
        for r in iceberg_rows(spark, settings, "volume_aggregates")
    }
    assert windows == {("binance", 0): (1000.0, 1), ("coinbase", 0): (1000.0, 1), ("binance", 1): (1007.0, 2)}
    # ingest keeps every valid trade, late or not (nothing is lost from the lake)
    assert late.event_id in {r["event_id"] for r in iceberg_rows(spark, settings, "raw_trades")}
    spreads = iceberg_rows(spark, settings, "exchange_spreads")
    assert [(r["window_start"], r["a_vwap"], r["b_vwap"]) for r in spreads] == [
        (T0.replace(tzinfo=None), 100.0, 100.0)
    ]
