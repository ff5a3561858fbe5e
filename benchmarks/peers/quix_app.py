"""MOD-002 whale alerts and MOD-001 volume anomaly as a quixstreams app (the Quix peer of our pipeline).

Run from the peers venv (benchmarks/peers/env.py), one process (quixstreams is single-threaded: it
scales by running more processes in the same consumer group):
    .cache/peers/venv/bin/python benchmarks/peers/quix_app.py --bootstrap HOST:PORT --topic T --alerts A

Built the way the library intends: the trade time is the message time (a timestamp extractor), the
trades are re-keyed by (symbol, exchange) with ``group_by`` (a repartition topic: windows are per
message key), a 60 s tumbling window with 30 s grace sums ``quote_volume`` and emits closed windows
(``final()``), and a stateful ``apply`` keeps each key's last 60 window volumes for the z-score. The
whale branch filters the parsed trades directly. Alerts carry ``alerted_at`` (wall clock when made).
State uses the library's defaults: RocksDB plus changelog topics, at-least-once.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

WHALE_THRESHOLD = 100_000
WINDOW_MS = 60_000
GRACE_MS = 30_000
BASELINE_WINDOWS = 60  # one hour of 60 s windows
MIN_HISTORY = 10  # ten minutes of history before flagging
Z_THRESHOLD = 2.5


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def trade_time_ms(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
    """Event time = the trade's own ``timestamp`` (ISO-8601 Z), not the Kafka record's time."""
    try:
        return int(datetime.fromisoformat(value["timestamp"]).timestamp() * 1000)
    except (KeyError, TypeError, ValueError):
        return timestamp


def slim(trade: dict[str, Any]) -> dict[str, Any]:
    """What both branches need, with the decimal text as a float once."""
    return {
        "event_id": trade["event_id"],
        "symbol": trade["symbol"],
        "exchange": trade["exchange"],
        "qv": float(trade["quote_volume"]),
        "timestamp": trade["timestamp"],
    }


def whale_alert(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "module_id": "MOD-002",
        "event_id": t["event_id"],
        "symbol": t["symbol"],
        "exchange": t["exchange"],
        "quote_volume": t["qv"],
        "trade_ts": t["timestamp"],
        "alerted_at": now_iso(),
    }


def z_score(history: list[float], volume: float) -> tuple[float | None, float | None, float | None]:
    """(z, mean, sample stddev) of ``volume`` against ``history``; z None below MIN_HISTORY or if flat."""
    n = len(history)
    if n < max(MIN_HISTORY, 2):
        return None, None, None
    mean = math.fsum(history) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in history) / (n - 1))
    if std == 0:
        return None, mean, 0.0
    return (volume - mean) / std, mean, std


def score_window(window: dict[str, Any], state: Any) -> dict[str, Any] | None:
    """A closed window against this key's baseline (quiet windows as zero); an alert dict or None."""
    history: list[float] = state.get("history", [])
    last: int | None = state.get("last", None)
    start, volume = int(window["start"]), float(window["volume"])
    if last is not None:
        if start <= last:
            return None
        history.extend([0.0] * min((start - last) // WINDOW_MS - 1, BASELINE_WINDOWS))
        del history[:-BASELINE_WINDOWS]
    z, mean, std = z_score(history, volume)
    n = len(history)
    history.append(volume)
    del history[:-BASELINE_WINDOWS]
    state.set("history", history)
    state.set("last", start)
    if z is None or abs(z) <= Z_THRESHOLD:
        return None
    symbol, exchange = window["key"].split("|", 1)
    return {
        "module_id": "MOD-001",
        "symbol": symbol,
        "exchange": exchange,
        "window_start_ms": start,
        "window_volume": volume,
        "z": z,
        "rolling_mean": mean,
        "rolling_stddev": std,
        "history_windows": n,
        "alerted_at": now_iso(),
    }


LATE = [0]


def count_late(*_: Any) -> bool:
    """Count trades that missed their closed window (quixstreams logs each one otherwise)."""
    LATE[0] += 1
    return False


def build(args: argparse.Namespace) -> Any:
    from quixstreams import Application
    from quixstreams.dataframe.windows import Sum

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir or tempfile.mkdtemp(prefix="quix-peer-"),
        producer_extra_config={"linger.ms": 5},
        # Small fetches keep the source partitions interleaved finely: windows close on the stream time
        # of the re-keyed topic, and 1 MB chunks per partition would skew it past the 30 s grace.
        consumer_extra_config={"max.partition.fetch.bytes": 65536},
        loglevel="WARNING",
    )
    trades = app.topic(args.topic, value_deserializer="json", timestamp_extractor=trade_time_ms)
    alerts = app.topic(args.alerts, value_serializer="json")
    sdf = app.dataframe(trades).apply(slim)

    whales = sdf[sdf["qv"] > WHALE_THRESHOLD]
    whales.apply(whale_alert).to_topic(alerts)

    windows = (
        sdf.group_by(lambda t: f"{t['symbol']}|{t['exchange']}", name="symbol_exchange")
        .tumbling_window(duration_ms=WINDOW_MS, grace_ms=GRACE_MS, on_late=count_late)
        .agg(volume=Sum(column="qv"))
        .final()
    )
    windows = windows.apply(lambda w, key, ts, headers: {**w, "key": key}, metadata=True)
    spikes = windows.apply(score_window, stateful=True).filter(lambda a: a is not None)
    spikes.to_topic(alerts)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--alerts", required=True)
    parser.add_argument("--group", default=f"peer-quix-{int(time.time())}")
    parser.add_argument("--state-dir", default=None)
    args = parser.parse_args()
    app = build(args)
    print("quix: app built, running", flush=True)
    app.run()  # returns on SIGTERM/SIGINT (the library's own handlers stop it cleanly)
    print(f"quix: stopped; {LATE[0]} late trades dropped by the window", flush=True)


if __name__ == "__main__":
    main()
