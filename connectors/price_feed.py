"""The chain connectors' prices: a background reader of the trades stream feeding a PriceBook.

On-chain events are valued at their block time (DESIGN.md "Contracts") from the latest CEX trade price.
The chain connector trails the chain head by its confirmation depth, so the prices of a block's time
have already streamed by when the block is emitted. The reader starts ``lookback`` before now (Kafka
``offsets_for_times``, Kinesis ``AT_TIMESTAMP``), so a restarted connector values its first blocks too.
It never commits offsets: it is a reader beside the pipeline, not a consumer of its work.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from coattail.chains.valuation import PriceBook
from coattail.contracts.types import parse_utc
from coattail.settings import Settings

log = logging.getLogger("connectors.prices")


def apply_trade(book: PriceBook, payload: bytes) -> bool:
    """One trades-stream record into the book; False (ignored) for anything that is not a priced trade."""
    try:
        data = orjson.loads(payload)
        book.update(
            str(data["exchange"]),
            str(data["symbol"]),
            Decimal(str(data["price"])),
            parse_utc(data["timestamp"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ArithmeticError):
        return False
    return True


class TradePriceFeed:
    """Reads the trades stream in a daemon thread; ``book`` is safe to read from the connector's loop
    (one writer thread; readers see a price or the one before it)."""

    def __init__(
        self, settings: Settings, book: PriceBook | None = None, lookback: timedelta = timedelta(minutes=20)
    ) -> None:
        self.settings = settings
        self.book = book or PriceBook()
        self.lookback = lookback
        self.applied = 0
        self.ready = threading.Event()  # set once the look-back is read (or there is none to read)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TradePriceFeed:
        target = self._kinesis if self.settings.stream.backend == "kinesis" else self._kafka
        self._thread = threading.Thread(target=self._guarded, args=(target,), name="price-feed", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 30) -> bool:
        """Block until the look-back is in the book: a connector catching up a backlog of blocks must
        not value them against an empty book. False after ``timeout`` (the events then go unpriced)."""
        return self.ready.wait(timeout)

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _guarded(self, target: Any) -> None:
        last = ""
        while not self._stop.is_set():
            try:
                target()
            except Exception as exc:  # a lost feed must not kill the connector: values go null, retry
                error = repr(exc)[:300]
                # Said once per distinct problem (a trades topic not created yet is normal at start-up).
                (log.debug if error == last else log.warning)(
                    "price feed failed (%s), retrying every 5 s", error, extra={"error": error}
                )
                last = error
                self._stop.wait(5)

    def _since_ms(self) -> int:
        return int((datetime.now(UTC) - self.lookback).timestamp() * 1000)

    def _kafka(self) -> None:
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        from coattail.settings.endpoints import kafka_bootstrap

        topic = self.settings.stream.kafka.topic
        consumer = Consumer({
            "bootstrap.servers": kafka_bootstrap(self.settings),
            "group.id": f"coattail-prices-{uuid.uuid4()}",  # a private reader: assigned, never committed
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
            "logger": log,
        })  # fmt: skip
        try:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or (
                meta.error is not None and meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            ):
                self.ready.set()  # no trades topic yet: nothing to wait for, do not hold the chain
                raise RuntimeError(f"trades topic {topic!r} is not there yet")
            if meta.error is not None or not meta.partitions:  # e.g. a leader being elected: ask again
                raise RuntimeError(f"trades topic {topic!r} is not readable yet: {meta.error}")
            since = self._since_ms()
            wanted = [TopicPartition(topic, p, since) for p in meta.partitions]
            starts = consumer.offsets_for_times(wanted, timeout=10)
            consumer.assign(starts)
            # Ready once every partition is read up to where it ended when we started (a start offset
            # of -1: no trade since `since` there, nothing to read).
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions
            }
            reached = {tp.partition: tp.offset < 0 or tp.offset >= ends[tp.partition] for tp in starts}
            while not self._stop.is_set():
                for msg in consumer.consume(500, timeout=0.5):
                    if msg.error() is None:
                        if apply_trade(self.book, msg.value()):
                            self.applied += 1
                        if msg.offset() + 1 >= ends[msg.partition()]:
                            reached[msg.partition()] = True
                if all(reached.values()):
                    self.ready.set()
        finally:
            consumer.close()

    def _kinesis(self) -> None:
        import boto3

        k = self.settings.stream.kinesis
        client = boto3.client("kinesis", region_name=k.region, endpoint_url=k.endpoint_url or None)
        shards = client.list_shards(StreamName=k.stream_name)["Shards"]
        since = datetime.now(UTC) - self.lookback
        iterators = {
            s["ShardId"]: client.get_shard_iterator(
                StreamName=k.stream_name,
                ShardId=s["ShardId"],
                ShardIteratorType="AT_TIMESTAMP",
                Timestamp=since,
            )["ShardIterator"]
            for s in shards
        }
        if not iterators:
            self.ready.set()
        while not self._stop.is_set() and iterators:
            behind = 0
            for shard, iterator in list(iterators.items()):
                out = client.get_records(ShardIterator=iterator, Limit=1000)
                for record in out["Records"]:
                    if apply_trade(self.book, record["Data"]):
                        self.applied += 1
                behind = max(behind, int(out.get("MillisBehindLatest", 0)))
                if out.get("NextShardIterator"):
                    iterators[shard] = out["NextShardIterator"]
                else:
                    del iterators[shard]  # a closed shard (resharded): its children are listed next round
            if behind == 0:
                self.ready.set()
            time.sleep(1)  # GetRecords: 5 calls/s per shard; one round a second stays well inside
