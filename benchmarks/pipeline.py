"""Benchmark of the streaming detector pipeline (Small tier) on local[2], with the shipped settings.

Prints, from one run on the same data:
1. sustained throughput (events/s, steady state: from the moment every query finished its first
   micro-batch) of the whole pipeline — the alert path, the MOD-001 and MOD-003 queries and the lake
   path — catching up on a pre-filled topic, and of a parse-and-count-only Spark query over the same
   topic (the baseline); the ratio of the two. ``--peers`` then runs benchmarks/peers (PyFlink,
   quixstreams, a bare consume loop) on the same topic;
2. at each live rate (default 1K, 5K and 10K events/s, a separate producer process, the broker on this
   machine), alert latency p50/p99 per alert type: whale (trade time → DynamoDB), volume spike early
   (burst trade → its early alert) and final (window end + watermark → the closed window's alert), spread
   (window end + watermark → alert), from SOL instruments with 12 minutes of history and a burst plus a
   dislocation every minute; whale trade -> webhook POST (alerts out on: the router publishes to the
   run's alerts topic, the dispatcher thread POSTs to a local HTTP server); each query's median batch
   phases (Spark's durationMs); and the peak RSS of the pipeline alone (PySpark driver + Spark JVM +
   Python workers, not the broker or DynamoDB Local).

Uses KAFKA_BOOTSTRAP_SERVERS / DYNAMODB_ENDPOINT when set, else starts the local services itself.
    .venv/bin/python benchmarks/pipeline.py [--events 2000000] [--rates 1000,5000,10000] [--seconds 150]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
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


# The windowed-alert scenario rides on two SOL instruments beside the load (BTC/ETH have no history, so
# they raise no volume alerts): one trade per second each, a burst at second 5 of every minute (40
# trades of 3,000: ~2.3x the minute's usual volume), alternating instruments, and binance 1.5 % above
# coinbase in the second 30 s window of every minute.
SOL = (("binance", "SOL-USDT"), ("coinbase", "SOL-USD"))


def sol_trade(exchange: str, symbol: str, ts: datetime, quote: float, price: float = 150.0) -> bytes:
    qty = f"{quote / price:.8f}"
    iso = format_utc(ts)
    return (
        f'{{"event_id":"{uuid.uuid4()}","exchange":"{exchange}","symbol":"{symbol}","price":"{price:.4f}",'
        f'"quantity":"{qty}","quote_volume":"{float(qty) * price:.8f}","side":"buy","timestamp":"{iso}",'
        f'"ingestion_timestamp":"{iso}"}}'
    ).encode()


def sol_history(bootstrap: str, topic: str, minutes: int = 12) -> None:
    """MOD-001's history for the SOL instruments: one trade per second each, up to now."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    end = datetime.now(UTC)
    for s in range(minutes * 60, 0, -1):
        ts = end - timedelta(seconds=s)
        for k, (exchange, symbol) in enumerate(SOL):
            producer.produce(topic, sol_trade(exchange, symbol, ts, 1500 + (s * 37 + k) % 200), key=b"sol")
    producer.flush(60)


