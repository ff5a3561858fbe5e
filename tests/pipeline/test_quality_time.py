"""The quality stage's timestamp window, on Spark batch frames: every poison time is a dead letter with
a clear reason, nothing crashes a conversion to Python, and the detectors' own backstops hold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coattail.contracts import TradeEvent
from coattail.contracts.spark import spark_schema
from coattail.settings import ConfigError, load_settings
from jobs import batchmode, metrics, quality
from jobs.detectors import SpreadDetector
from jobs.framework.registry import ModuleRegistry
from tests.pipeline.helpers import line, trade

pytestmark = pytest.mark.spark
ARRIVAL = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _with(at: datetime | float, trade_id: str, **fields: Any) -> str:
    """A valid trade's JSON with ``fields`` replaced as sent (any JSON value)."""
    return json.dumps(json.loads(line(trade(at=at, trade_id=trade_id))) | fields)


def _classify(
    spark: Any, rows: Sequence[tuple[str, datetime | None]], **overrides: Any
) -> list[dict[str, Any]]:
    from pyspark.sql import functions as F

    frame = spark.createDataFrame(
        [(v, ts, f"test/{i}") for i, (v, ts) in enumerate(rows)],
        "value string, source_ts timestamp, source_pos string",
    )
    out = quality.classify(frame, load_settings(overrides=overrides))
    # A dead letter's time may be one no datetime holds (year 58,970): read times of passed rows only.
    passed_ts = F.when(F.col("dq_reason").isNull(), F.col("timestamp"))
    picked = out.select("source_pos", "event_id", "dq_reason", passed_ts.alias("ts"))
    return sorted((r.asDict() for r in picked.collect()), key=lambda r: int(r["source_pos"][5:]))


CASES: list[tuple[str, str, str | None]] = [
    # (name, value sent, expected reason; None = passes)
    ("past", _with(-600, "past"), None),
    ("inside the margin", _with(240, "margin"), None),
    (
        "just beyond the margin",
        _with(301, "beyond"),
        "invalid: timestamp 2026-01-05T12:05:01.000000Z is more than 300s in the future of arrival "
        "2026-01-05T12:00:00.000000Z",
    ),
    (
        "year 9999",
        _with(0, "y9999", timestamp="9999-12-31T23:59:59Z"),
        "invalid: timestamp 9999-12-31T23:59:59Z is more than 300s in the future of arrival "
        "2026-01-05T12:00:00.000000Z",
    ),
    (
        "year 9999 with an offset",
        _with(0, "y9999-off", timestamp="9999-12-31T23:59:59-05:00"),
        "invalid: timestamp 9999-12-31T23:59:59-05:00 is more than 300s in the future of arrival "
        "2026-01-05T12:00:00.000000Z",
    ),
    (
        "year 2100",
        _with(0, "y2100", timestamp="2100-01-01T00:00:00.000Z"),
        "invalid: timestamp 2100-01-01T00:00:00.000Z is more than 300s in the future of arrival "
        "2026-01-05T12:00:00.000000Z",
    ),
    (
        "epoch milliseconds read as seconds (year 58,970)",
        _with(0, "epoch-ms", timestamp=1_800_000_000_000),
        "invalid: timestamp is a number, not an ISO-8601 timestamp",
    ),
    (
        "a plausible epoch in seconds",
        _with(0, "epoch-s", timestamp=1_767_614_400),
        "invalid: timestamp is a number, not an ISO-8601 timestamp",
    ),
    (
        "an epoch too big for Spark's microseconds",
        _with(0, "epoch-huge", timestamp=10**17),
        "invalid: timestamp is a number, not an ISO-8601 timestamp",
    ),
    (
        "before the floor",
        _with(0, "old", timestamp="2008-12-31T23:59:59.000Z"),
        "invalid: timestamp 2008-12-31T23:59:59.000Z is before 2009-01-03T00:00:00.000000Z",
    ),
    (
        "ingestion time in year 9999",
        _with(0, "ingest-9999", ingestion_timestamp="9999-12-31T23:59:59Z"),
        "invalid: ingestion_timestamp 9999-12-31T23:59:59Z is more than 300s in the future of arrival "
        "2026-01-05T12:00:00.000000Z",
    ),
    (
        "ingestion time as a number",
        _with(0, "ingest-num", ingestion_timestamp=1_800_000_000_000),
        "invalid: ingestion_timestamp is a number, not an ISO-8601 timestamp",
    ),
]


