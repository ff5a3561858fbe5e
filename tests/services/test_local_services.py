"""The local Kafka broker and DynamoDB Local, exercised for real."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import boto3
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coattail.devservices import DevServices, ServiceError
from coattail.devservices.process import alive

pytestmark = pytest.mark.services


def test_kafka_10k_messages_three_partitions_consumer_group(kafka_bootstrap: str, unique_name: str) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(unique_name, num_partitions=3, replication_factor=1)])[unique_name].result(
        30
    )
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "linger.ms": 5})
    sent = 10_000
    for i in range(sent):
        producer.produce(unique_name, key=f"k{i % 7}", value=f"message-{i}")
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{unique_name}-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([unique_name])
    seen: Counter[str] = Counter()
    partitions: set[int] = set()
    deadline = time.monotonic() + 60
    while sum(seen.values()) < sent and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=1.0):
            assert msg.error() is None, msg.error()
            seen[msg.value().decode()] += 1
            partitions.add(msg.partition())
    consumer.commit(asynchronous=False)
    committed = consumer.committed([*consumer.assignment()], timeout=10)
    consumer.close()
    assert len(seen) == sent
    assert max(seen.values()) == 1
    assert partitions == {0, 1, 2}
    assert sum(tp.offset for tp in committed) == sent


def test_dynamodb_table_with_two_gsis_and_ttl(
    dynamodb_endpoint: str, unique_name: str, aws_local_env: None
) -> None:
    client = boto3.client("dynamodb", endpoint_url=dynamodb_endpoint)
    client.create_table(
        TableName=unique_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"}
            for n in ("alert_id", "detected_at", "alert_type", "symbol")
        ],
        KeySchema=[
            {"AttributeName": "alert_id", "KeyType": "HASH"},
            {"AttributeName": "detected_at", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": key, "KeyType": "HASH"},
                    {"AttributeName": "detected_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for name, key in (("type-time-index", "alert_type"), ("symbol-time-index", "symbol"))
        ],
    )
    client.update_time_to_live(
        TableName=unique_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl_epoch"}
    )
    for i in range(5):
        client.put_item(
            TableName=unique_name,
            Item={
                "alert_id": {"S": f"a{i}"},
                "detected_at": {"S": f"2025-02-05T10:3{i}:00.000Z"},
                "alert_type": {"S": "whale_trade" if i % 2 else "volume_spike"},
                "symbol": {"S": "BTC-USDT"},
                "ttl_epoch": {"N": "1738838400"},
            },
        )
    found: list[str] = []
    deadline = time.monotonic() + 15
    while found != ["a3", "a1"] and time.monotonic() < deadline:  # GSIs are eventually consistent
        got = client.query(
            TableName=unique_name,
            IndexName="type-time-index",
            KeyConditionExpression="alert_type = :t AND detected_at > :s",
            ExpressionAttributeValues={":t": {"S": "whale_trade"}, ":s": {"S": "2025-02-05T10:30:00.000Z"}},
            ScanIndexForward=False,
        )
        found = [item["alert_id"]["S"] for item in got["Items"]]
        time.sleep(0.1)
    assert found == ["a3", "a1"]
    ttl = client.describe_time_to_live(TableName=unique_name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "ttl_epoch"
    indexes = {
        g["IndexName"]
        for g in client.describe_table(TableName=unique_name)["Table"]["GlobalSecondaryIndexes"]
    }
    assert indexes == {"type-time-index", "symbol-time-index"}


def _cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "coattail", "dev", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COATTAIL_STATE_DIR": str(state), "COLUMNS": "200"},
        check=False,
    )


def test_dev_up_status_down_leaves_nothing_behind(tmp_path: Path) -> None:
    up = _cli(tmp_path, "up")
    assert up.returncode == 0, up.stderr
    status = _cli(tmp_path, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    import json

    infos = json.loads(status.stdout)
    assert infos["kafka"]["answering"]
    assert infos["dynamodb"]["answering"]
    assert infos["kafka"]["address"].startswith("127.0.0.1:")
    pids = [infos["kafka"]["pid"], infos["dynamodb"]["pid"]]
    again = _cli(tmp_path, "up")  # idempotent: reuses the running services
    assert again.returncode == 0
    assert json.loads(_cli(tmp_path, "status", "--json").stdout)["kafka"]["pid"] == pids[0]
    down = _cli(tmp_path, "down")
    assert down.returncode == 0
    assert not any(alive(pid) for pid in pids)
    after = _cli(tmp_path, "status")
    assert after.returncode == 1
    assert "stopped" in after.stdout


def test_up_fails_clearly_when_a_service_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = DevServices(tmp_path, start_timeout=20)
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-XX:+NoSuchOption")  # every JVM refuses to start
    with pytest.raises(ServiceError) as err:
        services.up()
    message = str(err.value)
    assert "kafka" in message
    assert "log tail" in message
    services.down()
