"""Batch flow throughput: backfill (fake Binance REST -> Iceberg) and reprocessing of one day.

Run: PYSPARK_PYTHON=$PWD/.venv/bin/python .venv/bin/python benchmarks/batch.py [--trades 100000]
The "day" is scaled down (default 100,000 trades over 24 h; a busy Binance pair has 1-2 M aggTrades a
day). Baselines measured in the same run, so the ratios survive a busy machine:
* backfill vs paging the same REST history with no normalisation and no writes (fetch + JSON only);
* reprocess vs a plain Spark scan + count of the same raw_trades snapshot.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Import the repo's packages (and the tests' fake server) whatever the working directory.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

DAY = datetime(2026, 1, 5, tzinfo=UTC)


def fetch_only(url: str, count: int) -> float:
    """Rows/s of paging the history with the same client and no processing: the ceiling."""
    from connectors.binance import BinanceRest as AggTradesClient

    client = AggTradesClient(url, weight_budget=6000)
    started, rows, next_id = time.perf_counter(), 0, 1_000_000
    while True:
        page = client.page("BTCUSDT", next_id)
        rows += len(page)
        if len(page) < 1000:
            break
        next_id = page[-1]["a"] + 1
    client.close()
    assert rows == count, (rows, count)
    return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=100_000, help="trades in the simulated day")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="coattail-bench-batch-"))
    os.environ["COATTAIL_STATE_DIR"] = str(state)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    from coattail.settings import load_settings
    from connectors.binance import BinanceRest as AggTradesClient
    from jobs.batch.backfill import backfill
    from jobs.batch.reprocess import reprocess
    from jobs.batch.spark import batch_session
    from jobs.sinks.iceberg import qualified
    from tests.batch.fakes import FakeBinance, make_trades, serve_binance

    start_ms = int(DAY.timestamp() * 1000)
    rows = make_trades(start_ms, start_ms + 86_400_000, args.trades, max_qty=0.5)
    print(f"simulated day: {args.trades:,} trades of BTC-USDT on {DAY:%Y-%m-%d} (state {state})")
    with serve_binance(FakeBinance({"BTCUSDT": rows})) as url:
        ceiling = fetch_only(url, args.trades)
        settings = load_settings("small", overrides={"connectors.binance.rest_url": url, "equivalences": {}})
        client = AggTradesClient(url, weight_budget=6000)  # the fake has no ban line to respect
        started = time.perf_counter()
        [result] = backfill(
            settings, ["BTC-USDT"], DAY, DAY + timedelta(days=1), interactive=False, client=client
        )
        backfill_seconds = time.perf_counter() - started
    assert result.added == args.trades, result
    backfill_rate = result.added / backfill_seconds
    print(f"backfill:   {backfill_rate:10,.0f} rows/s  ({result.added:,} rows in {backfill_seconds:.1f} s, "
          f"{result.requests} requests)")  # fmt: skip
    print(f"  baseline: {ceiling:10,.0f} rows/s  fetch + JSON only; ratio {backfill_rate / ceiling:.2f}")

    spark = batch_session(settings, master="local[2]")
    try:
        table = qualified(settings, "raw_trades")
        spark.table(table).count()  # JVM and catalog warm-up, outside both timings
        started = time.perf_counter()
        scanned = spark.table(table).where(f"timestamp >= '{DAY.isoformat()}'").count()
        scan_rate = scanned / (time.perf_counter() - started)
        outcome = reprocess(spark, settings, DAY, DAY + timedelta(days=1))
    finally:
        spark.stop()
    rate = outcome.trades_read / outcome.seconds
    alerts = len(outcome.alerts)
    print(f"reprocess:  {rate:10,.0f} rows/s  ({outcome.trades_read:,} trades -> {alerts} alerts "
          f"in {outcome.seconds:.1f} s, local[2])")  # fmt: skip
    print(
        f"  baseline: {scan_rate:10,.0f} rows/s  Spark scan + count of the same rows; "
        f"ratio {rate / scan_rate:.3f}"
    )


if __name__ == "__main__":
    main()
