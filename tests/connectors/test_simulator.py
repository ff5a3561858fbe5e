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

from coattail.contracts.types import format_utc
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
    settings = load_settings(env={})  # the CLI simulates the instruments of the tier's venues
    streamed = {ex: s for ex, s in settings.instruments.items() if ex in settings.active_connectors}
    assert sorted(streamed) == ["binance", "coinbase"]
    expected_lines, expected_truth = simulate(
        seed=9, minutes=3, rate=4, start=datetime(2026, 1, 5, tzinfo=UTC),
        instruments=streamed, equivalences=settings.equivalences,
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


# -- flow episodes (MOD-006 / MOD-007 truth) ----------------------------------------------------------
EPISODE = 300
WHALE = Decimal(100_000)


@pytest.fixture(scope="module")
def busy() -> tuple[list[dict[str, object]], dict[str, object], list[Trade]]:
    """25 minutes at 40 events/s: the run the episode schedule promises a consensus episode in."""
    lines, truth = simulate(seed=21, minutes=25, rate=40, start=START)
    return lines, truth, _trades(lines)


def _by_kind(truth: dict[str, object]) -> dict[tuple[bool, str], int]:
    counts: dict[tuple[bool, str], int] = defaultdict(int)
    for e in truth["flow_episodes"]:  # type: ignore[attr-defined]
        counts[(e["consensus"], e["direction"])] += 1
    return counts


@pytest.mark.parametrize("offset", [0, 1, 17, 59, 150, 299, 300 + 241])
def test_episode_schedule_at_any_start(offset: int) -> None:
    """Flow-only episodes of both directions in 20 min, and a consensus one too in 25 min.

    The schedule does not depend on the rate (bursts, dislocations and episodes are planned from the
    clock), so a low rate sweeps the start's phase against the 5 min grid cheaply.
    """
    start = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC) + timedelta(seconds=offset)
    for minutes in (20, 25):
        _, truth = simulate(seed=offset, minutes=minutes, rate=2, start=start)
        counts = _by_kind(truth)
        _assert_flow_only_both_ways(counts)
        if minutes == 25:
            assert counts[(True, "accumulation")] + counts[(True, "distribution")] >= 1, counts


def test_episode_schedule_at_the_stated_rate(busy) -> None:  # type: ignore[no-untyped-def]
    _, truth, _ = busy
    counts = _by_kind(truth)
    _assert_flow_only_both_ways(counts)
    assert counts[(True, "accumulation")] + counts[(True, "distribution")] >= 1, counts
    _, short = simulate(seed=22, minutes=20, rate=40, start=START)
    _assert_flow_only_both_ways(_by_kind(short))


def _assert_flow_only_both_ways(counts: dict[tuple[bool, str], int]) -> None:
    assert counts[(False, "accumulation")] >= 1, counts
    assert counts[(False, "distribution")] >= 1, counts


def _five_min(ts: str) -> int:
    epoch = int(_epoch(ts))
    return epoch - epoch % EPISODE


def _whales_by_window(trades: list[Trade]) -> dict[tuple[str, int], list[Trade]]:
    """Whale trades (MOD-002's threshold) per (symbol, aligned 5 min window), as MOD-006 groups them."""
    out: dict[tuple[str, int], list[Trade]] = defaultdict(list)
    for t in trades:
        if t.quote_volume > WHALE:
            out[(t.symbol, _five_min(t.timestamp))].append(t)
    return out


def _zscores(series: list[Decimal]) -> dict[int, float]:
    """z of each window vs the previous hour (min 10 windows, quiet windows as zero), as MOD-001."""
    out = {}
    for i in range(10, len(series)):
        hist = [float(v) for v in series[max(0, i - 60) : i]]
        sd = statistics.stdev(hist)
        if sd > 0:
            out[i] = (float(series[i]) - statistics.mean(hist)) / sd
    return out


