"""Where a restarted chain connector picks up: the on-chain stream itself is the checkpoint.

The newest event of a chain on the ``onchain`` topic says how far it got; the connector re-reads from
``margin`` blocks (slots) before that. Re-reading is harmless (event ids are deterministic and the
pipeline drops duplicates), a gap is not: records still in the producer's buffer when a process died
may be missing behind that newest one on other partitions, and the margin covers them.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson

from coattail.settings import Settings

log = logging.getLogger("connectors.resume")
# Blocks (Ethereum, 12 s) or slots (Solana, 0.4 s) re-read behind the newest event on the stream.
RESUME_MARGIN = {"ethereum": 64, "solana": 1500}


def resume_point(settings: Settings, chain: str, timeout: float = 10) -> int | None:
    """First block/slot to read after a restart; None when the stream has nothing of ``chain`` yet."""
    if settings.stream.backend != "kafka":
        return None  # Kinesis: the connector starts at its configured start block (see README)
    newest = newest_block(settings, chain, timeout)
    if newest is None:
        return None
    return max(0, newest - RESUME_MARGIN.get(chain, 64))


def newest_block(settings: Settings, chain: str, timeout: float = 10, tail: int = 200) -> int | None:
    """The highest ``block_number`` of ``chain`` among the last ``tail`` records of every partition."""
    from confluent_kafka import Consumer, TopicPartition

    from coattail.settings.endpoints import kafka_bootstrap

    topic = settings.stream.kafka.onchain_topic
    consumer = Consumer({
        "bootstrap.servers": kafka_bootstrap(settings),
        "group.id": f"coattail-resume-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "logger": log,
    })  # fmt: skip
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None:
            return None
        starts, wanted = [], 0
        for partition in meta.partitions:
            low, high = _watermarks(consumer, TopicPartition(topic, partition), timeout)
            if high > low:
                starts.append(TopicPartition(topic, partition, max(low, high - tail)))
                wanted += min(tail, high - low)
        if not starts:
            return None
        consumer.assign(starts)
        newest: int | None = None
        seen = 0
        while seen < wanted:
            batch = consumer.consume(500, timeout=timeout)
            if not batch:
                break
            for msg in batch:
                seen += 1
                if msg.error() is not None:
                    continue
                try:
                    data = orjson.loads(msg.value())
                    block = int(data["block_number"]) if data.get("blockchain") == chain else None
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
                if block is not None and (newest is None or block > newest):
                    newest = block
        return newest
    finally:
        consumer.close()


def _watermarks(consumer: Any, partition: Any, timeout: float) -> tuple[int, int]:
    """A partition's offsets; a topic created a moment ago may have no leader yet: ask again briefly."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=timeout)
            return int(low), int(high)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
