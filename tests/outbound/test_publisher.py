"""AlertPublisher against the suite's Kafka broker and DynamoDB Local, and Kinesis on a moto server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from coattail.contracts import Alert
from coattail.devservices.process import free_port
from coattail.hotstore import DynamoAlertStore, item_to_json, streams_for
from coattail.hotstore.codec import alert_to_item
from jobs.outbound.publisher import (
    MARKER_PREFIX,
    AlertPublisher,
    KafkaAlertSink,
    PublishError,
    store_for,
)
from tests.outbound.conftest import MakeSettings, mixed_alerts

pytestmark = pytest.mark.services


def read_topic(bootstrap: str, topic: str, expect_at_least: int, timeout: float = 30) -> list[Any]:
    """Every record of ``topic`` from the start (its own throwaway group), waiting for at least
    ``expect_at_least`` of them, then reading on until the end offsets."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p.partition, 0) for p in parts])
        out: list[Any] = []
        deadline = datetime.now(UTC) + timedelta(seconds=timeout)
        while datetime.now(UTC) < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg)
            positions = {tp.partition: tp.offset for tp in consumer.position(parts)}
            if len(out) >= expect_at_least and all(positions[p] >= end for p, end in ends.items()):
                break
        return out
    finally:
        consumer.close()


@pytest.fixture
def kafka_settings(
    outbound_settings: MakeSettings, kafka_bootstrap: str, dynamodb_endpoint: str, aws_local_env: None
) -> MakeSettings:
    def make(**overrides: Any) -> Any:
        return outbound_settings(
            **{
                "stream.kafka.bootstrap_servers": kafka_bootstrap,
                "hot_store.endpoint_url": dynamodb_endpoint,
                **overrides,
            }
        )

    return make


def test_replayed_alerts_reach_the_topic_once_each(
    kafka_settings: MakeSettings, kafka_bootstrap: str
) -> None:
    settings = kafka_settings()
    alerts = mixed_alerts(12)
    publisher = AlertPublisher(settings)
    try:
        publisher.store.write(alerts)  # what the pipeline's hot write did just before
        assert publisher.publish(alerts[:7]) == 7
        assert publisher.publish(alerts + alerts[:3]) == 5  # a replay of the batch, plus repeats
        assert publisher.publish(alerts) == 0
    finally:
        publisher.close()
    again = AlertPublisher(settings)  # a restarted pipeline: the markers are in the table
    try:
        assert again.publish(list(reversed(alerts))) == 0
        assert again.skipped == len(alerts)
    finally:
        again.close()

    records = read_topic(kafka_bootstrap, settings.alerts_out.topic, expect_at_least=len(alerts))
    keys = [m.key().decode() for m in records]
    assert sorted(keys) == sorted(a.alert_id for a in alerts)  # each alert exactly once
    by_id = {a.alert_id: a for a in alerts}
    for msg in records:
        value = orjson.loads(msg.value())
        alert = by_id[msg.key().decode()]
        assert value == item_to_json(alert_to_item(alert))  # the API's JSON form
        assert Alert.model_validate(value) == alert


def test_markers_stay_out_of_alert_listings(kafka_settings: MakeSettings) -> None:
    settings = kafka_settings()
    alerts = mixed_alerts(6)
    store = store_for(settings)
    publisher = AlertPublisher(settings, store=store)
    try:
        store.write(alerts)
        assert publisher.publish(alerts) == 6
        now = datetime.now(UTC)
        listed = list(
            store.walk(
                streams_for(None, None, ["volume_spike", "whale_trade", "spread_divergence"]),
                now - timedelta(days=1),
                now,
                1000,
            )
        )
        assert sorted(a["alert_id"] for a in listed) == sorted(a.alert_id for a in alerts)
        for alert in alerts:
            assert store.get(alert.alert_id, now) == item_to_json(alert_to_item(alert))
            assert store.get(MARKER_PREFIX + alert.alert_id, now) is None  # GET /alerts/published#… → 404
        items = store.client.scan(TableName=store.table)["Items"]
        markers = [i for i in items if i["alert_id"]["S"].startswith(MARKER_PREFIX)]
        assert len(markers) == 6
        assert all("alert_type" not in m and "symbol" not in m for m in markers)  # in no GSI
        assert all(int(m["ttl_epoch"]["N"]) >= int(now.timestamp()) + 23 * 3600 for m in markers)
    finally:
        publisher.close()
        store.close()


def test_an_unacknowledged_publish_marks_nothing(kafka_settings: MakeSettings) -> None:
    """The broker is down: publish fails in one line within its timeout, and no marker is written,
    so the pipeline's replay of the micro-batch publishes the alerts after all."""
    settings = kafka_settings()
    alerts = mixed_alerts(3)
    dead = KafkaAlertSink(f"127.0.0.1:{free_port()}", settings.alerts_out.topic, timeout=3)
    publisher = AlertPublisher(settings, sink=dead)
    try:
        started = datetime.now(UTC)
        with pytest.raises(PublishError) as failure:
            publisher.publish(alerts)
        assert (datetime.now(UTC) - started).total_seconds() < 20
        assert "\n" not in str(failure.value)
        assert settings.alerts_out.topic in str(failure.value)
        assert publisher.marks.published([a.alert_id for a in alerts]) == set()
    finally:
        publisher.close()


@pytest.fixture
def kinesis(aws_local_env: None) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def read_stream(client: Any, stream: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            out += response["Records"]
            if not response["Records"]:
                break
            iterator = response.get("NextShardIterator")
    return out


def test_kinesis_publisher_puts_each_alert_once(
    outbound_settings: MakeSettings, kinesis: str, dynamodb_endpoint: str, unique_name: str
) -> None:
    client = boto3.client("kinesis", endpoint_url=kinesis, region_name="us-west-2")
    client.create_stream(StreamName=unique_name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=unique_name)
    settings = outbound_settings(
        **{
            "stream.backend": "kinesis",
            "stream.kinesis.endpoint_url": kinesis,
            "alerts_out.kinesis_stream_name": unique_name,
            "hot_store.endpoint_url": dynamodb_endpoint,
        }
    )
    alerts = mixed_alerts(9)
    publisher = AlertPublisher(settings)
    try:
        assert publisher.destination == f"kinesis:{unique_name}"
        assert publisher.publish(alerts[:4]) == 4
        assert publisher.publish(alerts) == 5  # the replay
    finally:
        publisher.close()
    restarted = AlertPublisher(settings)
    try:
        assert restarted.publish(alerts) == 0
    finally:
        restarted.close()

    records = read_stream(client, unique_name)
    assert sorted(r["PartitionKey"] for r in records) == sorted(a.alert_id for a in alerts)
    by_id = {a.alert_id: a for a in alerts}
    for record in records:
        assert Alert.model_validate(orjson.loads(record["Data"])) == by_id[record["PartitionKey"]]


def test_kinesis_stream_missing_is_one_line(
    outbound_settings: MakeSettings, kinesis: str, dynamodb_endpoint: str
) -> None:
    from coattail.settings import ConfigError

    settings = outbound_settings(
        **{
            "stream.backend": "kinesis",
            "stream.kinesis.endpoint_url": kinesis,
            "alerts_out.kinesis_stream_name": "no-such-stream",
            "hot_store.endpoint_url": dynamodb_endpoint,
        }
    )
    store: DynamoAlertStore = store_for(settings)
    try:
        with pytest.raises(ConfigError, match=r"no-such-stream.*alerts_out\.kinesis_stream_name"):
            AlertPublisher(settings, store=store)
    finally:
        store.close()