def produce_at(
    bootstrap: str, topic: str, rate: int, seconds: float, whale_every: float, plan_file: str = ""
) -> None:
    """Separate process: ``rate`` events/s with trade time = now; a whale every ``whale_every`` s; the
    SOL scenario (planted bursts and dislocations written to ``plan_file``)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    start = time.monotonic()
    sent, next_whale, next_sol = 0, 0.0, 0.0
    plan: dict[str, list[Any]] = {"bursts": [], "dislocations": []}
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        now = datetime.now(UTC)
        while sent < due:
            whale = elapsed >= next_whale
            if whale:
                next_whale += whale_every
            producer.produce(topic, event(sent, now, whale=whale), key=str(sent % 3).encode())
            sent += 1
        if plan_file and elapsed >= next_sol:
            next_sol += 1.0
            _sol_second(producer, topic, now, plan)
        producer.poll(0)
        time.sleep(0.005)
    producer.flush(60)
    if plan_file:
        Path(plan_file).write_text(json.dumps(plan))


def _sol_second(producer: Any, topic: str, now: datetime, plan: dict[str, list[Any]]) -> None:
    minute = now.replace(second=0, microsecond=0)
    dislocated = 30 <= now.second < 60
    for exchange, symbol in SOL:
        price = 150.0 * (1.015 if dislocated and exchange == "binance" else 1.0)
        producer.produce(topic, sol_trade(exchange, symbol, now, 1500, price), key=b"sol")
    if now.second == 5 and not any(b["minute"] == format_utc(minute) for b in plan["bursts"]):
        exchange, symbol = SOL[int(minute.timestamp() // 60) % 2]
        for _ in range(40):
            producer.produce(topic, sol_trade(exchange, symbol, now, 3000), key=b"sol")
        plan["bursts"].append({"exchange": exchange, "symbol": symbol, "minute": format_utc(minute),
                               "trade_ts": now.timestamp()})  # fmt: skip
    if dislocated and not any(
        d["window"] == format_utc(minute.replace(second=30)) for d in plan["dislocations"]
    ):
        plan["dislocations"].append({"window": format_utc(minute.replace(second=30))})


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


def consumed(query: Any) -> dict[str, int]:
    """Offsets per partition the query's last finished micro-batch reached."""
    progress = query.lastProgress
    if not progress or not progress["sources"]:
        return {}
    end = progress["sources"][0]["endOffset"]
    if isinstance(end, str):  # JSON text, or a Python repr in some PySpark progress objects
        import ast

        try:
            end = json.loads(end)
        except ValueError:
            end = ast.literal_eval(end)
    got = next(iter(end.values())) if end else {}
    return {str(k): int(v) for k, v in got.items()}


def caught_up(query: Any, target: dict[str, int]) -> bool:
    got = consumed(query)
    return bool(got) and all(got.get(p, -1) >= o for p, o in target.items())


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


