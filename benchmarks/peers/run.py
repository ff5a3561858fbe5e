"""Peer benchmark: the same MOD-001 + MOD-002 detector as a PyFlink job and as a quixstreams app.

Prints, from one run on the same data (issue 12, item 4):
1. sustained events/s of each peer catching up on one pre-filled topic of ``--events`` simulated trades
   (benchmarks/pipeline.py's events, with event time advancing and a 4x volume burst every 17th
   minute so MOD-001 has something to flag). Steady state only: the rate is measured between whale
   alerts — their trades' positions in the input and the time each alert was made — after a warm-up
   share of the input, so start-up (JVM, Python workers, consumer group join) is excluded;
2. whale-alert latency (trade timestamp -> alert made) p50/p99 while benchmarks/pipeline.py's paced
   producer writes ``--rate`` events/s for ``--seconds`` to a fresh topic per peer;
3. a ratio against a bare Kafka consume-and-parse loop (confluent-kafka + orjson, whale filter, alert
   produce) run the same way in the same run, and whether each peer's MOD-001 flags match
   jobs.logic.advance_volume (our detector's code) on the same input.

Each peer runs in its own process group from the peers venv (benchmarks/peers/env.py) and is ended
after its step; every step has a time limit and a peer that fails prints one line with the cause.
Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts a local broker (coattail.devservices).
    .venv/bin/python benchmarks/peers/run.py [--events 2000000] [--rate 1000] [--seconds 60]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path; the peers must not shadow anything.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import contextlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEERS = ("bare", "flink", "quix")
WARMUP_SHARE = 0.2  # of the input, before steady state is measured
WHALE_EVERY = 5000  # events, as benchmarks/pipeline.py's fill
EVENT_STEP_MS = 2.0  # event time between trades: 500 events/s of market time
BURST_EVERY = 17  # every 17th minute of market time is a burst ...
BURST_FACTOR = 4  # ... with 4x the trades


# -- the bare loop (runs in the peers venv, like the peers) -----------------------------------------


def bare_loop(bootstrap: str, topic: str, alerts: str, group: str) -> None:
    """Consume, parse (orjson), filter whales, produce an alert: the floor any peer is measured against."""
    import orjson
    from confluent_kafka import Consumer, Producer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    consumer.subscribe([topic])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("bare: consuming", flush=True)
    while not stop.is_set():
        for message in consumer.consume(1000, 0.02):  # short: a paced trickle must not wait for 1000
            if message.error():
                continue
            trade = orjson.loads(message.value())
            if float(trade["quote_volume"]) > 100_000:
                alert = {
                    "module_id": "MOD-002",
                    "event_id": trade["event_id"],
                    "symbol": trade["symbol"],
                    "exchange": trade["exchange"],
                    "trade_ts": trade["timestamp"],
                    "alerted_at": datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z",
                }
                producer.produce(alerts, orjson.dumps(alert))
        producer.poll(0)
    producer.flush(10)
    consumer.close()


# -- input ------------------------------------------------------------------------------------------


@dataclass
class Input:
    """The pre-filled topic and what the measurements need to know about it."""

    topic: str
    events: int
    whale_index: dict[str, int] = field(default_factory=dict)  # event_id -> position in the input
    windows: dict[tuple[str, str, int], float] = field(default_factory=dict)  # (sym, ex, start) -> vol
    max_ts_ms: int = 0


def fill(bootstrap: str, topic: str, n: int) -> Input:
    """benchmarks/pipeline.py's events with advancing event time and periodic volume bursts."""
    import orjson
    from confluent_kafka import Producer

    from benchmarks.pipeline import event

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
    span_ms = n * EVENT_STEP_MS
    start = datetime.now(UTC) - timedelta(milliseconds=span_ms * 1.1)
    start_ms = int(start.timestamp() * 1000)
    info = Input(topic, n)
    offset = 0.0
    last_btc = n - 1 - (n - 1) % 2  # even positions are BTC (a 5 BTC trade is a whale; 5 ETH is not)
    for i in range(n):
        whale = i % WHALE_EVERY == 0 or i == last_btc  # the end marker: a whale as late as possible
        ts = start + timedelta(milliseconds=offset)
        value = event(i, ts, whale=whale)
        trade = orjson.loads(value)
        ts_ms = start_ms + int(offset)
        key = (trade["symbol"], trade["exchange"], ts_ms - ts_ms % 60_000)
        info.windows[key] = info.windows.get(key, 0.0) + float(trade["quote_volume"])
        if whale and float(trade["quote_volume"]) > 100_000:
            info.whale_index[trade["event_id"]] = i
        burst = (int(offset) // 60_000) % BURST_EVERY == BURST_EVERY - 1
        offset += EVENT_STEP_MS / BURST_FACTOR if burst else EVENT_STEP_MS
        producer.produce(topic, value, key=str(i % 3).encode())
        if i % 20000 == 0:
            producer.poll(0)
    info.max_ts_ms = start_ms + int(offset)
    producer.flush(120)
    return info


def expected_flags(info: Input) -> set[tuple[str, str, int]]:
    """MOD-001 flags by our own code (jobs.logic.advance_volume) over the windows of the input.

    Batch mode (no watermark: every window closes); :func:`flag_check` leaves out the input's tail.
    """
    from jobs.logic import VolumeState, advance_volume

    by_key: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for (symbol, exchange, start), volume in sorted(info.windows.items(), key=lambda kv: kv[0][2]):
        by_key.setdefault((symbol, exchange), []).append((start, volume))
    flags = set()
    for (symbol, exchange), windows in by_key.items():
        closed, _ = advance_volume(
            VolumeState(), windows, None,
            window_ms=60_000, baseline_windows=60, min_history=10, threshold=2.5,
        )  # fmt: skip
        flags |= {(symbol, exchange, w.window_start_ms) for w in closed if w.score.flagged}
    return flags


# -- peers as processes -----------------------------------------------------------------------------


def peer_command(
    name: str, python: Path, jars: list[Path], bootstrap: str, topic: str, alerts: str
) -> list[str]:
    group = f"peer-{name}-{uuid.uuid4().hex[:6]}"
    common = ["--bootstrap", bootstrap, "--topic", topic, "--alerts", alerts, "--group", group]
    if name == "bare":
        return [str(python), str(HERE / "run.py"), "--bare-loop", *common]
    if name == "flink":
        return [str(python), str(HERE / "flink_job.py"), *common, "--jars", *map(str, jars)]
    return [str(python), str(HERE / "quix_app.py"), *common]


class Peer:
    """One peer process (its own process group, so its JVM and Python workers end with it)."""

    def __init__(self, cmd: list[str], log: Path) -> None:
        self.log = log
        self.handle = log.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self.handle, stderr=subprocess.STDOUT, start_new_session=True
        )

    def failed(self) -> str | None:
        """One line on why the process ended, or None while it runs."""
        if self.proc.poll() is None:
            return None
        lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        causes = [ln for ln in lines if "Error" in ln or "Exception" in ln] or lines or ["no output"]
        return f"exited {self.proc.returncode}: {causes[-1].strip()[:300]} (log: {self.log})"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.handle.close()


