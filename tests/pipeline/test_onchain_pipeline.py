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
ONCHAIN_MODULES = ["MOD-008", "MOD-009"]  # the wallet modules (MOD-004/005) have their own test below


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


def test_the_wallet_modules_stream_like_the_batch_into_the_wallet_store(
    spark: Any, onchain_settings: Settings
) -> None:
    """MOD-004 and MOD-005 on the stream (the medium tier's on-chain path): the same alerts as `coattail
    detect`, the same wallet_scores rows, the scores on the API's leaderboard and each alert referenced
    from the wallets it names."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from coattail.contracts.onchain import OnchainEvent
    from coattail.hotstore import DynamoAlertStore, make_client
    from coattail.hotstore.wallets import DynamoWalletStore
    from tests.jobs import wallet_events

    settings = onchain_settings
    wintermute = "0x0000006daea1723962647b7e189d311d757fb793"  # shipped label: market maker
    binance = "0x28c6c06298d514db089934071355e5743bf21d60"  # shipped label: exchange
    events = wallet_events.scenario()
    at = events[len(events) // 2].block_timestamp
    whale_move = OnchainEvent.create(
        blockchain="ethereum", block_number=9_999, block_hash="0x" + "9" * 64, block_timestamp=at,
        tx_hash="0x" + "8" * 64, log_index=3, ingestion_timestamp=at + timedelta(seconds=2),
        event_type="transfer", token=wallet_events.USDC, token_symbol="USDC", amount=Decimal(250_000),
        from_address=wintermute, to_address=binance, usd_value=Decimal(250_000),
    )  # fmt: skip
    lines = [dumps(e).decode() for e in sorted([*events, whale_move], key=lambda e: e.block_timestamp)]
    detectors = ModuleRegistry(settings).detectors(["MOD-004", "MOD-005"])
    no_trades = clean_trades(raw_frame(spark, []), settings)
    reference = detect(
        spark, settings, no_trades, detectors, onchain=clean_onchain(raw_frame(spark, lines), settings)
    )
    expected = _keyed([a for r in reference.values() for a in r.alerts])
    kinds = {a[1] for a in expected}
    assert {"known_whale_activity", "high_alpha_wallet", "score_change"} <= kinds

    bootstrap, topic = settings.stream.kafka.bootstrap_servers, settings.stream.kafka.onchain_topic
    produce(bootstrap, topic, [*lines, *lines])  # every event twice
    runner = PipelineRunner(spark, settings, detectors=detectors)
    runner.start()
    try:
        runner.drain(max_rounds=40)
        assert _keyed(dynamo_alerts(settings)) == expected
        whale = next(a for a in dynamo_alerts(settings) if a.alert_type == "known_whale_activity")
        assert (whale.details["label"], whale.details["direction"]) == ("Wintermute 1", "to_exchange")

        def utc(t: datetime) -> str:  # Spark reads the lake's timestamps back naive, in UTC
            return (t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t).isoformat()

        def rows(records: list[dict[str, Any]]) -> list[tuple[str, str, str, int, float]]:
            return sorted(
                (
                    r["blockchain"],
                    r["wallet"],
                    utc(r["scored_at"]),
                    int(r["trade_count"]),
                    round(float(r["alpha"]), 9),
                )
                for r in records
            )

        assert rows(iceberg_rows(spark, settings, "wallet_scores")) == rows(reference["MOD-004"].records)
        store = DynamoWalletStore(
            DynamoAlertStore(
                make_client(settings.hot_store.endpoint_url, "us-west-2"), settings.hot_store.table
            )
        )
        top, _ = store.top("ethereum", 10)
        assert top[0]["address"] == wallet_events.SMART
        assert top[0]["alpha_percentile"] == 100.0
        assert whale.alert_id in store.alerts("ethereum", wintermute, 10)  # its subject, not the exchange
    finally:
        runner.stop()
