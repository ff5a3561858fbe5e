"""Alerts first, lake second (issue 12): a whale alert reaches DynamoDB while the lake path has not
committed anything; a kill between the hot write and the lake write loses nothing and writes no alert
twice; a volume spike is alerted while its window is still open and the closed window replaces it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from coattail.contracts import alert_id
from coattail.settings import Settings
from jobs.framework.detector import BaseDetector, DetectorResult
from jobs.framework.runner import PipelineRunner
from tests.pipeline.helpers import T0, line, trade
from tests.pipeline.streamkit import create_topic, dynamo_alerts, iceberg_rows, produce, stream_settings

pytestmark = [pytest.mark.spark, pytest.mark.services]
BTC = {"exchange": "binance", "symbol": "BTC-USDT"}


@pytest.fixture
def make(
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    dynamodb_endpoint: str,
    unique_name: str,
    aws_local_env: None,
) -> Callable[..., Settings]:
    create_topic(kafka_bootstrap, unique_name)

    def settings(**extra: Any) -> Settings:
        return stream_settings(make_settings, kafka_bootstrap, dynamodb_endpoint, unique_name, **extra)

    return settings


def _history() -> list[str]:
    """Ten minutes of ~100K/min on BTC-USDT in small trades (MOD-001's minimum history)."""
    return [
        line(trade(at=m * 60 + 5 + k, quote_volume=25_000 + (m % 2) * 500, price=50_000, **BTC))
        for m in range(10)
        for k in (0, 10, 20, 30)
    ]


def _wait_for(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return check()


def test_a_whale_alert_does_not_wait_for_the_lake(spark: Any, make: Callable[..., Settings]) -> None:
    # The lake path commits once at start, then not for an hour: the alert path must not need it.
    settings = make(**{"pipeline.trigger_interval_seconds": 3600, "pipeline.alert_trigger_seconds": 0.5})
    runner = PipelineRunner(spark, settings)
    runner.start()
    try:
        lake = runner.queries[0]
        assert _wait_for(lambda: lake.lastProgress is not None, 120)  # its first (empty) batch is over
        whale = trade(at=3, quote_volume=750_000, price=60_000, **BTC)
        sent = time.monotonic()
        produce(settings.stream.kafka.bootstrap_servers, settings.stream.kafka.topic, [line(whale)])
        assert _wait_for(lambda: any(a.module_id == "MOD-002" for a in dynamo_alerts(settings)), 60)
        took = time.monotonic() - sent
        (alert,) = dynamo_alerts(settings)
        assert alert.alert_id == alert_id("MOD-002", whale.event_id)
        assert iceberg_rows(spark, settings, "raw_trades") == []  # the lake has not committed it yet
        assert iceberg_rows(spark, settings, "anomaly_alerts") == []
        print(f"\nwhale alert in DynamoDB {took:.1f} s after produce, lake untouched")
    finally:
        runner.stop()


class KilledBetweenHotAndLake(PipelineRunner):
    """Dies (the micro-batch fails, as a kill would leave it) after the hot write, before the lake write,
    the first time each named query gets there."""

    def __init__(self, *args: Any, kill_in: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kill_in = set(kill_in)
        self.killed: list[str] = []

    def _to_lake(self, detector: BaseDetector, result: DetectorResult, key: str, check: bool) -> None:
        if detector.module_id in self.kill_in and (result.alerts or result.records):
            self.kill_in.discard(detector.module_id)
            self.killed.append(detector.module_id)
            raise RuntimeError(f"killed between the hot and the lake write of {detector.module_id}")
        super()._to_lake(detector, result, key, check)


def test_a_kill_between_the_hot_and_the_lake_write(spark: Any, make: Callable[..., Settings]) -> None:
    settings = make()
    bootstrap, topic = settings.stream.kafka.bootstrap_servers, settings.stream.kafka.topic
    burst = [line(trade(at=600 + 5 + k, quote_volume=200_000, price=60_000, **BTC)) for k in (0, 10)]
    closer = line(trade(at=900, quote_volume=10, price=60_000, **BTC))  # closes minute 10 (and 11)
    lines = [*_history(), *burst, closer]
    produce(bootstrap, topic, lines)
    dying = KilledBetweenHotAndLake(spark, settings, kill_in={"MOD-001", "MOD-002"})
    dying.start()
    try:
        assert _wait_for(lambda: not all(q.isActive for q in dying.queries), 240)
    finally:
        dying.stop(grace_seconds=5)
    assert dying.killed  # at least one query died between its two writes
    hot_before = {a.alert_id for a in dynamo_alerts(settings)}
    assert hot_before  # the hot write happened before the kill

    restarted = PipelineRunner(spark, settings)
    restarted.start()
    try:
        restarted.drain(max_rounds=30)
    finally:
        restarted.stop()
    raw = [r["event_id"] for r in iceberg_rows(spark, settings, "raw_trades")]
    assert len(raw) == len(set(raw)) == len(lines)  # nothing lost, nothing twice
    lake = [r["alert_id"] for r in iceberg_rows(spark, settings, "anomaly_alerts")]
    hot = [a.alert_id for a in dynamo_alerts(settings)]
    assert len(lake) == len(set(lake))
    assert sorted(lake) == sorted(hot)
    spike = alert_id("MOD-001", "BTC-USDT", "binance", T0.replace(minute=10))
    assert spike in lake
    whales = [r["event_id"] for r in iceberg_rows(spark, settings, "whale_trades")]
    assert len(whales) == len(set(whales)) == 2
    windows = iceberg_rows(spark, settings, "volume_aggregates")
    keys = [(r["exchange"], r["window_start"]) for r in windows]
    assert len(keys) == len(set(keys))


def test_a_volume_spike_is_alerted_while_its_window_is_open(
    spark: Any, make: Callable[..., Settings]
) -> None:
    settings = make(**{"pipeline.window_trigger_seconds": 0.5})
    bootstrap, topic = settings.stream.kafka.bootstrap_servers, settings.stream.kafka.topic
    spike = alert_id("MOD-001", "BTC-USDT", "binance", T0.replace(minute=10))
    runner = PipelineRunner(spark, settings)
    runner.start()
    try:
        produce(bootstrap, topic, _history())
        runner.drain()
        # Minute 10 gets a burst; the watermark (30 s behind the newest trade) keeps the window open.
        burst = [trade(at=600 + 1 + k, quote_volume=40_000, price=60_000, **BTC) for k in range(10)]
        produce(bootstrap, topic, [line(t) for t in burst])
        assert _wait_for(lambda: spike in {a.alert_id for a in dynamo_alerts(settings)}, 90)
        (early,) = [a for a in dynamo_alerts(settings) if a.alert_id == spike]
        assert early.details["early"] is True
        assert early.detected_at == T0.replace(minute=11)  # the window's end: the item the close replaces
        assert iceberg_rows(spark, settings, "anomaly_alerts") == []  # early warnings stay out of the lake
        produce(bootstrap, topic, [line(trade(at=700, quote_volume=10, price=60_000, **BTC))])  # closes it
        runner.drain()
    finally:
        runner.stop()
    (final,) = [a for a in dynamo_alerts(settings) if a.alert_id == spike]  # one item, replaced
    assert final.details["early"] is False
    assert final.details["window_volume"] == pytest.approx(400_000)
    assert final.details["z_score"] >= early.details["z_score"]
    assert [r["alert_id"] for r in iceberg_rows(spark, settings, "anomaly_alerts")] == [spike]
