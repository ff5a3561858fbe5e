"""Helpers of the streaming tests: Kafka topics, a runner on fresh settings, reading the sinks back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coattail.contracts import Alert
from coattail.hotstore import item_to_alert, make_client
from coattail.hotstore.windows import PARTITION_PREFIX
from coattail.settings import Settings
from jobs import metrics
from jobs.framework.runner import PipelineRunner
from jobs.sinks.iceberg import qualified


def create_topic(bootstrap: str, topic: str, partitions: int = 2) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)


def produce(
    bootstrap: str, topic: str, values: Iterable[str | bytes], key: Callable[[int], str] | None = None
) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    n = 0
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=(key(i) if key else str(i % 7)).encode())
        n += 1
        if n % 5000 == 0:
            producer.flush(30)
    assert producer.flush(30) == 0
    return n


def stream_settings(
    make_settings: Callable[..., Settings], kafka: str, dynamodb: str, name: str, **extra: Any
) -> Settings:
    return make_settings(
        **{
            "stream.kafka.bootstrap_servers": kafka,
            "stream.kafka.topic": name,
            # Its own on-chain topic too (the medium tier reads one): never another test's events.
            "stream.kafka.onchain_topic": f"{name}-onchain",
            "stream.kafka.onchain_dlq_topic": f"{name}-onchain-dlq",
            "hot_store.endpoint_url": dynamodb,
            "hot_store.table": f"alerts-{name}",
            # Crafted/simulated trades are from the past and DynamoDB Local does apply TTL: keep them.
            "hot_store.ttl_hours": 24 * 365 * 10,
            **extra,
        }
    )


def iceberg_rows(spark: Any, settings: Settings, table: str) -> list[dict[str, Any]]:
    # The streaming queries commit through their own (cloned) sessions' catalogs: drop this session's
    # cached table metadata, or a second read could miss their newer snapshots.
    spark.sql(f"REFRESH TABLE {qualified(settings, table)}")
    return [r.asDict() for r in spark.table(qualified(settings, table)).collect()]


def dynamo_alerts(settings: Settings) -> list[Alert]:
    client = make_client(settings.hot_store.endpoint_url, settings.hot_store.region)
    items: list[Any] = []
    kwargs: dict[str, Any] = {"TableName": settings.hot_store.table}
    while True:
        page = client.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            # The table also holds the dashboard's recent-window points and the wallet store (their own
            # partitions, no alert_type).
            return [
                item_to_alert(i)
                for i in items
                if "alert_type" in i and not i["alert_id"]["S"].startswith(PARTITION_PREFIX)
            ]
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def ingest_totals(runner: PipelineRunner, expect_processed: int, timeout: float = 30) -> dict[str, int]:
    """Quality counters of this runner's ingest query, once the listener has seen ``expect_processed``."""
    query_id = runner._ids[metrics.INGEST_QUERY]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = metrics.BY_QUERY.get(query_id, {})
        if got.get("processed", 0) >= expect_processed:
            return dict(got)
        time.sleep(0.2)
    return dict(metrics.BY_QUERY.get(query_id, {}))
