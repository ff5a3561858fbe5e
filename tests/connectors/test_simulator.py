"""Simulator: deterministic per seed; the truth matches what was planted; background stays quiet."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from coattail.settings import load_settings
from connectors.registry import normalizer
from connectors.simulator import simulate
from connectors.trade import Trade

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 1, 5, 12, 0, 17, tzinfo=UTC)


def _trades(lines: list[dict[str, object]]) -> list[Trade]:
    norms = {ex: normalizer(ex) for ex in ("binance", "coinbase")}
    out: list[Trade] = []
    for line in lines:
        out += norms[str(line["exchange"])].message(line["raw"], str(line["received_at"]))
    return out


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


@pytest.fixture(scope="module")
def run() -> tuple[list[dict[str, object]], dict[str, object], list[Trade]]:
    lines, truth = simulate(seed=42, minutes=90, rate=12, start=START)
    return lines, truth, _trades(lines)


def test_same_seed_same_output_other_seed_differs() -> None:
    a = simulate(seed=3, minutes=5, rate=5, start=START)
    b = simulate(seed=3, minutes=5, rate=5, start=START)
    c = simulate(seed=4, minutes=5, rate=5, start=START)
    assert orjson.dumps(a) == orjson.dumps(b)
    assert orjson.dumps(a) != orjson.dumps(c)


def test_lines_are_raw_exchange_messages_in_received_order(run) -> None:  # type: ignore[no-untyped-def]
    lines, truth, trades = run
    received = [_epoch(str(line["received_at"])) for line in lines]
    assert received == sorted(received)
    assert {line["exchange"] for line in lines} == {"binance", "coinbase"}
    assert all(set(line) == {"exchange", "received_at", "raw"} for line in lines)
    # rate 12/s for 90 min, plus bursts and whales
    assert 12 * 90 * 60 * 0.95 < len(trades) < 12 * 90 * 60 * 1.3
    assert len({t.event_id for t in trades}) == len(trades)
    assert truth["start"] == "2026-01-05T12:00:17.000000Z"
    assert truth["end"] == "2026-01-05T13:30:17.000000Z"


def test_whales_in_truth_are_exactly_the_big_trades(run) -> None:  # type: ignore[no-untyped-def]
    _, truth, trades = run
    by_id = {t.event_id: t for t in trades}
    whales = truth["whales"]
    assert len(whales) >= 10
    for w in whales:
        t = by_id[w["event_id"]]
        assert (t.exchange, t.symbol, t.side, t.timestamp) == (
            w["exchange"],
            w["symbol"],
            w["side"],
            w["timestamp"],
        )
        assert t.quote_volume == Decimal(w["quote_volume"]) > 100_000
    bands = {1 if Decimal(w["quote_volume"]) > 1_000_000 else 0 for w in whales}
    assert bands == {0, 1}
    big = {t.event_id for t in trades if t.quote_volume > 100_000}
    assert big == {w["event_id"] for w in whales}
    background = [t.quote_volume for t in trades if t.event_id not in big]
    assert max(background) <= 25_000


def _window_volumes(trades: list[Trade], t0: float, t1: float) -> dict[tuple[str, str], list[Decimal]]:
    vols: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0)] * int((t1 - t0) // 60))
    for t in trades:
        i = int((_epoch(t.timestamp) - t0) // 60)
        if 0 <= i < int((t1 - t0) // 60):
            vols[(t.exchange, t.symbol)][i] += t.quote_volume
    return vols


def _zscore_flags(series: list[Decimal]) -> list[int]:
    """|z| > 2.5 vs the previous hour (min 10 windows), as the MOD-001 detector is specified."""
    flags = []
    for i in range(10, len(series)):
        hist = [float(v) for v in series[max(0, i - 60) : i]]
        sd = statistics.stdev(hist)
        if sd > 0 and abs(float(series[i]) - statistics.mean(hist)) / sd > 2.5:
            flags.append(i)
    return flags


def test_volume_bursts_and_a_quiet_background(run) -> None:  # type: ignore[no-untyped-def]
    _, truth, trades = run
    t0 = _epoch(truth["start"]) // 60 * 60 + 60  # first whole minute
    t1 = _epoch(truth["end"]) // 60 * 60
    vols = _window_volumes(trades, t0, t1)
    bursts = {
        (b["exchange"], b["symbol"], int((_epoch(b["window_start"]) - t0) // 60))
        for b in truth["volume_bursts"]
    }
    assert len(bursts) >= 3
    for b in truth["volume_bursts"]:
        start = _epoch(b["window_start"])
        assert start % 60 == 0
        assert start - _epoch(truth["start"]) >= 15 * 60
    whale_windows = {
        (w["exchange"], w["symbol"], int((_epoch(w["window_start"]) - t0) // 60))
        for w in truth["whale_windows"]
    }
    false_alerts = 0
    for key, series in vols.items():
        flags = {(key[0], key[1], i) for i in _zscore_flags(series)}
        assert {b for b in bursts if b[:2] == key} <= flags, f"burst not detectable on {key}"
        false_alerts += len(flags - bursts - whale_windows)
    hours = (t1 - t0) / 3600
    assert false_alerts / (hours * len(vols)) <= 1.0, false_alerts


def test_spread_dislocation_only_where_planted(run) -> None:  # type: ignore[no-untyped-def]
    _, truth, trades = run
    stretches = truth["spread_dislocations"]
    assert len(stretches) == 2
    a, b = "binance:BTC-USDT", "coinbase:BTC-USD"
    assert all((d["a"], d["b"]) == (a, b) for d in stretches)
    planted = [(_epoch(d["start"]), _epoch(d["end"]), d["spread_pct"]) for d in stretches]
    assert all(e - s >= 30 and s % 30 == 0 for s, e, _ in planted)
    sums: dict[tuple[str, int], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for t in trades:
        key = f"{t.exchange}:{t.symbol}"
        if key in (a, b):
            w = int(_epoch(t.timestamp) // 30)
            sums[(key, w)][0] += t.quote_volume
            sums[(key, w)][1] += t.quantity
    checked = 0
    for w in sorted({w for (_, w) in sums}):
        if (a, w) not in sums or (b, w) not in sums:
            continue
        va = sums[(a, w)][0] / sums[(a, w)][1]
        vb = sums[(b, w)][0] / sums[(b, w)][1]
        spread = float((va - vb) / vb * 100)
        inside = [pct for s, e, pct in planted if s <= w * 30 < e]
        if inside:
            assert abs(spread - inside[0]) < 0.2
            checked += 1
        else:
            assert abs(spread) < 0.25
    assert checked == 6  # two 90 s stretches = six 30 s windows


def test_cli_writes_lines_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "raw.jsonl"
    truth = tmp_path / "truth.json"
    args = ["--seed", "9", "--minutes", "3", "--rate", "4", "--start", "2026-01-05T00:00:00Z"]
    cmd = [sys.executable, "-m", "coattail", "simulate", *args, "--out", str(out), "--truth", str(truth)]
    result = subprocess.run(cmd, capture_output=True, cwd=REPO, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    settings = load_settings(env={})  # the CLI simulates the configured instruments
    expected_lines, expected_truth = simulate(
        seed=9, minutes=3, rate=4, start=datetime(2026, 1, 5, tzinfo=UTC),
        instruments=settings.instruments, equivalences=settings.equivalences,
    )  # fmt: skip
    assert lines == expected_lines
    assert orjson.loads(truth.read_bytes()) == orjson.loads(orjson.dumps(expected_truth))
    normalised = subprocess.run(
        [sys.executable, "-m", "coattail", "normalize"], input=out.read_bytes(), capture_output=True,
        cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert normalised.returncode == 0
    assert b" 0 dead-lettered" in normalised.stderr
    assert datetime.fromisoformat(orjson.loads(truth.read_bytes())["end"]) - datetime(
        2026, 1, 5, tzinfo=UTC
    ) == timedelta(minutes=3)


def test_bursts_stay_detectable_at_a_low_rate_despite_whales() -> None:
    lines, truth = simulate(seed=11, minutes=70, rate=3, start=START)
    trades = _trades(lines)
    t0 = _epoch(truth["start"]) // 60 * 60 + 60
    vols = _window_volumes(trades, t0, _epoch(truth["end"]) // 60 * 60)
    assert len(truth["volume_bursts"]) == 3
    for b in truth["volume_bursts"]:
        index = int((_epoch(b["window_start"]) - t0) // 60)
        assert index in _zscore_flags(vols[(b["exchange"], b["symbol"])])
