"""Benchmark: the alert API against the same DynamoDB queries issued directly with boto3.

    .venv/bin/python benchmarks/api.py [--alerts 100000] [--requests 400] [--concurrency 4]

Loads ``--alerts`` alerts (3 types x 4 symbols over 23 hours) into DynamoDB Local (DYNAMODB_ENDPOINT,
else a private in-memory DynamoDB Local started here) with parallel BatchWriteItem threads, starts
`coattail api` (one uvicorn worker) as a subprocess, and drives it from a separate load-generator
process (httpx, keep-alive). The baseline is that same load-generator process issuing the Query calls
the API makes, directly with boto3: for ``GET /alerts?limit=50`` one Query per alert type (in
parallel, Limit 51) and for ``GET /alerts?symbol=...`` one Query of symbol-time-index (Limit 51).
Prints req/s and p50/p99 latency at concurrency 1 (latency) and ``--concurrency`` (throughput), and
the API/direct ratio. Goal: the API adds no more than 30 % at p50.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coattail.contracts import Alert  # noqa: E402
from coattail.devservices import dynamodb  # noqa: E402
from coattail.hotstore import alert_to_item, ensure_table, make_client, time_key  # noqa: E402

TYPES = {"volume_spike": "MOD-001", "whale_trade": "MOD-002", "spread_divergence": "MOD-003"}
SYMBOLS = ["BTC-USDT", "ETH-USDT", "BTC-USD", "ETH-USD"]
REGION = "us-west-2"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark: {what} did not come up within {timeout:.0f} s")
        time.sleep(0.2)


def start_dynamodb(workdir: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    if endpoint := os.environ.get("DYNAMODB_ENDPOINT"):
        return endpoint, None
    port = free_port()
    log = (workdir / "dynamodb.log").open("wb")
    proc = subprocess.Popen(dynamodb.server_argv(workdir, port, in_memory=True), stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    wait_until(lambda: dynamodb.answers(endpoint), 120, "DynamoDB Local")
    return endpoint, proc


def make_alerts(count: int, now: datetime) -> list[dict[str, Any]]:
    items = []
    types = list(TYPES)
    step = 23 * 3600 / count
    for n in range(count):
        alert_type = types[n % 3]
        detected = now - timedelta(seconds=30 + n * step)
        alert = Alert.create(
            module_id=TYPES[alert_type],
            alert_type=alert_type,
            symbol=SYMBOLS[(n // 3) % 4],
            exchange="binance",
            severity="medium",
            detected_at=detected,
            message=f"{alert_type} #{n}",
            details={"seq": n, "quote_volume": 150_000 + n, "side": "buy"},
            evidence=(n,),
        )
        items.append(alert_to_item(alert))
    return items


def load(endpoint: str, table: str, items: list[dict[str, Any]], threads: int) -> float:
    client = make_client(endpoint, REGION, pool=threads * 2, timeout=30, retries=5)

    def write(chunk: list[dict[str, Any]]) -> None:
        for start in range(0, len(chunk), 25):
            pending: Any = [{"PutRequest": {"Item": i}} for i in chunk[start : start + 25]]
            while pending:
                pending = (
                    client.batch_write_item(RequestItems={table: pending})
                    .get("UnprocessedItems", {})
                    .get(table)
                )

    started = time.perf_counter()
    size = (len(items) + threads - 1) // threads
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, [items[i : i + size] for i in range(0, len(items), size)]))
    return time.perf_counter() - started


# -- load generator (a separate process) -----------------------------------------------------------
def _direct_call(endpoint: str, table: str, symbol: str | None) -> Callable[[], None]:
    client = make_client(endpoint, REGION, pool=32)
    pool = ThreadPoolExecutor(8)

    def query(index: str, attr: str, value: str) -> Any:
        now = datetime.now(UTC)
        return client.query(
            TableName=table,
            IndexName=index,
            KeyConditionExpression="#h = :h AND detected_at >= :since",
            FilterExpression="ttl_epoch > :now",
            ExpressionAttributeNames={"#h": attr},
            ExpressionAttributeValues={
                ":h": {"S": value},
                ":since": {"S": time_key(now - timedelta(hours=24))},
                ":now": {"N": str(int(now.timestamp()))},
            },
            ScanIndexForward=False,
            Limit=51,
        )

    if symbol:
        return lambda: query("symbol-time-index", "symbol", symbol) and None
    return lambda: list(pool.map(lambda t: query("type-time-index", "alert_type", t), TYPES)) and None


def _api_call(base_url: str, path: str) -> Callable[[], None]:
    # http.client with keep-alive: a lean client (like wrk) so the figure is the service's cost, not
    # the load generator's. gzip is offered, as browsers do; the body is read but not decompressed.
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Accept-Encoding": "gzip"}

    def call() -> None:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:200]!r}")

    return call


def _run(target: dict[str, Any], requests: int, concurrency: int, out: Any) -> None:
    if target["kind"] == "api":
        calls = [_api_call(target["url"], target["path"]) for _ in range(concurrency)]
    else:
        calls = [_direct_call(target["endpoint"], target["table"], target["symbol"])] * concurrency
    for _ in range(50):  # warm-up: connections, JIT in DynamoDB Local
        calls[0]()
    latencies: list[float] = []

    def worker(i: int) -> None:
        for _ in range(requests // concurrency):
            started = time.perf_counter()
            calls[i]()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    elapsed = time.perf_counter() - started
    out.put((latencies, elapsed))


def measure(target: dict[str, Any], requests: int, concurrency: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_run, args=(target, requests, concurrency, out))
    proc.start()
    while True:  # a failing load generator must end the benchmark, not leave it waiting
        try:
            latencies, elapsed = out.get(timeout=1)
            break
        except queue.Empty:
            if not proc.is_alive():
                raise SystemExit("benchmark: the load generator failed; see its error above") from None
    proc.join()
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def compare(
    api: dict[str, Any], direct: dict[str, Any], requests: int, concurrency: int, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Alternate API and direct runs and keep the median of each figure: the machine is shared, so
    a burst of someone else's load should not land on one side only."""
    runs: dict[str, list[dict[str, float]]] = {"api": [], "direct": []}
    for _ in range(rounds):
        runs["api"].append(measure(api, requests, concurrency))
        runs["direct"].append(measure(direct, requests, concurrency))

    def median(side: str) -> dict[str, float]:
        return {k: statistics.median(r[k] for r in runs[side]) for k in ("rps", "p50", "p99")}

    return median("api"), median("direct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--load-threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating API/direct runs per figure")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="coattail-bench-"))
    table = f"bench-{int(time.time())}"
    db_proc = api_proc = None
    try:
        endpoint, db_proc = start_dynamodb(workdir)
        client = make_client(endpoint, REGION, timeout=30)
        ensure_table(client, table)
        items = make_alerts(args.alerts, datetime.now(UTC))
        seconds = load(endpoint, table, items, args.load_threads)
        print(
            f"loaded {len(items):,} alerts into DynamoDB Local in {seconds:.1f} s "
            f"({len(items) / seconds:,.0f} items/s, {args.load_threads} threads of BatchWriteItem)"
        )

        port = free_port()
        env = {
            **os.environ,
            "COATTAIL_HOT_STORE__ENDPOINT_URL": endpoint,
            "COATTAIL_HOT_STORE__TABLE": table,
            "COATTAIL_STATE_DIR": str(workdir / "state"),
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        }
        coattail = shutil.which("coattail", path=str(Path(sys.executable).parent)) or "coattail"
        api_log = (workdir / "api.log").open("wb")
        api_proc = subprocess.Popen(
            [coattail, "api", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=api_log,
            stderr=api_log,
        )
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            try:
                return httpx.get(url + "/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 120, "coattail api")

        scenarios = [
            ("GET /alerts?limit=50", "/alerts?limit=50", None),
            ("GET /alerts?symbol=BTC-USDT", "/alerts?symbol=BTC-USDT&limit=50", "BTC-USDT"),
        ]
        print(
            f"\n{args.requests} requests per run, median of {args.rounds} alternating runs; "
            "one uvicorn worker; load generator in its own process"
        )
        print(
            f"{'scenario':32} {'conc':>4} {'api req/s':>10} {'api p50':>8} {'api p99':>8} "
            f"{'direct req/s':>12} {'direct p50':>10} {'direct p99':>10} {'p50 ratio':>9}"
        )
        for name, path, symbol in scenarios:
            for concurrency in (1, args.concurrency):
                api_stats, direct = compare(
                    {"kind": "api", "url": url, "path": path},
                    {"kind": "direct", "endpoint": endpoint, "table": table, "symbol": symbol},
                    args.requests,
                    concurrency,
                    args.rounds,
                )
                ratio = api_stats["p50"] / direct["p50"]
                print(
                    f"{name:32} {concurrency:>4} {api_stats['rps']:>10.1f} {api_stats['p50']:>6.1f}ms "
                    f"{api_stats['p99']:>6.1f}ms {direct['rps']:>10.1f} {direct['p50']:>8.1f}ms "
                    f"{direct['p99']:>8.1f}ms {ratio:>8.2f}x"
                )
        print("\ngoal: API p50 <= 1.30 x direct boto3 p50")
    finally:
        for proc in (api_proc, db_proc):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
