"""Poison trades on real Kafka: timestamps in year 9999, an integer epoch (year ~59,000) and 2100 among
normal trades, then a volume burst, a whale and a spread dislocation. The pipeline keeps running, the
poison is dead-lettered with its reason and never moves a watermark (so the later anomalies are still
alerted), and a restart from the checkpoint is clean: no crash, no alert twice, late data counted.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from coattail.contracts import Alert, TradeEvent, alert_id
from coattail.settings import Settings
from jobs import metrics
from jobs.framework.runner import PipelineRunner
from tests.pipeline.helpers import T0, line, trade
from tests.pipeline.streamkit import (
    dynamo_alerts,
    iceberg_rows,
    ingest_totals,
    produce,
)

pytestmark = [pytest.mark.spark, pytest.mark.services]
A = {"exchange": "binance", "symbol": "BTC-USDT"}
B = {"exchange": "coinbase", "symbol": "BTC-USD"}
BURST_MINUTE, WHALE_MINUTE, SPREAD_MINUTE, SECOND_WHALE_MINUTE = 15, 16, 17, 31


def _background(first_minute: int, last_minute: int) -> list[TradeEvent]:
    """Both instruments trade every 10 s; window volumes alternate 6,060 / 5,940 (a baseline with spread).

    During SPREAD_MINUTE's first 30 s window binance trades 1.5 % above coinbase.
    """
    out = []
    for minute in range(first_minute, last_minute):
        qv = 1010 if minute % 2 else 990
        for second in range(0, 60, 10):
            at = minute * 60 + second
            dislocated = minute == SPREAD_MINUTE and second < 30
            out.append(trade(at=at, quote_volume=qv, price=60_900 if dislocated else 60_000, **A))
            out.append(trade(at=at + 3, quote_volume=qv, price=60_000, **B))
    return out


def _poison(trade_id: str, **fields: Any) -> str:
    return json.dumps(json.loads(line(trade(at=100, trade_id=trade_id, **A))) | fields)


FUTURE = "is more than 300s in the future of arrival"
# poison line -> the start of its dead letter's reason
POISON = {
    _poison("p-9999", timestamp="9999-12-31T23:59:59Z"): f"invalid: timestamp 9999-12-31T23:59:59Z {FUTURE}",
    # epoch milliseconds read as seconds: year ~59,000
    _poison("p-epoch", timestamp=1_800_000_000_000): "invalid: timestamp is a number, not an ISO-8601",
    # a valid time, but it would move every watermark a century ahead
    _poison(
        "p-2100", timestamp="2100-01-01T00:00:00.000Z"
    ): f"invalid: timestamp 2100-01-01T00:00:00.000Z {FUTURE}",
    _poison(
        "p-ingest", ingestion_timestamp="9999-12-31T23:59:59Z"
    ): "invalid: ingestion_timestamp 9999-12-31",
}


def _window_alert(minute: int, instrument: dict[str, str]) -> str:
    return alert_id("MOD-001", instrument["symbol"], instrument["exchange"], T0 + timedelta(minutes=minute))


def _lake_alerts(spark: Any, settings: Settings) -> list[str]:
    return [r["alert_id"] for r in iceberg_rows(spark, settings, "anomaly_alerts")]


def _describe(alerts: list[Alert], expected: set[str]) -> str:
    """What was unexpected, readably (module, instrument, window, measure)."""
    return (
        "unexpected: "
        + repr(
            [
                (a.module_id, a.exchange, a.symbol, a.details.get("window_start"), a.details.get("z_score"))
                for a in alerts
                if a.alert_id not in expected
            ]
        )
        + f"; missing: {len(expected - {a.alert_id for a in alerts})}"
    )


def test_poison_trades_are_dead_lettered_and_the_pipeline_keeps_detecting(
    spark: Any, settings: Settings
) -> None:
    bootstrap, topic = settings.stream.kafka.bootstrap_servers, settings.stream.kafka.topic
    burst = [
        trade(at=BURST_MINUTE * 60 + 5 + i, quote_volume=5000, price=60_000, trade_id=f"burst-{i}", **A)
        for i in range(30)
    ]
    whale = trade(at=WHALE_MINUTE * 60 + 33, quote_volume=250_000, price=60_000, **B)
    # The sentinel moves both watermarks to ~29:30, closing every window before it.
    sentinel = trade(at=30 * 60, quote_volume=1000, price=60_000, **A)

    # Phase 1: history with the poison among it; phase 2 (later micro-batches): the planted anomalies.
    history = _background(0, 8)
    first = [line(t) for t in history[:40]] + list(POISON) + [line(t) for t in history[40:]]
    later = [line(t) for t in [*_background(8, 25), *burst, whale, sentinel]]
    runner = PipelineRunner(spark, settings)
    runner.start()
    try:
        produce(bootstrap, topic, first)
        runner.drain()
        produce(bootstrap, topic, later)
        runner.drain()
        assert all(q.isActive for q in runner.queries)
    finally:
        runner.stop()
    sent = len(first) + len(later)
    totals = ingest_totals(runner, sent)
    assert totals["processed"] == sent
    assert (totals["passed"], totals["failed"], totals["duplicate"]) == (sent - len(POISON), len(POISON), 0)

    dead = {r["raw"]: r["reason"] for r in iceberg_rows(spark, settings, "dead_letters")}
    assert dead.keys() == POISON.keys()
    assert [reason for raw, reason in dead.items() if not reason.startswith(POISON[raw])] == []

    expected = {
        _window_alert(BURST_MINUTE, A),
        _window_alert(WHALE_MINUTE, B),  # the whale lifts its own window's volume
        alert_id("MOD-002", whale.event_id),
        alert_id("MOD-003", "binance:BTC-USDT", "coinbase:BTC-USD", T0 + timedelta(minutes=SPREAD_MINUTE)),
    }
    hot = dynamo_alerts(settings)
    assert sorted(a.alert_id for a in hot) == sorted(expected), _describe(hot, expected)
    assert sorted(_lake_alerts(spark, settings)) == sorted(expected)

    # Restart from the checkpoint: more poison, a late trade and a second whale.
    # Minute 5 is behind every watermark by now.
    late = trade(at=5 * 60 + 1, quote_volume=1000, price=60_000, trade_id="late", **A)
    second_whale = trade(at=SECOND_WHALE_MINUTE * 60 + 7, quote_volume=300_000, price=60_000, **A)
    closing = trade(at=34 * 60, quote_volume=1000, price=60_000, **A)
    third = [_poison("p-9999-again", timestamp="9999-12-31T23:59:59Z"), line(late), line(second_whale)]
    third.append(line(closing))
    restarted = PipelineRunner(spark, settings)
    restarted.start()
    try:
        produce(bootstrap, topic, third)
        restarted.drain()
        assert all(q.isActive for q in restarted.queries)
    finally:
        restarted.stop()
    again = ingest_totals(restarted, sent + len(third))
    assert again["processed"] - totals["processed"] == len(third)
    assert again["failed"] - totals["failed"] == 1
    volume_query = restarted._ids["MOD-001"]
    assert metrics.DROPPED_BY_QUERY.get(volume_query, 0) >= 1  # the late trade is counted, not silent

    expected |= {alert_id("MOD-002", second_whale.event_id), _window_alert(SECOND_WHALE_MINUTE, A)}
    hot = dynamo_alerts(settings)
    assert sorted(a.alert_id for a in hot) == sorted(expected), _describe(hot, expected)
    lake = _lake_alerts(spark, settings)
    assert sorted(lake) == sorted(expected)  # nothing doubled by the restart
    assert len(iceberg_rows(spark, settings, "dead_letters")) == len(POISON) + 1