def settings_for(
    topic: str, kafka: str, dynamodb: str, state: Path, max_offsets: int, webhook: str = ""
) -> Any:
    """The shipped pipeline settings (triggers, pools, state store, table properties) on this topic;
    with ``webhook``, alerts out on: the run's own alerts topic, whale alerts POSTed there as JSON."""
    from coattail.settings import load_settings

    out = {
        "alerts_out.enabled": True,
        "alerts_out.topic": f"alerts-{topic}",
        "alerts_out.dead_letter_topic": f"alerts-dlq-{topic}",
        "alerts_out.consumer_group": f"webhooks-{topic}",
        "alerts_out.webhooks": [
            {
                "name": "bench",
                "url": webhook,
                "format": "json",
                "alert_types": ["whale_trade"],
                "rate_per_minute": 60_000,  # the latency of the path, not of a rate limit
                "burst": 1000,
            }
        ],
    }
    return load_settings(
        "small",
        overrides={
            **(out if webhook else {}),
            "stream.kafka.bootstrap_servers": kafka,
            "stream.kafka.topic": topic,
            "hot_store.endpoint_url": dynamodb,
            "hot_store.table": f"bench-{topic}",
            "lake.namespace": topic.replace("-", "_"),
            "pipeline.checkpoint_location": str(state / "checkpoints" / topic),
            "pipeline.max_offsets_per_trigger": max_offsets,
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
        .trigger(processingTime="1 second")
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
        self.early: dict[str, float] = {}  # alert id -> when its early warning was written
        self.final: dict[str, float] = {}  # alert id -> when the closed window's alert was written

    def write(self, alerts: Any) -> int:
        alerts = list(alerts)
        n = self.inner.write(alerts)
        now = time.time()
        for a in alerts:
            self.written.setdefault(a.alert_id, (a.module_id, a.detected_at, now))
            (self.early if a.details.get("early") else self.final).setdefault(a.alert_id, now)
        return n

    def __getattr__(self, name: str) -> Any:  # everything else (window points, close) is the real store's
        return getattr(self.inner, name)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def pipeline_rss_mb(jvm: int) -> float:
    """Resident memory of the pipeline alone, MiB: this process (the PySpark driver) plus the Spark JVM
    and its children (Python workers) — not the broker, DynamoDB Local or the producer, which are
    children of this process too."""
    me = os.getpid()
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        pid, ppid = int(status.parent.name), int(fields.get("PPid", "0").strip() or 0)
        if pid in (me, jvm) or _descends(ppid, jvm):
            total += int(fields.get("VmRSS", "0 kB").split()[0])
    return total / 1024


def spark_jvm_pid(spark: Any) -> int:
    """The pid of the JVM PySpark launched (spark-submit's launcher script execs java in place)."""
    return int(spark.sparkContext._gateway.proc.pid)


class WebhookReceiver:
    """A local HTTP endpoint that answers 200 and notes when each alert arrived (JSON bodies)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        arrived: dict[str, tuple[str, float]] = {}
        self.arrived = arrived

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time()
                alert = json.loads(body)
                arrived.setdefault(alert["alert_id"], (alert["detected_at"], now))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def latencies(self, since: float) -> list[float]:
        """Trade time (a whale alert's detected_at) -> the POST reaching this server."""
        out = []
        for detected, at in self.arrived.values():
            trade = datetime.fromisoformat(detected.replace("Z", "+00:00")).timestamp()
            if trade >= since:
                out.append(at - trade)
        return out

    def close(self) -> None:
        self.server.shutdown()


def _descends(pid: int, root: int, depth: int = 6) -> bool:
    for _ in range(depth):
        if pid == root:
            return True
        if pid <= 1:
            return False
        try:
            line = next(
                x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("PPid")
            )
        except (OSError, StopIteration):
            return False
        pid = int(line.split()[1])
    return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rates", default="1000,5000,10000")
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--timing", action="store_true", help="log per-batch timings of the lake query")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--peers", action="store_true", help="also run benchmarks/peers on the same topic")
    parser.add_argument("--shuffle-partitions", type=int, default=2, help="state partitions (2 = cores)")
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
    info = None
    if args.peers:  # the peers' fill: our events with advancing event time and bursts, one topic for all
        from benchmarks.peers.run import fill as peers_fill

        info = peers_fill(kafka, bulk, args.events)
    else:
        fill(kafka, bulk, args.events)
    target = end_offsets(kafka, bulk)
    print(f"filled {bulk}: {args.events} events in {time.monotonic() - t0:.1f}s", flush=True)

    settings = settings_for(bulk, kafka, dynamodb, state, max_offsets=100_000)
    spark = build_session(
        settings, app_name="coattail-bench", master="local[2]", shuffle_partitions=args.shuffle_partitions
    )
    try:
        if not args.skip_throughput:
            throughput(spark, settings, target, state, args.events)
        for rate in [int(r) for r in args.rates.split(",") if r]:
            live_latency(spark, kafka, dynamodb, state, f"{rate}-{tag}", rate, args.seconds)
    finally:
        spark.stop()
    if args.peers:
        from benchmarks.peers.run import run_peers

        run_peers(kafka, bulk, args.events, info=info)


def throughput(spark: Any, settings: Any, target: dict[str, int], state: Path, events: int) -> None:
    """Steady-state catch-up rate of the whole pipeline vs. parse-and-count on the same topic."""
    from jobs import metrics
    from jobs.framework.runner import PipelineRunner

    base_s = baseline(spark, settings, target, state)
    base_eps = events / base_s
    print(f"baseline parse+count: {base_s:.1f}s -> {base_eps:,.0f} events/s", flush=True)
    runner = PipelineRunner(spark, settings)
    runner.ensure_tables()  # table creation is first-run set-up, not throughput
    runner.start()
    # Steady state: from the moment every query finished its first micro-batch (start-up excluded).
    while not all(q.lastProgress for q in runner.queries):
        time.sleep(0.2)
    started = time.monotonic()
    done_at_start = min(sum(consumed(q).values()) for q in runner.queries)
    wait_caught_up(runner.queries, target)
    pipe_s = time.monotonic() - started
    runner.stop()
    counted = events - done_at_start
    pipe_eps = counted / pipe_s
    print(
        f"pipeline (small tier, 4 queries): {counted:,} events in steady state in {pipe_s:.1f}s -> "
        f"{pipe_eps:,.0f} events/s sustained; ratio to parse+count {pipe_eps / base_eps:.2f} "
        f"({metrics.totals()['processed']:.0f} records counted)",
        flush=True,
    )


def live_latency(
    spark: Any, kafka: str, dynamodb: str, state: Path, tag: str, rate: int, seconds: float
) -> None:
    """Per alert type latency while a separate process produces at ``rate``; peak RSS."""
    import threading

    from coattail.contracts import alert_id
    from jobs.framework.runner import PipelineRunner
    from jobs.outbound.dispatcher import start_thread
    from jobs.outbound.publisher import AlertPublisher

    topic = f"bench-live-{tag}"
    create_topic(kafka, topic)
    sol_history(kafka, topic)
    receiver = WebhookReceiver()
    live = settings_for(topic, kafka, dynamodb, state, max_offsets=200_000, webhook=receiver.url)
    hot = RecordingHotStore(live)
    # As `coattail pipeline run` does with alerts_out on: the router publishes, a dispatcher thread POSTs.
    publisher = AlertPublisher(live, store=hot.inner.store)
    stop_dispatch = threading.Event()
    dispatcher = start_thread(live, stop_dispatch)
    runner = PipelineRunner(spark, live, hot=hot, publisher=publisher)  # type: ignore[arg-type]
    runner.start()
    jvm = spark_jvm_pid(spark)
    time.sleep(20)  # the first batches, table set-up and the SOL history pass
    plan_file = state / f"plan-{tag}.json"
    peak = [0.0]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(1.0):
            peak[0] = max(peak[0], pipeline_rss_mb(jvm))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.time()
    producer = multiprocessing.Process(
        target=produce_at, args=(kafka, topic, rate, seconds, 0.5, str(plan_file))
    )
    producer.start()
    producer.join()
    target = end_offsets(kafka, topic)
    lag_s = wait_caught_up(runner.queries, target, timeout=600)
    time.sleep(5)
    phases = batch_phases(runner.queries, since=started)
    runner.stop()
    time.sleep(2)  # the dispatcher's last POSTs
    stop_dispatch.set()
    dispatcher.join(30)
    publisher.close()
    receiver.close()
    sampling.set()
    plan = json.loads(plan_file.read_text())
    # Whale alerts carry the trade's own time: trade -> DynamoDB, nothing else mixed in.
    whales = [w - d.timestamp() for m, d, w in hot.written.values() if m == "MOD-002" and w >= started]
    early, final, spread = [], [], []
    for b in plan["bursts"]:
        minute = datetime.fromisoformat(b["minute"])
        aid = alert_id("MOD-001", b["symbol"], b["exchange"], minute)
        if aid in hot.early:
            early.append(hot.early[aid] - b["trade_ts"])
        if aid in hot.final:  # the closed window: its end plus MOD-001's 30 s watermark
            final.append(hot.final[aid] - (minute.timestamp() + 60 + 30))
    for d in plan["dislocations"]:
        window = datetime.fromisoformat(d["window"])
        aid = alert_id("MOD-003", "binance:SOL-USDT", "coinbase:SOL-USD", window)
        if aid in hot.final:  # window end plus MOD-003's 15 s watermark
            spread.append(hot.final[aid] - (window.timestamp() + 30 + 15))
    print(
        f"live {rate:,} events/s for {seconds:.0f}s ({sum(target.values()):,} events): backlog drained "
        f"{lag_s:.0f}s after the producer stopped; peak RSS of the pipeline (driver + Spark JVM + "
        f"Python workers) {peak[0]:,.0f} MiB",
        flush=True,
    )
    for name, values, planted in (
        ("whale (trade -> DynamoDB)", whales, None),
        ("whale (trade -> webhook POST, via the alerts topic)", receiver.latencies(started), None),
        ("volume spike early (tipping trade -> alert)", early, len(plan["bursts"])),
        ("volume spike final (window end + watermark -> alert)", final, len(plan["bursts"])),
        ("spread (window end + watermark -> alert)", spread, len(plan["dislocations"])),
    ):
        of = f" of {planted} planted" if planted is not None else ""
        if values:
            p50, p99 = statistics.median(values), pct(values, 99)
            print(f"  {name}: n={len(values)}{of}, p50 {p50:.2f}s, p99 {p99:.2f}s", flush=True)
        else:
            print(f"  {name}: none recorded{of}", flush=True)
    for line in phases:
        print(f"  {line}", flush=True)


def batch_phases(queries: list[Any], since: float) -> list[str]:
    """Per query: micro-batches in the live run and the median milliseconds of each phase of one (Spark's
    own durationMs) — where a trade waits between the broker and the sink."""
    lines = []
    for q in queries:
        runs = [
            p for p in q.recentProgress
            if datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp() >= since
        ]  # fmt: skip
        if not runs:
            continue
        keys = sorted({k for p in runs for k in p.get("durationMs", {})})
        medians = {k: statistics.median(p["durationMs"].get(k, 0) for p in runs) for k in keys}
        shown = ", ".join(f"{k} {v:.0f}" for k, v in sorted(medians.items(), key=lambda kv: -kv[1]) if v)
        lines.append(f"{q.name}: {len(runs)} batches, median ms: {shown}")
    return lines


if __name__ == "__main__":
    main()
