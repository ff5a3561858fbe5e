"""Planted price moves: in the prices, informed flow before the predictable ones, nothing before the rest.

The checks recompute everything from the normalised lines, as the detectors would see them (MOD-001's
z-score, MOD-002's threshold, MOD-006's flow ratio, MOD-007's score), so the truth is what the market says.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from connectors.simulator import simulate
from connectors.trade import Trade
from tests.connectors.test_simulator import _trades, _window_volumes, _zscores

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 1, 5, 6, 0, 41, tzinfo=UTC)
WHALE = Decimal(100_000)
EPISODE = 300


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


@pytest.fixture(scope="module")
def market() -> tuple[dict[str, object], list[Trade]]:
    """Six and a half hours at 1.5 events/s with four moves per base (BTC, ETH): eight moves."""
    lines, truth = simulate(seed=7, minutes=480, rate=1.5, start=START, moves=4)
    return truth, _trades(lines)


def _mean_price(trades: list[Trade], keys: set[str], lo: float, hi: float) -> float:
    prices = [
        float(t.price)
        for t in trades
        if f"{t.exchange}:{t.symbol}" in keys and lo <= _epoch(t.timestamp) < hi
    ]
    assert prices, (keys, lo, hi)
    return statistics.fmean(prices)


def test_moves_are_planned_as_asked(market) -> None:  # type: ignore[no-untyped-def]
    truth, _ = market
    moves = truth["moves"]
    assert len(moves) == 8
    for base in ("BTC", "ETH"):
        mine = [m for m in moves if m["base"] == base]
        assert len(mine) == 4
        assert [m["predictable"] for m in mine] == [True, True, False, True]
        directions = [m["direction"] for m in mine]
        assert all(a != b for a, b in itertools.pairwise(directions))  # alternating
        for m, after in zip(mine, [*mine[1:], None], strict=True):
            start, end = _epoch(m["start"]), _epoch(m["end"])
            assert 3 <= m["pct"] <= 5
            assert 20 * 60 <= end - start <= 40 * 60
            assert start % EPISODE == 0
            assert _epoch(m["informed_end"]) == start
            assert start - _epoch(m["informed_start"]) == 3600
            assert _epoch(truth["start"]) < _epoch(m["informed_start"])
            assert end < _epoch(truth["end"])
            if after is not None:
                assert end < _epoch(after["informed_start"])  # never two at once on one base
            assert m["symbol"].startswith(base + "-")
            assert f"{m['exchange']}:{m['symbol']}" in m["instruments"]


def test_every_venue_of_the_base_moves_by_pct(market) -> None:  # type: ignore[no-untyped-def]
    truth, trades = market
    for m in truth["moves"]:
        start, end = _epoch(m["start"]), _epoch(m["end"])
        sign = 1 if m["direction"] == "up" else -1
        for key in m["instruments"]:
            before = _mean_price(trades, {key}, start - 90, start)
            after = _mean_price(trades, {key}, end, end + 90)
            change = (after / before - 1) * 100
            assert sign * change == pytest.approx(m["pct"], abs=1.0), (key, m["start"], change)


def test_between_moves_the_price_walks_quietly(market) -> None:  # type: ignore[no-untyped-def]
    """From the run's start or a drift's end to the next drift's start (35 min or more, lead-ins
    included) no price of the base strays 2 % from where the stretch began."""
    truth, trades = market
    drifts: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for m in truth["moves"]:
        drifts[m["base"]].append((_epoch(m["start"]), _epoch(m["end"])))
    checked = 0
    for base, spans in drifts.items():
        keys = {f"{t.exchange}:{t.symbol}" for t in trades if t.symbol.startswith(base + "-")}
        ends = [_epoch(truth["start"]) + 60] + [e for _, e in spans]
        for lo, (hi, _) in zip(ends, spans, strict=False):
            assert hi - lo >= 35 * 60
            ref = _mean_price(trades, keys, lo, lo + 60)
            inside = [
                float(t.price) / ref - 1
                for t in trades
                if f"{t.exchange}:{t.symbol}" in keys and lo <= _epoch(t.timestamp) < hi
            ]
            assert max(abs(r) for r in inside) < 0.02, (base, lo)
            checked += 1
    assert checked == 8


def _by_window(trades: list[Trade], symbol: str) -> dict[int, list[Trade]]:
    out: dict[int, list[Trade]] = defaultdict(list)
    for t in trades:
        if t.symbol == symbol and t.quote_volume > WHALE:
            epoch = int(_epoch(t.timestamp))
            out[epoch - epoch % EPISODE].append(t)
    return out


def test_informed_flow_precedes_the_predictable_moves(market) -> None:  # type: ignore[no-untyped-def]
    """Each of the twelve lead-in windows on every instrument of the base: >= 4 whales, the move's side
    holding >= 85 % (MOD-006 fires the move's way); in the last six also a volume spike of |z| > 5
    (MOD-001) and a MOD-007 score > 70."""
    truth, trades = market
    t0 = _epoch(truth["start"]) // 60 * 60 + 60
    vols = _window_volumes(trades, t0, _epoch(truth["end"]) // 60 * 60)
    whales = {w["event_id"]: w for w in truth["whales"]}
    predictable = [m for m in truth["moves"] if m["predictable"]]
    assert len(predictable) == 6
    by_symbol = {
        sym: _by_window(trades, sym)
        for sym in {w["symbol"] for m in predictable for w in m["informed_windows"]}
    }
    z_of = {key: _zscores(v) for key, v in vols.items()}
    for m in predictable:
        lead = "buy" if m["direction"] == "up" else "sell"
        assert len(m["informed_windows"]) == 12 * len(m["instruments"])
        assert {f"{w['exchange']}:{w['symbol']}" for w in m["informed_windows"]} == set(m["instruments"])
        assert sorted(m["whale_event_ids"]) == sorted(
            i for w in m["informed_windows"] for i in w["whale_event_ids"]
        )
        for w in m["informed_windows"]:
            start = int(_epoch(w["window_start"]))
            found = by_symbol[w["symbol"]][start]
            zs = z_of[(w["exchange"], w["symbol"])]
            assert sorted(t.event_id for t in found) == sorted(w["whale_event_ids"])
            assert len(found) >= 4
            assert all(whales[t.event_id]["side"] == t.side for t in found)
            assert all((t.exchange, t.symbol) == (w["exchange"], w["symbol"]) for t in found)
            leading = sum((t.quote_volume for t in found if t.side == lead), Decimal(0))
            total = sum((t.quote_volume for t in found), Decimal(0))
            share = float(leading / total)
            assert share >= 0.85, (m["start"], w["window_start"], share)
            assert (Decimal(w["buy_volume"]) + Decimal(w["sell_volume"])) == total
            if start < _epoch(m["start"]) - 1800:  # the hour's first half: whales only, no burst
                continue
            z = max(zs.get(int((start + 60 * i - t0) // 60), 0.0) for i in range(5))
            assert z > 5, (m["start"], w["window_start"], z)
            v, wf = min(1.0, z / 5), 2 * share - 1
            assert 100 * (0.3 * v + 0.3 * wf + 0.4 * wf) > 70
        assert set(m["volume_bursts"]) <= {b["window_start"] for b in truth["volume_bursts"]}


def test_nothing_precedes_the_unpredictable_moves(market) -> None:  # type: ignore[no-untyped-def]
    truth, trades = market
    unpredictable = [m for m in truth["moves"] if not m["predictable"]]
    assert len(unpredictable) == 2
    for m in unpredictable:
        assert m["whale_event_ids"] == []
        assert m["informed_windows"] == []
        assert m["volume_bursts"] == []
        lo, hi = _epoch(m["informed_start"]), _epoch(m["informed_end"])
        keys = set(m["instruments"])
        big = [
            t.event_id
            for t in trades
            if f"{t.exchange}:{t.symbol}" in keys
            and lo <= _epoch(t.timestamp) < hi
            and t.quote_volume > WHALE
        ]
        assert big == [], m["start"]
        assert not [
            b
            for b in truth["volume_bursts"]
            if f"{b['exchange']}:{b['symbol']}" in keys and lo <= _epoch(b["window_start"]) < hi
        ]


def test_no_other_planted_flow_on_a_base_before_its_moves(market) -> None:  # type: ignore[no-untyped-def]
    """Background whales and flow episodes keep out of every lead-in on the moving base's symbols."""
    truth, trades = market
    informed = {i for m in truth["moves"] for i in m["whale_event_ids"]}
    for m in truth["moves"]:
        lo, hi = _epoch(m["informed_start"]), _epoch(m["informed_end"])
        symbols = {k.split(":")[1] for k in m["instruments"]}
        stray = [
            t.event_id
            for t in trades
            if t.symbol in symbols
            and lo <= _epoch(t.timestamp) < hi
            and t.quote_volume > WHALE
            and t.event_id not in informed
        ]
        assert stray == [], m["start"]
        assert not [
            e
            for e in truth["flow_episodes"]
            if e["symbol"] in symbols and lo <= _epoch(e["window_start"]) < hi
        ]


def test_defaults_unchanged_and_same_seed_same_output() -> None:
    plain = simulate(seed=3, minutes=20, rate=4, start=START)
    zero = simulate(seed=3, minutes=20, rate=4, start=START, moves=0)
    assert plain[1]["moves"] == []
    assert orjson.dumps(plain) == orjson.dumps(zero)
    a = simulate(seed=3, minutes=170, rate=0.5, start=START, moves=1)
    b = simulate(seed=3, minutes=170, rate=0.5, start=START, moves=1)
    c = simulate(seed=4, minutes=170, rate=0.5, start=START, moves=1)
    assert a[1]["moves"]
    assert orjson.dumps(a) == orjson.dumps(b)
    assert orjson.dumps(a[1]["moves"]) != orjson.dumps(c[1]["moves"])


def test_too_many_moves_for_the_run_is_one_line() -> None:
    with pytest.raises(
        ValueError, match=r"^5 price moves per base asset need at least 580 simulated minutes$"
    ):
        simulate(seed=1, minutes=400, rate=1, start=START, moves=5)
    with pytest.raises(ValueError, match="negative"):
        simulate(seed=1, minutes=300, rate=1, start=START, moves=-1)


def test_cli_plants_moves(tmp_path: Path) -> None:
    out, truth = tmp_path / "raw.jsonl", tmp_path / "truth.json"
    args = ["--seed", "2", "--minutes", "170", "--rate", "0.5", "--start", "2026-01-05T00:00:00Z",
            "--moves", "1"]  # fmt: skip
    cmd = [sys.executable, "-m", "coattail", "simulate", *args, "--exchanges", "binance,coinbase",
           "--out", str(out), "--truth", str(truth)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, cwd=REPO, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    facts = orjson.loads(truth.read_bytes())
    assert {m["base"] for m in facts["moves"]} >= {"BTC", "ETH"}
    assert b"planted price moves" in done.stderr
    bad = subprocess.run(
        [*cmd[:-4], "--moves", "9", "--out", str(out)], capture_output=True, cwd=REPO, timeout=120
    )
    assert bad.returncode != 0
    assert bad.stderr.decode().strip().splitlines()[-1].endswith("need at least 1000 simulated minutes")
