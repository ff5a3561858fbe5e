"""MOD-006 flow direction and MOD-007 consensus as pure functions: boundaries, direction, late data."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from jobs.logic import (
    ConsensusState,
    ConsensusWeights,
    FlowBands,
    FlowState,
    WhaleFlowTrade,
    advance_consensus,
    advance_flow,
    consensus_score,
    score_flow,
)

pytestmark = pytest.mark.unit

BANDS = FlowBands(Decimal("0.7"), Decimal("0.85"), Decimal("0.3"), Decimal("0.15"))
WEIGHTS = ConsensusWeights(Decimal("0.3"), Decimal("0.3"), Decimal("0.4"))
FIVE_MIN = 300_000
VOLUME = {"window_ms": 60_000, "baseline_windows": 60, "min_history": 10, "threshold": 2.5}


def _flow(buy: str, sell: str, n: int = 3) -> object:
    return score_flow(Decimal(buy), Decimal(sell), n, min_whale_trades=3, bands=BANDS)


def _whale(ts_ms: int, side: str, qv: str, eid: str = "", exchange: str = "binance") -> WhaleFlowTrade:
    return WhaleFlowTrade(ts_ms, exchange, side, Decimal(qv), eid or f"e{ts_ms}")


def test_ratio_exactly_on_the_thresholds_is_no_signal() -> None:
    at_07, at_03 = _flow("700000", "300000"), _flow("300000", "700000")
    assert at_07 is not None
    assert at_07.ratio == Decimal("0.7")
    assert at_07.signal is None
    assert at_03 is not None
    assert at_03.ratio == Decimal("0.3")
    assert at_03.signal is None
    just_above = _flow("700001", "300000")
    assert just_above is not None
    assert (just_above.signal, just_above.severity) == ("accumulation", "medium")
    just_below = _flow("299999", "700000")
    assert just_below is not None
    assert (just_below.signal, just_below.severity) == ("distribution", "medium")
    # 0.85 / 0.15 exactly stay medium; beyond them, high
    assert getattr(_flow("850000", "150000"), "severity", None) == "medium"
    assert getattr(_flow("850001", "150000"), "severity", None) == "high"
    assert getattr(_flow("150000", "850000"), "severity", None) == "medium"
    assert getattr(_flow("149999", "850000"), "severity", None) == "high"


def test_fewer_than_min_whale_trades_is_not_scored() -> None:
    assert _flow("900000", "0", n=2) is None
    scored = _flow("900000", "0", n=3)
    assert scored is not None
    assert scored.net_flow == Decimal("900000")
    assert scored.ratio == 1


def test_consensus_direction_comes_from_net_whale_flow() -> None:
    buy = consensus_score(Decimal(6), Decimal(4), None, None, None, z_threshold=2.5, weights=WEIGHTS)
    sell = consensus_score(Decimal(4), Decimal(6), None, None, None, z_threshold=2.5, weights=WEIGHTS)
    flat = consensus_score(Decimal(5), Decimal(5), None, None, None, z_threshold=2.5, weights=WEIGHTS)
    assert (buy and buy.direction, sell and sell.direction, flat and flat.direction) == (1, -1, 0)
    assert buy is not None
    assert buy.whale_signal == Decimal("0.2")
    assert buy.score == Decimal("6.0")
    assert consensus_score(Decimal(0), Decimal(0), None, None, None, z_threshold=2.5, weights=WEIGHTS) is None


def test_score_exactly_70_and_a_flow_signal_against_the_direction() -> None:
    # All whale flow buys, accumulation signal at ratio 1, no volume spike: 100 × (0.3 + 0.4) = 70 exactly
    # (floats would give 70.00000000000001 and flag it).
    s = consensus_score(
        Decimal(9), Decimal(0), "accumulation", Decimal(1), None, z_threshold=2.5, weights=WEIGHTS
    )
    assert s is not None
    assert s.score == Decimal(70)
    assert s.flow_signal == 1
    assert s.volume_signal == 0
    # a distribution signal while whales net-buy contributes 0
    against = consensus_score(
        Decimal(9), Decimal(1), "distribution", Decimal("0.2"), 5.0, z_threshold=2.5, weights=WEIGHTS
    )
    assert against is not None
    assert against.flow_signal == 0
    assert against.score == 100 * (Decimal("0.3") * 1 + Decimal("0.3") * Decimal("0.8"))
    # the volume component: |z| over twice the threshold, capped at 1
    half = consensus_score(Decimal(1), Decimal(0), None, None, -2.5, z_threshold=2.5, weights=WEIGHTS)
    capped = consensus_score(Decimal(1), Decimal(0), None, None, 12.0, z_threshold=2.5, weights=WEIGHTS)
    assert half is not None
    assert half.volume_signal == Decimal("0.5")
    assert capped is not None
    assert capped.volume_signal == 1


def test_flow_windows_close_under_the_watermark_and_drop_late_trades() -> None:
    state = FlowState()
    first = [_whale(210_000, "buy", "200000"), _whale(299_999, "sell", "150000")]
    assert advance_flow(state, first, 200_000, window_ms=FIVE_MIN) == ([], 0)  # [0, 300 s) still open
    closed, late = advance_flow(state, [_whale(150_000, "buy", "1")], 300_000, window_ms=FIVE_MIN)
    assert late == 1  # at/before the watermark
    (w,) = closed
    assert (w.window_start_ms, w.window_end_ms) == (0, FIVE_MIN)
    assert (w.buy, w.sell) == (Decimal(200000), Decimal(150000))
    closed, late = advance_flow(state, [_whale(299_000, "buy", "5")], None, window_ms=FIVE_MIN)
    assert (closed, late) == ([], 1)  # its window already closed
    restored = FlowState.from_json(json.loads(json.dumps(state.to_json())))
    assert restored == state


def test_consensus_sees_the_volume_spikes_of_its_window() -> None:
    """Ten quiet minutes of history, then a minute at 10x volume holding three buy whales."""
    trades = [(m * 60_000 + 1_000, "binance", 100_000.0 + (m % 2) * 2_000) for m in range(10)]
    whales = [_whale(600_000 + i * 10_000, "buy", "300000") for i in range(3)]
    trades += [(w.ts_ms, "binance", float(w.quote_volume)) for w in whales]
    state = ConsensusState()
    assert advance_consensus(state, trades, whales, 0, window_ms=FIVE_MIN, volume=VOLUME) == []
    (w,) = advance_consensus(state, [], [], 600_000 + FIVE_MIN, window_ms=FIVE_MIN, volume=VOLUME)
    assert w.flow.window_start_ms == 600_000
    assert len(w.flow.trades) == 3
    (spike,) = w.spikes
    assert (spike.exchange, spike.window_start_ms) == ("binance", 600_000)
    assert spike.z > 100
    assert state.spikes == {}
    assert state.flow.open == {}
    # windows with spikes but no whale flow are not scored, and their spikes are forgotten on close
    quiet = [(960_000 + 1_000, "binance", 5_000_000.0)]
    assert advance_consensus(state, quiet, [], 900_000, window_ms=FIVE_MIN, volume=VOLUME) == []
    assert advance_consensus(state, [], [], 1_300_000, window_ms=FIVE_MIN, volume=VOLUME) == []
    assert state.spikes == {}
    assert ConsensusState.from_json(json.loads(json.dumps(state.to_json()))) == state