@pytest.mark.parametrize("which", ["busy", "run"])
def test_episodes_recomputed_from_the_rendered_lines(which: str, request: pytest.FixtureRequest) -> None:
    """Every episode's whales, sums and ratio are what the normalised lines give; consensus on a burst."""
    _, truth, trades = request.getfixturevalue(which)
    windows = _whales_by_window(trades)
    whales = {w["event_id"]: w for w in truth["whales"]}
    whale_minutes = {(w["exchange"], w["symbol"], w["window_start"]) for w in truth["whale_windows"]}
    bursts = {(b["exchange"], b["symbol"], b["window_start"]) for b in truth["volume_bursts"]}
    assert truth["flow_episodes"]
    for e in truth["flow_episodes"]:
        start = _epoch(e["window_start"])
        assert start % EPISODE == 0
        assert _epoch(e["window_end"]) - start == EPISODE
        assert _epoch(truth["start"]) <= start < _epoch(e["window_end"]) <= _epoch(truth["end"])
        found = windows[(e["symbol"], int(start))]
        assert sorted(t.event_id for t in found) == sorted(e["whale_event_ids"])
        assert 4 <= len(found) <= 6
        assert all((t.exchange, t.symbol) == (e["exchange"], e["symbol"]) for t in found)
        assert len({int(_epoch(t.timestamp)) // 60 for t in found}) == len(found)  # distinct minutes
        assert all(Decimal(150_000) <= t.quote_volume <= Decimal(450_000) for t in found)
        for t in found:  # each is a whale of the truth, its minute a whale window
            assert Decimal(whales[t.event_id]["quote_volume"]) == t.quote_volume
            assert (t.exchange, t.symbol, _window(t.timestamp)) in whale_minutes
        buy = sum((t.quote_volume for t in found if t.side == "buy"), Decimal(0))
        sell = sum((t.quote_volume for t in found if t.side == "sell"), Decimal(0))
        assert (buy, sell) == (Decimal(e["buy_volume"]), Decimal(e["sell_volume"]))
        ratio = buy / (buy + sell)
        accumulation = e["direction"] == "accumulation"
        if e["consensus"]:
            assert ratio == (1 if accumulation else 0)
            minutes = {_iso(int(start) + 60 * i) for i in range(5)}
            assert any((e["exchange"], e["symbol"], m) in bursts for m in minutes), e
        else:
            band = (Decimal("0.74"), Decimal("0.78")) if accumulation else (Decimal("0.22"), Decimal("0.26"))
            assert band[0] <= ratio <= band[1], ratio


def _iso(epoch: int) -> str:
    return format_utc(datetime.fromtimestamp(epoch, UTC))


def _window(ts: str) -> str:
    return _iso(int(_epoch(ts)) // 60 * 60)


@pytest.mark.parametrize("which", ["busy", "run"])
def test_detectors_fire_exactly_on_the_episodes(which: str, request: pytest.FixtureRequest) -> None:
    """MOD-006 and MOD-007 as DESIGN specifies them, run over the normalised lines, match the truth.

    Outside episodes no symbol has 3 whale trades in a window (MOD-006 cannot fire); MOD-007 scores
    > 70 on consensus episodes only (100 there: ratio 1 and a burst of z >= 5), never on flow-only ones.
    """
    _, truth, trades = request.getfixturevalue(which)
    t0 = _epoch(truth["start"]) // 60 * 60 + 60
    vols = _window_volumes(trades, t0, _epoch(truth["end"]) // 60 * 60)
    spikes: dict[tuple[str, int], float] = defaultdict(float)  # max |z| of volume spikes per window
    for (_, symbol), series in vols.items():
        for i, z in _zscores(series).items():
            if abs(z) > 2.5:
                key = (symbol, _five_min(_iso(int(t0) + 60 * i)))
                spikes[key] = max(spikes[key], abs(z))
    planted = {(e["symbol"], int(_epoch(e["window_start"]))): e for e in truth["flow_episodes"]}
    for key, found in _whales_by_window(trades).items():
        episode = planted.get(key)
        if episode is None:
            assert len(found) < 3, (key, [t.event_id for t in found])
            continue
        buy = sum((t.quote_volume for t in found if t.side == "buy"), Decimal(0))
        sell = sum((t.quote_volume for t in found if t.side == "sell"), Decimal(0))
        ratio = float(buy / (buy + sell))
        signal = "accumulation" if ratio > 0.7 else "distribution" if ratio < 0.3 else None
        assert signal == episode["direction"]  # MOD-006 fires, the planted way
        v = min(1.0, spikes.get(key, 0.0) / 5)
        w = float(abs(buy - sell) / (buy + sell))
        f = abs(2 * ratio - 1)  # the signal points the way of the net flow
        score = 100 * (0.3 * v + 0.3 * w + 0.4 * f)
        if episode["consensus"]:
            assert score == pytest.approx(100), (key, spikes.get(key))
        else:
            assert score < 70, key
    assert set(planted) <= set(_whales_by_window(trades))


def test_episodes_are_deterministic_and_optional() -> None:
    a = simulate(seed=5, minutes=25, rate=3, start=START)[1]
    b = simulate(seed=5, minutes=25, rate=3, start=START)[1]
    assert a["flow_episodes"]
    assert orjson.dumps(a) == orjson.dumps(b)
    lines, plain = simulate(seed=5, minutes=25, rate=3, start=START, flow_episodes=False)
    assert plain["flow_episodes"] == []
    assert len(plain["whales"]) < len(a["whales"])
    counts: dict[tuple[str, int], int] = defaultdict(int)
    for t in _trades(lines):
        if t.quote_volume > WHALE:
            counts[(t.symbol, _five_min(t.timestamp))] += 1
    assert max(counts.values()) == 1  # background whales only: one every 7 minutes


def test_cli_simulates_the_chosen_venues_and_refuses_unknown_ones(tmp_path: Path) -> None:
    out = tmp_path / "raw.jsonl"
    base = [sys.executable, "-m", "coattail", "simulate", "--seed", "3", "--minutes", "2", "--rate", "10",
            "--start", "2026-01-05T00:00:00Z", "--out", str(out)]  # fmt: skip
    done = subprocess.run(
        [*base, "--exchanges", "okx,kraken,bybit"], capture_output=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    venues = {orjson.loads(line)["exchange"] for line in out.read_bytes().splitlines()}
    assert venues == {"okx", "kraken", "bybit"}
    bad = subprocess.run(
        [*base, "--exchanges", "okx,nosuchvenue"], capture_output=True, cwd=REPO, timeout=120
    )
    assert bad.returncode != 0
    assert (
        bad.stderr.decode()
        .strip()
        .splitlines()[-1]
        .endswith("--exchanges names nosuchvenue, which have no `instruments` in config/features.yaml")
    )
