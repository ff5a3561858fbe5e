"""`coattail dev up; down; up`: the services come back on their own data, any number of times.

These tests start their own services in a tmp folder (the suite's shared ones run DynamoDB in
memory), with ports picked free, and stop them at the end.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coattail.devservices import DevServices, kafka
from coattail.devservices.process import alive

pytestmark = pytest.mark.services
TOPIC = "restart-check"
TABLE = "restart-check"
PER_ROUND = 500


def dash_cluster_id() -> str:
    """A valid cluster id (16 bytes, base64url) that starts with '-' (index 62 of the alphabet)."""
    raw = bytearray(os.urandom(16))
    raw[0] = (62 << 2) | (raw[0] & 0b11)
    cid = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert cid.startswith("-")
    return cid


@pytest.fixture
def services(tmp_path: Path) -> Iterator[DevServices]:
    the_services = DevServices(tmp_path, cluster_id_source=dash_cluster_id)
    try:
        yield the_services
    finally:
        the_services.down()


def produce(bootstrap: str, round_no: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(PER_ROUND):
        producer.produce(TOPIC, key=f"k{i % 5}", value=f"round{round_no}-{i}")
    assert producer.flush(60) == 0


def consume_all(bootstrap: str, expected: int) -> list[str]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([TOPIC])
    seen: list[str] = []
    deadline = time.monotonic() + 90
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                if msg.error():
                    raise KafkaException(msg.error())
                seen.append(msg.value().decode())
    finally:
        consumer.close()
    return seen


def dynamodb(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # DynamoDB Local ignores credentials
    )


def test_three_restarts_keep_topics_messages_and_items(services: DevServices, tmp_path: Path) -> None:
    home = tmp_path / "dev" / "kafka"
    cluster_ids = []
    pids: list[int] = []
    for round_no in range(1, 4):
        infos = services.up()
        assert all(info.answering for info in infos.values()), infos
        pids += [info.pid for info in infos.values() if info.pid]
        bootstrap, endpoint = services.endpoints()["kafka"], services.endpoints()["dynamodb"]
        cluster_ids.append(kafka.formatted_cluster_id(home))
        client = dynamodb(endpoint)
        if round_no == 1:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])[TOPIC].result(30)
            client.create_table(
                TableName=TABLE,
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            )
        # Everything written in earlier rounds is still there ...
        before = consume_all(bootstrap, (round_no - 1) * PER_ROUND)
        assert sorted(before) == sorted(f"round{r}-{i}" for r in range(1, round_no) for i in range(PER_ROUND))
        items = client.scan(TableName=TABLE, ConsistentRead=True)["Items"]
        assert sorted(item["id"]["S"] for item in items) == [f"item{r}" for r in range(1, round_no)]
        # ... and this round adds to it.
        produce(bootstrap, round_no)
        client.put_item(TableName=TABLE, Item={"id": {"S": f"item{round_no}"}})
        assert len(consume_all(bootstrap, round_no * PER_ROUND)) == round_no * PER_ROUND
        assert sorted(services.down()) == ["dynamodb", "kafka"]
    # Formatted once, with the injected id that starts with "-", and never again.
    assert cluster_ids[0] is not None
    assert cluster_ids[0].startswith("-")
    assert cluster_ids == [cluster_ids[0]] * 3
    assert (home / "cluster.id").read_text().strip() == cluster_ids[0]
    assert not any(alive(pid) for pid in pids)


def test_dynamodb_listens_on_loopback_only(services: DevServices) -> None:
    services.up()
    port = int(services.endpoints()["dynamodb"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    # 127.0.0.2 is another address of the loopback interface: a server bound to every interface
    # (0.0.0.0) accepts there too; one bound to 127.0.0.1 refuses.
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.2", port), timeout=5):
        pass


def test_generated_cluster_ids_never_start_with_a_dash(tmp_path: Path) -> None:
    draws = iter([bytes([62 << 2]) + bytes(15), bytes([62 << 2 | 1]) + bytes(15), bytes(range(16))])
    calls = []

    def random_bytes(n: int) -> bytes:
        calls.append(n)
        return next(draws)

    cid = kafka.new_cluster_id(random_bytes)
    assert not cid.startswith("-")
    assert len(cid) == 22
    assert len(calls) == 3  # the two ids starting with "-" were drawn again
    assert all(not kafka.new_cluster_id().startswith("-") for _ in range(2000))
    argv = kafka.format_argv(tmp_path, "-AbCdEfGhIjKlMnOpQrStU")
    assert "--cluster-id=-AbCdEfGhIjKlMnOpQrStU" in argv  # one element: never read as an option
    assert "-t" not in argv