def test_timestamp_window_dead_letters_every_poison_time(spark: Any) -> None:
    rows = _classify(spark, [(value, ARRIVAL) for _, value, _ in CASES])
    assert len(rows) == len(CASES)  # every record is accounted for: passed or dead-lettered
    got = {name: row["dq_reason"] for (name, _, _), row in zip(CASES, rows, strict=True)}
    assert got == {name: reason for name, _, reason in CASES}
    passed = [r for r in rows if r["dq_reason"] is None]
    naive = ARRIVAL.replace(tzinfo=None)  # Spark hands timestamps back as naive UTC (session time zone)
    assert [r["ts"] for r in passed] == [naive - timedelta(seconds=600), naive + timedelta(seconds=240)]


def test_unreadable_times_are_dead_letters_with_a_reason(spark: Any) -> None:
    values = [
        _with(0, "text", timestamp="yesterday"),
        _with(0, "year-10000", timestamp="+10000-01-01T00:00:00Z"),
        _with(0, "null", timestamp=None),
    ]
    reasons = [r["dq_reason"] for r in _classify(spark, [(v, ARRIVAL) for v in values])]
    assert all(reasons), reasons
    assert reasons[2] == "incomplete: missing timestamp"


def test_arrival_falls_back_to_the_clock_and_is_capped_by_it(spark: Any) -> None:
    now = datetime.now(UTC)
    rows = _classify(
        spark,
        [
            (_with(now - timedelta(hours=1), "no-arrival-ok"), None),
            (_with(now + timedelta(days=1), "no-arrival-future"), None),
            # A producer's bogus record time (year 2300) must not widen the window.
            (
                _with(0, "bogus-arrival", timestamp="2299-01-01T00:00:00Z"),
                datetime(2300, 1, 1, tzinfo=UTC),
            ),
        ],
    )
    assert rows[0]["dq_reason"] is None
    assert "in the future of arrival" in rows[1]["dq_reason"]
    assert "in the future of arrival" in rows[2]["dq_reason"]


def test_the_window_is_configurable(spark: Any) -> None:
    values = [(_with(3000, "50min"), ARRIVAL), (_with(0, "old", timestamp="2012-01-01T00:00:00Z"), ARRIVAL)]
    rows = _classify(
        spark, values, **{"quality.max_future_seconds": 3600, "quality.min_timestamp": "2015-01-01T00:00:00Z"}
    )
    assert [r["dq_reason"] for r in rows] == [
        None,
        "invalid: timestamp 2012-01-01T00:00:00Z is before 2015-01-01T00:00:00.000000Z",
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("quality.max_future_seconds", 0),
        ("quality.max_future_seconds", 10**9),  # would reach past what pandas converts
        ("quality.min_timestamp", "1960-01-01T00:00:00Z"),
        ("quality.min_timestamp", "2009-01-03T00:00:00"),  # no offset
    ],
)
def test_window_settings_are_bounded(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key.split(".")[1]):
        load_settings(overrides={key: value})


def test_detectors_never_see_an_unconvertible_time(spark: Any) -> None:
    """Backstop behind quality: trades that bypassed it (raw_trades written before the window
    existed, a batch reprocess) with a time past 2262 are skipped, not a failed conversion."""
    settings = load_settings()
    good = trade(at=0, quote_volume=250_000, price=60_000)
    year_9999 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # the contract itself refuses it
    poison = [
        dict(trade(at=0, quote_volume=250_000, trade_id=f"p{i}", **kw)) | {"timestamp": year_9999}
        for i, kw in enumerate([{}, {"exchange": "coinbase", "symbol": "BTC-USD"}])
    ]
    rows = [tuple(e.values()) for e in [dict(good), *poison]]
    trades = spark.createDataFrame(rows, spark_schema(TradeEvent))
    results = batchmode.detect(spark, settings, trades, ModuleRegistry(settings).detectors())
    assert [a.details["event_id"] for a in results["MOD-002"].alerts] == [good.event_id]
    assert [r["window_start"] for r in results["MOD-001"].records] == [good.timestamp]
    assert results["MOD-003"].records == []  # the poison was the only coinbase trade


