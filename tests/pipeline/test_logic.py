"""The pure detection functions: boundary values, empty windows, late data."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coattail.settings.modules import SeverityBand
from jobs.logic import (
    Pair,
    VolumeState,
    advance_volume,
    early_spikes,
    spread_pairs,
    spread_pct,
    spreads_for_window,
    whale_severity,
    z_score_for_window,
)

pytestmark = pytest.mark.unit

# Mean 100, sample stddev exactly 2 (squared deviations 4 × 9 = 36 over n − 1 = 9).
HISTORY = [103.0, 103.0, 97.0, 97.0] + [100.0] * 6
WINDOW = {"window_ms": 60_000, "baseline_windows": 60, "min_history": 10, "threshold": 2.5}
BANDS = [
    SeverityBand(above=100_000, severity="medium"),
    SeverityBand(above=500_000, severity="high"),
    SeverityBand(above=1_000_000, severity="critical"),
]


def test_z_exactly_at_threshold_is_not_flagged() -> None:
    score = z_score_for_window(HISTORY, 105.0, min_history=10, threshold=2.5)
    assert (score.z, score.mean, score.stddev, score.flagged) == (2.5, 100.0, 2.0, False)
    assert z_score_for_window(HISTORY, 105.0001, min_history=10, threshold=2.5).flagged
    assert z_score_for_window(HISTORY, 94.9, min_history=10, threshold=2.5).flagged  # |z|: drops too


def test_needs_min_history() -> None:
    assert not z_score_for_window(HISTORY[:9], 1e9, min_history=10, threshold=2.5).flagged
    assert z_score_for_window(HISTORY, 1e9, min_history=10, threshold=2.5).flagged


def test_flat_history_gives_no_z() -> None:
    score = z_score_for_window([5.0] * 20, 50.0, min_history=10, threshold=2.5)
    assert score.z is None
    assert not score.flagged


def _minutes(volumes: dict[int, float]) -> list[tuple[int, float]]:
    return [(m * 60_000 + 1_000, v) for m, v in sorted(volumes.items())]


def test_windows_without_trades_count_as_zero() -> None:
    state = VolumeState()
    # minutes 0..9 traded (100 each), 10..14 quiet, minute 15 trades 100 again
    closed, _ = advance_volume(state, _minutes({m: 100.0 for m in range(10)} | {15: 100.0}), None, **WINDOW)
    last = closed[-1]
    assert last.window_start_ms == 15 * 60_000
    history = [100.0] * 10 + [0.0] * 5
    assert last.score.history_windows == 15
    assert last.score.mean == pytest.approx(sum(history) / 15)
    assert state.history == [*history, 100.0]


def test_baseline_is_the_last_hour_only() -> None:
    state = VolumeState()
    trades = _minutes({m: (1000.0 if m < 10 else 10.0 + m % 2) for m in range(75)})
    closed, _ = advance_volume(state, trades, None, **WINDOW)
    assert closed[-1].score.history_windows == 60
    assert closed[-1].score.mean == pytest.approx(10.5, abs=0.01)  # minutes 14..73, no 1000s left


def test_streaming_closes_at_watermark_and_drops_late() -> None:
    state = VolumeState()
    closed, late = advance_volume(state, [(1_000, 5.0), (61_000, 7.0)], 0, **WINDOW)
    assert closed == []
    assert late == 0
    closed, late = advance_volume(state, [(30_000, 1.0), (95_000, 2.0)], 60_000, **WINDOW)
    assert late == 1  # 30 s is at/before the 60 s watermark: its window is closed
    assert [(w.window_start_ms, w.volume) for w in closed] == [(0, 5.0)]
    closed, _ = advance_volume(state, [], 120_000, **WINDOW)
    assert [(w.window_start_ms, w.volume, w.trades) for w in closed] == [(60_000, 9.0, 2)]
    closed, late = advance_volume(state, [(110_000, 1.0)], 100_000, **WINDOW)
    assert late == 1  # window already closed by this key


def test_whale_bands_are_strictly_above() -> None:
    assert whale_severity(BANDS, Decimal("100000")) is None
    assert whale_severity(BANDS, Decimal("100000.000000000000000001")) == "medium"
    assert whale_severity(BANDS, Decimal("500000")) == "medium"
    assert whale_severity(BANDS, Decimal("500000.01")) == "high"
    assert whale_severity(BANDS, Decimal("1000000")) == "high"
    assert whale_severity(BANDS, Decimal("1000000.5")) == "critical"


def test_spread() -> None:
    assert spread_pct(201.0, 200.0) == 0.5
    pairs = [Pair("BTC", "binance:BTC-USDT", "coinbase:BTC-USD")]
    (at_threshold,) = spreads_for_window({"binance:BTC-USDT": 201.0, "coinbase:BTC-USD": 200.0}, pairs, 0.5)
    assert not at_threshold.flagged
    (below,) = spreads_for_window({"binance:BTC-USDT": 199.0, "coinbase:BTC-USD": 200.0}, pairs, 0.4)
    assert below.flagged
    assert below.spread_pct == -0.5
    assert spreads_for_window({"binance:BTC-USDT": 201.0}, pairs, 0.5) == []  # one side did not trade


def test_spread_pairs_are_every_pair_of_a_group_among_the_streamed_venues() -> None:
    groups = {"BTC": ["binance:BTC-USDT", "coinbase:BTC-USD", "okx:BTC-USDT", "kraken:BTC-USD"]}
    pairs = spread_pairs(groups)
    assert len(pairs) == 6  # n(n-1)/2: every venue against every other, "a" listed first
    assert (pairs[0].a, pairs[0].b) == ("binance:BTC-USDT", "coinbase:BTC-USD")
    assert ("okx:BTC-USDT", "kraken:BTC-USD") in {(p.a, p.b) for p in pairs}
    streamed = spread_pairs(groups, present=["okx:BTC-USDT", "kraken:BTC-USD", "binance:BTC-USDT"])
    assert [(p.a, p.b) for p in streamed] == [
        ("binance:BTC-USDT", "okx:BTC-USDT"), ("binance:BTC-USDT", "kraken:BTC-USD"),
        ("okx:BTC-USDT", "kraken:BTC-USD"),
    ]  # fmt: skip


def test_early_spike_fires_once_while_open_with_the_baseline_of_its_close() -> None:
    state = VolumeState()
    trades = [(m * 60_000 + 1_000, v) for m, v in enumerate(HISTORY)]  # ten windows: mean 100, sd 2
    advance_volume(state, trades, None, **WINDOW)
    # minute 11 (after a quiet minute 10: a zero in the baseline) is building; minute 12 too
    advance_volume(state, [(11 * 60_000 + 5_000, 400.0), (12 * 60_000 + 1_000, 1.0)], 11 * 60_000, **WINDOW)
    (early,) = early_spikes(state, **WINDOW)
    assert early.window_start_ms == 11 * 60_000
    assert early.score.z is not None
    assert early.score.z > 2.5
    assert early_spikes(state, **WINDOW) == []  # once per window
    closed, _ = advance_volume(state, [], 12 * 60_000, **WINDOW)
    (final,) = closed
    assert final.early_warned
    assert final.score.z == early.score.z  # nothing came after: the same z at close
    assert state.warned == set()
    # a drop is not known early; and the flag survives the state's JSON round trip
    advance_volume(state, [(13 * 60_000 + 1_000, 900.0)], 12 * 60_000 + 30_000, **WINDOW)
    warned = early_spikes(state, **WINDOW)
    assert [w.window_start_ms for w in warned] == [13 * 60_000]
    assert VolumeState.from_json(state.to_json()).warned == {13 * 60_000}
    assert VolumeState.from_json({"open": {}, "h": [], "l": None}).warned == set()  # older state