class Alerts:
    """Background consumer of one alerts topic: every alert, parsed."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        import orjson
        from confluent_kafka import Consumer

        self.items: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}",
             "auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 2000}
        )  # fmt: skip
        self._consumer.subscribe([topic])
        self._loads = orjson.loads
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, 0.2):
                if not message.error():
                    self.items.append(self._loads(message.value()))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def whales(self) -> list[dict[str, Any]]:
        return [a for a in list(self.items) if a.get("module_id") == "MOD-002"]


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def wait_for(cond: Callable[[], bool], peer: Peer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if why := peer.failed():
            raise RuntimeError(why)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no result within {timeout:.0f}s (log: {peer.log})")
        time.sleep(0.5)


def settle(count: Callable[[], int], peer: Peer, quiet: float, timeout: float) -> None:
    """Wait until ``count()`` has not grown for ``quiet`` seconds (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        if why := peer.failed():
            raise RuntimeError(why)
        time.sleep(0.5)
        if (now := count()) != last:
            last, since = now, time.monotonic()


# -- the two measurements ---------------------------------------------------------------------------


def throughput(peer: Peer, alerts: Alerts, info: Input, timeout: float) -> dict[str, Any]:
    """Sustained events/s between the whale alerts of the input's post-warm-up part."""
    started = time.time()
    last_id = max(info.whale_index, key=info.whale_index.__getitem__)
    wait_for(lambda: any(a["event_id"] == last_id for a in alerts.whales()), peer, timeout)
    time.sleep(2)  # the last windows' alerts
    points = sorted(
        (info.whale_index[a["event_id"]], parse_time(a["alerted_at"]))
        for a in alerts.whales()
        if a["event_id"] in info.whale_index
    )
    steady = [p for p in points if p[0] >= WARMUP_SHARE * info.events]
    (i0, t0), (i1, t1) = steady[0], steady[-1]
    return {
        "events": info.events,
        "steady_events": i1 - i0,
        "events_per_s": (i1 - i0) / max(t1 - t0, 1e-9),
        "wall_s": t1 - started,
        "volume_flags": {
            (a["symbol"], a["exchange"], int(a["window_start_ms"]))
            for a in list(alerts.items)
            if a.get("module_id") == "MOD-001"
        },
    }


def latency(
    peer: Peer, alerts: Alerts, bootstrap: str, topic: str, rate: int, seconds: float
) -> dict[str, Any]:
    """Whale alert latency while pipeline.produce_at writes ``rate`` events/s (after the peer answers)."""
    from confluent_kafka import Producer

    from benchmarks.pipeline import event, produce_at

    probe = Producer({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 240
    while not alerts.whales():  # readiness: a probe whale each 2 s until the first alert comes back
        if why := peer.failed():
            raise RuntimeError(why)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no alert for a probe trade within 240s (log: {peer.log})")
        for p in range(3):
            probe.produce(topic, event(p, datetime.now(UTC), whale=True), key=str(p).encode())
        probe.flush(10)
        time.sleep(2)
    paced_from = time.time()
    producer = multiprocessing.Process(target=produce_at, args=(bootstrap, topic, rate, seconds, 0.5))
    producer.start()
    producer.join(seconds + 120)
    if producer.is_alive():
        producer.terminate()
        raise TimeoutError("the paced producer did not finish")
    ended = time.time()
    settle(lambda: len(_paced(alerts, paced_from)), peer, quiet=5, timeout=60)
    if not _paced(alerts, paced_from):
        raise RuntimeError(f"no alert for the paced trades (log: {peer.log})")
    delays = sorted(
        parse_time(a["alerted_at"]) - parse_time(a["trade_ts"]) for a in _paced(alerts, paced_from)
    )
    last = max(parse_time(a["alerted_at"]) for a in _paced(alerts, paced_from))
    return {
        "rate": rate,
        "alerts": len(delays),
        "p50_s": statistics.median(delays),
        "p99_s": delays[min(len(delays) - 1, int(0.99 * len(delays)))],
        "drained_s": max(0.0, last - ended),
    }


def _paced(alerts: Alerts, since: float) -> list[dict[str, Any]]:
    return [a for a in alerts.whales() if parse_time(a["trade_ts"]) >= since]


# -- orchestration ----------------------------------------------------------------------------------


def run_peers(
    bootstrap: str,
    topic: str,
    events: int,
    *,
    peers: tuple[str, ...] = PEERS,
    rate: int = 1000,
    seconds: float = 60,
    timeout: float = 1200,
    info: Input | None = None,
) -> dict[str, Any]:
    """Fill ``topic`` (unless ``info`` says it is filled), measure every peer; results per peer name.

    A peer that fails has ``{"error": one line}`` instead of figures; the others still run.
    """
    from benchmarks.peers.env import ensure
    from benchmarks.pipeline import create_topic

    env = ensure()
    if info is None:
        create_topic(bootstrap, topic)
        t0 = time.monotonic()
        info = fill(bootstrap, topic, events)
        print(f"filled {topic}: {events:,} events in {time.monotonic() - t0:.1f}s", flush=True)
    expected = expected_flags(info)
    logs = Path(tempfile.mkdtemp(prefix="coattail-peers-"))
    results: dict[str, Any] = {"_expected_volume_flags": expected, "_logs": str(logs)}
    for name in peers:
        results[name] = measure(name, env, bootstrap, info, logs, rate, seconds, timeout)
        print(f"{name}: {summary(results[name], expected)}", flush=True)
    return results


def measure(
    name: str, env: Any, bootstrap: str, info: Input, logs: Path, rate: int, seconds: float, timeout: float
) -> dict[str, Any]:
    from benchmarks.pipeline import create_topic

    result: dict[str, Any] = {}
    tag = uuid.uuid4().hex[:6]
    steps: list[tuple[str, str, Callable[[Peer, Alerts], dict[str, Any]]]] = [
        ("bulk", info.topic, lambda p, a: throughput(p, a, info, timeout)),
    ]
    if rate and seconds:
        live = f"peers-live-{name}-{tag}"
        create_topic(bootstrap, live)
        steps.append(("live", live, lambda p, a, t=live: latency(p, a, bootstrap, t, rate, seconds)))  # type: ignore[misc]
    for step, topic, fn in steps:
        alerts_topic = f"peers-alerts-{name}-{step}-{tag}"
        create_topic(bootstrap, alerts_topic)
        alerts = Alerts(bootstrap, alerts_topic)
        peer = Peer(
            peer_command(name, env.python, env.jars, bootstrap, topic, alerts_topic),
            logs / f"{name}-{step}.log",
        )
        try:
            result[step] = fn(peer, alerts)
        except Exception as exc:  # one line, then the next step/peer
            result[step] = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            peer.stop()
            alerts.close()
    return result


def summary(result: dict[str, Any], expected: set[tuple[str, str, int]]) -> str:
    parts = []
    bulk, live = result.get("bulk", {}), result.get("live", {})
    if "error" in bulk:
        parts.append(f"throughput FAILED: {bulk['error']}")
    elif bulk:
        parts.append(f"{bulk['events_per_s']:,.0f} events/s sustained ({bulk['wall_s']:.0f}s incl. start-up)")
    if "error" in live:
        parts.append(f"latency FAILED: {live['error']}")
    elif live:
        parts.append(f"latency p50 {live['p50_s']:.3f}s p99 {live['p99_s']:.3f}s")
    return "; ".join(parts)


def flag_check(got: set[tuple[str, str, int]], expected: set[tuple[str, str, int]], cutoff_ms: int) -> str:
    """Peer MOD-001 flags vs ours, over windows well before the input's end (the tail may stay open)."""
    exp = {f for f in expected if f[2] < cutoff_ms}
    have = {f for f in got if f[2] < cutoff_ms}
    return f"{len(exp & have)}/{len(exp)}" + (f" +{len(have - exp)} extra" if have - exp else "")


def table(results: dict[str, Any], info: Input, rate: int, seconds: float) -> str:
    base = results.get("bare", {}).get("bulk", {}).get("events_per_s")
    cutoff = info.max_ts_ms - 150_000
    rows = [
        f"{'peer':<8}{'sustained ev/s':>16}{'ratio':>8}{'wall s':>8}{'MOD-001 flags':>15}"
        f"{'live alerts':>13}{'p50 s':>8}{'p99 s':>8}{'drain s':>9}"
    ]
    for name in [p for p in PEERS if p in results]:
        bulk, live = results[name].get("bulk", {}), results[name].get("live", {})
        if "events_per_s" in bulk:
            eps = bulk["events_per_s"]
            ratio = f"{eps / base:.2f}" if base else "-"
            flags = (
                "-"
                if name == "bare"
                else flag_check(bulk["volume_flags"], results["_expected_volume_flags"], cutoff)
            )
            left = f"{name:<8}{eps:>16,.0f}{ratio:>8}{bulk['wall_s']:>8.0f}{flags:>15}"
        else:
            left = f"{name:<8}{'failed':>16}{'-':>8}{'-':>8}{'-':>15}"
        if "p50_s" in live:
            right = f"{live['alerts']:>13}{live['p50_s']:>8.3f}{live['p99_s']:>8.3f}{live['drained_s']:>9.1f}"
        else:
            right = f"{'failed' if live else '-':>13}{'-':>8}{'-':>8}{'-':>9}"
        rows.append(left + right)
    notes = [
        f"input: {info.events:,} events on 3 partitions; steady state = after the first {WARMUP_SHARE:.0%}",
        f"live: {rate:,} events/s for {seconds:.0f}s, a whale every 0.5s; latency = trade time -> alert made",
        "MOD-001 flags: peer's flagged windows matching jobs.logic.advance_volume on the same input",
    ]
    for name in PEERS:
        for step in ("bulk", "live"):
            if err := results.get(name, {}).get(step, {}).get("error"):
                notes.append(f"{name} {step} FAILED: {err}")
    return "\n".join(rows + notes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per peer for the bulk topic")
    parser.add_argument("--bare-loop", action="store_true", help=argparse.SUPPRESS)  # the bare peer itself
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--alerts")
    parser.add_argument("--group")
    args = parser.parse_args()
    if args.bare_loop:
        bare_loop(args.bootstrap, args.topic, args.alerts, args.group)
        return
    sys.path.insert(0, str(REPO))
    # SIGTERM (e.g. `timeout`) must unwind through the finally blocks that end the peer processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    services = None
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not kafka:
        from coattail.devservices import DevServices

        state = Path(tempfile.mkdtemp(prefix="coattail-peers-"))
        services = DevServices(state, in_memory_dynamodb=True)
        services.up()
        kafka = services.endpoints()["kafka"]
    try:
        from benchmarks.pipeline import create_topic

        topic = f"peers-bulk-{uuid.uuid4().hex[:8]}"
        create_topic(kafka, topic)
        t0 = time.monotonic()
        info = fill(kafka, topic, args.events)
        print(f"filled {topic}: {args.events:,} events in {time.monotonic() - t0:.1f}s", flush=True)
        peers = tuple(p for p in args.peers.split(",") if p)
        results = run_peers(
            kafka, topic, args.events, peers=peers, rate=args.rate, seconds=args.seconds,
            timeout=args.timeout, info=info,
        )  # fmt: skip
        print(table(results, info, args.rate, args.seconds), flush=True)
        print(f"peer logs: {results['_logs']}")
    finally:
        if services:
            services.down()


if __name__ == "__main__":
    main()
