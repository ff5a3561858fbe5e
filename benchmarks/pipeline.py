"""Benchmark of the streaming detector pipeline (Small tier) on local[2].

Prints, from one run on the same data:
1. sustained throughput (events/s) of the whole pipeline — ingest (quality, dedup, raw_trades,
   dead_letters, MOD-002) plus the MOD-001 and MOD-003 queries — catching up on a pre-filled topic, and
   of a parse-and-count-only Spark query over the same topic (the baseline); the ratio of the two;
2. alert latency (whale trade timestamp → alert written to DynamoDB) p50/p99 while a separate producer
   process writes live trades at fixed rates (default 1K and 10K events/s), and whether it kept up.

Uses KAFKA_BOOTSTRAP_SERVERS / DYNAMODB_ENDPOINT when set, else starts the local services itself.
    .venv/bin/python benchmarks/pipeline.py [--events 200000] [--rates 1000,10000] [--seconds 45]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coattail.contracts.types import format_utc  # noqa: E402

INSTRUMENTS = [
    ("binance", "BTC-USDT", 60_000),
    ("binance", "ETH-USDT", 3_000),
    ("coinbase", "BTC-USD", 60_000),
    ("coinbase", "ETH-USD", 3_000),
]


def event(i: int, ts: datetime, whale: bool = False) -> bytes:
    """A TradeEvent JSON (string-formatted: pydantic per event would dominate the producer's CPU)."""
    exchange, symbol, price = INSTRUMENTS[i % len(INSTRUMENTS)]
    qty = "5.00000000" if whale else f"0.{(i * 7919) % 9000 + 1000:04d}0000"
    quote = f"{price * float(qty):.8f}"
    iso = format_utc(ts)
    return (
        f'{{"event_id":"{uuid.uuid4()}","exchange":"{exchange}","symbol":"{symbol}","price":"{price}",'
        f'"quantity":"{qty}","quote_volume":"{quote}","side":"buy","timestamp":"{iso}",'
        f'"ingestion_timestamp":"{iso}"}}'
    ).encode()


def fill(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
    now = datetime.now(UTC)
    for i in range(n):
        producer.produce(topic, event(i, now, whale=i % 5000 == 0), key=str(i % 3).encode())
        if i % 20000 == 0:
            producer.poll(0)
    producer.flush(60)


def produce_at(bootstrap: str, topic: str, rate: int, seconds: float, whale_every: float) -> None:
    """Separate process: ``rate`` events/s with trade time = now; a whale every ``whale_every`` s."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    start = time.monotonic()
    sent, next_whale = 0, 0.0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        now = datetime.now(UTC)
        while sent < due:
            whale = elapsed >= next_whale
            if whale:
                next_whale += whale_every
            producer.produce(topic, event(sent, now, whale=whale), key=str(sent % 3).encode())
            sent += 1
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(60)


def create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive its futures
    for future in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        future.result(30)


def end_offsets(bootstrap: str, topic: str) -> dict[str, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    try:
        return {
            str(p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3)
        }
    finally:
        consumer.close()


def caught_up(query: Any, target: dict[str, int]) -> bool:
    progress = query.lastProgress
    if not progress or not progress["sources"]:
        return False
    end = progress["sources"][0]["endOffset"]
    if isinstance(end, str):  # JSON text, or a Python repr in some PySpark progress objects
        import ast
        import json

        try:
            end = json.loads(end)
        except ValueError:
            end = ast.literal_eval(end)
    got = next(iter(end.values())) if end else {}
    return all(int(got.get(p, -1)) >= o for p, o in target.items())


def wait_caught_up(queries: list[Any], target: dict[str, int], timeout: float = 900) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        for q in queries:
            if not q.isActive:
                raise RuntimeError(f"query {q.name} stopped: {q.exception()}")
        if all(caught_up(q, target) for q in queries):
            return time.monotonic() - start
        time.sleep(0.2)
    raise TimeoutError("the pipeline did not catch up")


def settings_for(topic: str, kafka: str, dynamodb: str, state: Path, trigger: float, max_offsets: int) -> Any:
    from coattail.settings import load_settings

    return load_settings(
        "small",
        overrides={
            "stream.kafka.bootstrap_servers": kafka,
            "stream.kafka.topic": topic,
            "hot_store.endpoint_url": dynamodb,
            "hot_store.table": f"bench-{topic}",
            "lake.namespace": topic.replace("-", "_"),
            "pipeline.checkpoint_location": str(state / "checkpoints" / topic),
            "pipeline.trigger_interval_seconds": trigger,
            "pipeline.max_offsets_per_trigger": max_offsets,
            "pipeline.shuffle_partitions": 2,
        },
    )


def baseline(spark: Any, settings: Any, target: dict[str, int], state: Path) -> float:
    """Parse-and-count only: Kafka → from_json(TradeEvent) → count per micro-batch."""
    from pyspark.sql import functions as F

    from coattail.contracts import TradeEvent
    from coattail.contracts.spark import spark_schema
    from jobs.sources import kafka_stream

    counted: list[int] = []
    parsed = kafka_stream(spark, settings).select(F.from_json("value", spark_schema(TradeEvent)).alias("t"))
    query = (
        parsed.where(F.col("t.event_id").isNotNull())
        .writeStream.option("checkpointLocation", str(state / "checkpoints" / "baseline"))
        .trigger(processingTime=f"{settings.pipeline.trigger_interval_seconds:g} seconds")
        .foreachBatch(lambda df, _: counted.append(df.count()))
        .start()
    )
    try:
        return wait_caught_up([query], target)
    finally:
        query.stop()


class RecordingHotStore:
    """The real HotStore, plus the wall-clock time each alert reached DynamoDB."""

    def __init__(self, settings: Any) -> None:
        from jobs.sinks.hot import HotStore

        self.inner = HotStore(settings)
        self.written: dict[str, tuple[str, datetime, float]] = {}

    def write(self, alerts: Any) -> int:
        alerts = list(alerts)
        n = self.inner.write(alerts)
        now = time.time()
        for a in alerts:
            self.written.setdefault(a.alert_id, (a.module_id, a.detected_at, now))
        return n

    def __getattr__(self, name: str) -> Any:  # everything else (window points, close) is the real store's
        return getattr(self.inner, name)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rates", default="1000,10000")
    parser.add_argument("--seconds", type=float, default=45)
    parser.add_argument("--timing", action="store_true", help="log per-batch timings of the ingest query")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if args.timing:
        import logging

        logging.basicConfig(format="%(asctime)s %(message)s")
        logging.getLogger("jobs.pipeline").setLevel(logging.DEBUG)

    state = Path(tempfile.mkdtemp(prefix="coattail-bench-"))
    os.environ["COATTAIL_STATE_DIR"] = str(state)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    services = None
    kafka, dynamodb = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DYNAMODB_ENDPOINT")
    if not (kafka and dynamodb):
        from coattail.devservices import DevServices

        services = DevServices(state, in_memory_dynamodb=True)
        services.up()
        kafka, dynamodb = services.endpoints()["kafka"], services.endpoints()["dynamodb"]
    try:
        run(args, state, kafka, dynamodb)
    finally:
        if services:
            services.down()


def run(args: argparse.Namespace, state: Path, kafka: str, dynamodb: str) -> None:
    from jobs.session import build_session

    tag = uuid.uuid4().hex[:8]
    bulk = f"bench-bulk-{tag}"
    create_topic(kafka, bulk)
    t0 = time.monotonic()
    fill(kafka, bulk, args.events)
    target = end_offsets(kafka, bulk)
    print(f"filled {bulk}: {args.events} events in {time.monotonic() - t0:.1f}s", flush=True)

    settings = settings_for(bulk, kafka, dynamodb, state, trigger=1, max_offsets=100_000)
    spark = build_session(settings, app_name="coattail-bench", master="local[2]", shuffle_partitions=2)
    try:
        if not args.skip_throughput:
            throughput(spark, settings, target, state, args.events)
        for rate in [int(r) for r in args.rates.split(",") if r]:
            live_latency(spark, kafka, dynamodb, state, f"{rate}-{tag}", rate, args.seconds)
    finally:
        spark.stop()


def throughput(spark: Any, settings: Any, target: dict[str, int], state: Path, events: int) -> None:
    """Catch-up throughput of the whole pipeline vs. parse-and-count on the same pre-filled topic."""
    from jobs import metrics
    from jobs.framework.runner import PipelineRunner

    base_s = baseline(spark, settings, target, state)
    base_eps = events / base_s
    print(f"baseline parse+count: {base_s:.1f}s -> {base_eps:,.0f} events/s", flush=True)
    runner = PipelineRunner(spark, settings)
    runner.ensure_tables()  # table creation is first-run set-up, not throughput
    started = time.monotonic()
    runner.start()
    wait_caught_up(runner.queries, target)
    pipe_s = time.monotonic() - started
    runner.stop()
    pipe_eps = events / pipe_s
    print(
        f"pipeline (small tier, 3 queries): {pipe_s:.1f}s -> {pipe_eps:,.0f} events/s sustained; "
        f"ratio to parse+count {pipe_eps / base_eps:.2f} "
        f"({metrics.totals()['processed']:.0f} records counted)",
        flush=True,
    )


def live_latency(
    spark: Any, kafka: str, dynamodb: str, state: Path, tag: str, rate: int, seconds: float
) -> None:
    """Whale alert latency (trade time -> DynamoDB) while a separate process produces at ``rate``."""
    from jobs.framework.runner import PipelineRunner

    topic = f"bench-live-{tag}"
    create_topic(kafka, topic)
    live = settings_for(topic, kafka, dynamodb, state, trigger=1, max_offsets=200_000)
    hot = RecordingHotStore(live)
    runner = PipelineRunner(spark, live, hot=hot)  # type: ignore[arg-type]
    runner.start()
    time.sleep(5)  # let the first (empty) batches and table set-up pass
    producer = multiprocessing.Process(target=produce_at, args=(kafka, topic, rate, seconds, 0.5))
    producer.start()
    producer.join()
    target = end_offsets(kafka, topic)
    lag_s = wait_caught_up(runner.queries[:1], target, timeout=600)
    time.sleep(3)
    runner.stop()
    # Whale alerts carry the trade's own time: trade -> DynamoDB, nothing else mixed in.
    whales = [w - d.timestamp() for m, d, w in hot.written.values() if m == "MOD-002"]
    # Keeping up = the backlog left when the producer stops drains within about one micro-batch.
    kept_up = f"backlog drained {lag_s:.0f}s after the producer stopped"
    if not whales:
        print(f"live {rate:,} events/s: no alerts recorded ({kept_up})", flush=True)
        return
    print(
        f"live {rate:,} events/s for {seconds:.0f}s ({sum(target.values()):,} events): {kept_up}; "
        f"alert latency (trade time -> DynamoDB) over {len(whales)} alerts: "
        f"p50 {statistics.median(whales):.2f}s, p99 {pct(whales, 99):.2f}s",
        flush=True,
    )


if __name__ == "__main__":
    main()
