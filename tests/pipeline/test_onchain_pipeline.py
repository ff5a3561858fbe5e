"""The on-chain path through the streaming pipeline (issue 14 item 7): OnchainEvents on their own Kafka
topic → on-chain quality → MOD-008 (alert query, hot store only) and MOD-009 (stateful, per pool) →
DynamoDB Local, then onchain_events / dex_trades / anomaly_alerts / dead_letters in Iceberg. A second
copy of every event (a block read twice) changes nothing; bad records are dead-lettered with a reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coattail.contracts import dumps
from coattail.settings import Settings
from jobs.batchmode import clean_onchain, clean_trades, detect
from jobs.framework.registry import ModuleRegistry
from jobs.framework.runner import ONCHAIN_ALERTS_QUERY, ONCHAIN_INGEST_QUERY, PipelineRunner
from tests.jobs.onchain_events import bad_lines, scenario, transfer
from tests.pipeline.helpers import raw_frame
from tests.pipeline.streamkit import create_topic, dynamo_alerts, iceberg_rows, produce, stream_settings
from tests.pipeline.test_kinesis import kinesis

__all__ = ["kinesis"]  # the moto Kinesis server fixture

pytestmark = [pytest.mark.spark, pytest.mark.services]
ONCHAIN_MODULES = ["MOD-008", "MOD-009"]  # the large tier also lists modules not built yet (MOD-004 …)


@pytest.fixture
def onchain_settings(
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    dynamodb_endpoint: str,
    unique_name: str,
    aws_local_env: None,
) -> Settings:
    topic = f"{unique_name}-onchain"
    create_topic(kafka_bootstrap, unique_name)
    create_topic(kafka_bootstrap, topic)
    return stream_settings(
        make_settings,
        kafka_bootstrap,
        dynamodb_endpoint,
        unique_name,
        **{"stream.kafka.onchain_topic": topic},
    )


def _keyed(alerts: list[Any]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (a.alert_id, a.alert_type, a.severity, json.dumps(a.details, sort_keys=True)) for a in alerts
    )


def test_onchain_events_to_dynamodb_and_iceberg(spark: Any, onchain_settings: Settings) -> None:
    settings = onchain_settings
    events = scenario()
    closer = transfer(99, 200, None)  # unpriced: no alert; moves MOD-009's watermark past both windows
    valid = [*events.values(), closer]
    lines = [dumps(e).decode() for e in valid]
    detectors = ModuleRegistry(settings).detectors(ONCHAIN_MODULES)
    # The batch path (coattail detect) over the same events is the reference.
    no_trades = clean_trades(raw_frame(spark, []), settings)
    chain = clean_onchain(raw_frame(spark, lines), settings)
    reference = detect(spark, settings, no_trades, detectors, onchain=chain)
    expected = _keyed([a for r in reference.values() for a in r.alerts])
    assert len(expected) == 6

    bootstrap, topic = settings.stream.kafka.bootstrap_servers, settings.stream.kafka.onchain_topic
    produce(bootstrap, topic, [*lines, *lines, *bad_lines()])  # every event twice, three bad records
    runner = PipelineRunner(spark, settings, detectors=detectors)
    runner.start()
    try:
        names = {q.name for q in runner.queries}
        assert {ONCHAIN_ALERTS_QUERY, ONCHAIN_INGEST_QUERY, "MOD-009"} <= names
        runner.drain(max_rounds=30)
        assert _keyed(dynamo_alerts(settings)) == expected

        landed = [r["event_id"] for r in iceberg_rows(spark, settings, "onchain_events")]
        assert sorted(landed) == sorted(e.event_id for e in valid)  # each once, duplicates dropped
        swaps = iceberg_rows(spark, settings, "dex_trades")
        assert sorted(r["event_id"] for r in swaps) == sorted(
            e.event_id for e in (events["swap_small"], events["swap_large"])
        )
        lake_alerts = [r["alert_id"] for r in iceberg_rows(spark, settings, "anomaly_alerts")]
        assert sorted(lake_alerts) == sorted(a[0] for a in expected)
        reasons = sorted(r["reason"] for r in iceberg_rows(spark, settings, "dead_letters"))
        assert len(reasons) == 3
        assert any("amount < 0" in r for r in reasons)
        assert any("unknown chain dogecoin" in r for r in reasons)
        assert any(r.startswith("malformed") for r in reasons)

        # The same block read again later (a reconnect's gap fill): nothing new anywhere.
        produce(bootstrap, topic, lines)
        runner.drain(max_rounds=30)
        assert _keyed(dynamo_alerts(settings)) == expected
        assert len(iceberg_rows(spark, settings, "onchain_events")) == len(valid)
        assert len(iceberg_rows(spark, settings, "dex_trades")) == 2
        assert len(iceberg_rows(spark, settings, "anomaly_alerts")) == len(expected)
    finally:
        runner.stop()


def test_the_onchain_topic_is_read_only_when_a_module_needs_it(
    spark: Any, onchain_settings: Settings
) -> None:
    runner = PipelineRunner(
        spark, onchain_settings, detectors=ModuleRegistry(onchain_settings).detectors(["MOD-002"])
    )
    runner.start()
    try:
        names = {q.name for q in runner.queries}
    finally:
        runner.stop()
    assert not names & {ONCHAIN_ALERTS_QUERY, ONCHAIN_INGEST_QUERY, "MOD-009"}


def test_the_onchain_kinesis_stream(
    spark: Any, make_settings: Callable[..., Settings], kinesis: str, unique_name: str, tmp_path: Path
) -> None:
    """stream.backend kinesis: the on-chain stream (``onchain_stream_name``), not the trades stream."""
    import boto3

    from jobs import onchain_quality
    from jobs.sources import raw_stream

    client: Any = boto3.client("kinesis", endpoint_url=kinesis, region_name="us-west-2")
    name = f"{unique_name}-onchain"
    for stream in (unique_name, name):
        client.create_stream(StreamName=stream, ShardCount=1)
        client.get_waiter("stream_exists").wait(StreamName=stream)
    settings = make_settings(
        **{
            "stream.backend": "kinesis",
            "stream.kinesis.stream_name": unique_name,
            "stream.kinesis.onchain_stream_name": name,
            "stream.kinesis.endpoint_url": kinesis,
        }
    )
    events = list(scenario().values())
    records = [dumps(e).decode() for e in events] + ["junk"]
    put = [{"Data": v.encode(), "PartitionKey": str(i)} for i, v in enumerate(records)]
    assert client.put_records(StreamName=name, Records=put)["FailedRecordCount"] == 0
    trade_put = [{"Data": b"a trade stream record", "PartitionKey": "0"}]
    assert client.put_records(StreamName=unique_name, Records=trade_put)["FailedRecordCount"] == 0

    seen: list[tuple[str, str | None, str]] = []
    classified = onchain_quality.classify(raw_stream(spark, settings, onchain=True), settings)
    query = (
        classified.select("event_id", "dq_reason", "source_pos")
        .writeStream.option("checkpointLocation", str(tmp_path / "kinesis-onchain"))
        .foreachBatch(
            lambda df, _: seen.extend((r.event_id, r.dq_reason, r.source_pos) for r in df.collect())
        )
        .start()
    )
    try:
        query.processAllAvailable()
    finally:
        query.stop()
    assert sorted(e for e, reason, _ in seen if reason is None) == sorted(e.event_id for e in events)
    assert [r for _, r, _ in seen if r is not None] == ["malformed: not an OnchainEvent JSON object"]
    assert all(pos.startswith(f"{name}/") for _, _, pos in seen)