def test_finish_sets_a_poison_row_aside() -> None:
    detector = SpreadDetector()
    detector.configure(load_settings())
    start = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1_000_000)
    fine = [
        {"exchange": ex, "symbol": sym, "notional": 100.0 * p, "qty": 1.0, "trades": 1,
         "window_start_us": start, "window_end_us": start + 30_000_000}
        for ex, sym, p in [("binance", "BTC-USDT", 102), ("coinbase", "BTC-USD", 100)]
    ]  # fmt: skip
    year_10000 = 253_402_300_800_000_000
    bad = fine[0] | {"window_start_us": year_10000 - 30_000_000, "window_end_us": year_10000}
    result, rejected = detector.finish_guarded([fine[0], bad, fine[1]])
    assert [r.row for r in rejected] == [bad]
    assert "year 10000 is out of range" in rejected[0].reason
    assert [a.details["spread_pct"] for a in result.alerts] == [2.0]


def test_late_rows_are_counted_and_the_watermark_exported() -> None:
    metrics.record_late("MOD-001", "qid-test", 3, "2026-01-05T12:00:00.000Z")
    metrics.record_late("MOD-001", "qid-test", 0, "2026-01-05T12:01:00.000Z")
    assert metrics.DROPPED_BY_QUERY["qid-test"] == 3
    watermark = metrics.REGISTRY.get_sample_value("coattail_pipeline_watermark_seconds", {"query": "MOD-001"})
    assert watermark == datetime(2026, 1, 5, 12, 1, tzinfo=UTC).timestamp()


def test_stream_lag_is_now_minus_the_newest_event_time() -> None:
    newest = datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()
    metrics.record_lag("MOD-002", "2026-01-05T12:00:00.000Z", newest + 42.5)
    assert (
        metrics.REGISTRY.get_sample_value("coattail_pipeline_stream_lag_seconds", {"query": "MOD-002"})
        == 42.5
    )
    metrics.record_lag("MOD-002", None, newest + 999)  # a batch without events keeps the last figure
    metrics.record_lag("MOD-003", "2026-01-05T12:00:10.000Z", newest)  # clocks a little apart: never negative
    assert (
        metrics.REGISTRY.get_sample_value("coattail_pipeline_stream_lag_seconds", {"query": "MOD-002"})
        == 42.5
    )
    assert (
        metrics.REGISTRY.get_sample_value("coattail_pipeline_stream_lag_seconds", {"query": "MOD-003"}) == 0
    )


def test_a_row_finish_cannot_handle_is_dead_lettered_once(spark: Any, make_settings: Any) -> None:
    """The runner's side of finish_guarded: the batch goes on, the row lands in dead_letters (once)."""
    from jobs.framework.runner import PipelineRunner
    from tests.pipeline.streamkit import iceberg_rows

    settings = make_settings()
    detector = SpreadDetector()
    detector.configure(settings)
    runner = PipelineRunner(spark, settings, detectors=[detector], use_hot_store=False)
    runner.ensure_tables()
    runner._ids["MOD-003"] = "query-id"
    runner._started.set()
    year_10000 = 253_402_300_800_000_000
    output = spark.createDataFrame(
        [("binance", "BTC-USDT", 100.0, 1.0, 1, year_10000 - 30_000_000, year_10000)],
        "exchange string, symbol string, notional double, qty double, trades long, "
        "window_start_us long, window_end_us long",
    )
    for _ in range(2):  # a replayed batch
        result = runner._detect(detector, output, "MOD-003", 7)
        assert result.records == []
    dead = iceberg_rows(spark, settings, "dead_letters")
    assert [(r["reason"], r["source_pos"]) for r in dead] == [
        ("MOD-003: ValueError: year 10000 is out of range", "MOD-003/7")
    ]
    assert json.loads(dead[0]["raw"])["window_end_us"] == year_10000
