"""MOD-004's pure functions: trades from swaps, reference prices, the score at its boundaries, percentiles
with ties, and the event-time state (pending until the horizon passes, the lookback dropping returns)."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import pytest

from jobs.wallet_logic import (
    ChainEvent,
    ChainState,
    ScoreRules,
    advance_chain,
    max_drawdown,
    next_due,
    percentile,
    percentiles,
    score,
    scores_as_of,
    trade_of,
    trade_return,
)

pytestmark = pytest.mark.unit
D = Decimal
MIN = 60_000
HOUR = 60 * MIN
WETH, USDC, USDT, PEPE = "weth", "usdc", "usdt", "pepe"
RULES = ScoreRules(
    horizon_ms=HOUR,
    lookback_ms=30 * 24 * HOUR,
    min_trades=5,
    drawdown_floor=0.01,
    price_max_age_ms=15 * MIN,
    high_percentile=95,
    very_high_percentile=99,
    score_change_points=20,
)
_seq = iter(range(10**9))


def swap(
    at_ms: int, wallet: str, side: str, price: str, *, weth: str = "1", quote: str = "USDC"
) -> ChainEvent:
    """``wallet`` buys or sells ``weth`` WETH for USDC at ``price`` (usd_value: the dollar side)."""
    usd = D(price) * D(weth)
    dollars = (USDC if quote == "USDC" else USDT, quote, usd)
    coin = (WETH, "WETH", D(weth))
    give, get = (dollars, coin) if side == "buy" else (coin, dollars)
    i = next(_seq)
    return ChainEvent(
        at_ms, 100 + i, 0, f"swap-{i}", "swap", f"0x{i:x}", wallet,
        token_in=give[0], token_in_symbol=give[1], amount_in=give[2],
        token_out=get[0], token_out_symbol=get[1], amount_out=get[2], usd_value=usd,
    )  # fmt: skip


def cex(at_ms: int, price: str, token: tuple[str, str] = (WETH, "WETH")) -> ChainEvent:
    """A transfer of 2 tokens valued at the CEX price: an observation of P(token) = ``price``."""
    i = next(_seq)
    return ChainEvent(at_ms, 100 + i, 1, f"t-{i}", "transfer", f"0x{i:x}", None, token[0], token[1],
                      D(2), usd_value=D(price) * 2)  # fmt: skip


def roundtrip(state: ChainState) -> ChainState:
    return ChainState.from_json(json.loads(json.dumps(state.to_json())))


# -- trades ------------------------------------------------------------------------------------------


def pair(in_: tuple[str, str, str], out: tuple[str, str, str], trader: str | None = "w") -> ChainEvent:
    """A swap of (token, symbol, amount) ``in_`` for ``out`` by ``trader``."""
    return ChainEvent(0, 1, 0, f"{in_[1]}-{out[1]}", "swap", "0x1", trader,
                      token_in=in_[0], token_in_symbol=in_[1], amount_in=D(in_[2]),
                      token_out=out[0], token_out_symbol=out[1], amount_out=D(out[2]))  # fmt: skip


def test_a_swap_is_a_buy_of_what_the_wallet_received_and_a_sell_of_what_it_gave() -> None:
    buy, sell = trade_of(swap(0, "w", "buy", "3000"), RULES), trade_of(swap(0, "w", "sell", "3000"), RULES)
    assert buy is not None
    assert sell is not None
    assert (buy.token, buy.side, buy.wallet) == (WETH, "buy", "w")
    assert (sell.token, sell.side) == (WETH, "sell")
    # WETH is the quote of a PEPE/WETH swap (quote_priority): selling WETH for PEPE is a buy of PEPE
    found = trade_of(pair((WETH, "WETH", "1"), (PEPE, "PEPE", "1000000")), RULES)
    assert found is not None
    assert (found.token, found.side) == (PEPE, "buy")


def test_stable_to_stable_or_no_quote_side_is_no_trade() -> None:
    assert trade_of(pair((USDC, "USDC", "5"), (USDT, "USDT", "5")), RULES) is None
    assert trade_of(pair(("a", "AAA", "5"), ("b", "BBB", "5")), RULES) is None
    assert trade_of(pair((USDC, "USDC", "5"), (WETH, "WETH", "1"), None), RULES) is None  # no trader
    assert trade_of(cex(0, "3000"), RULES) is None


# -- the score at its boundaries ---------------------------------------------------------------------


def test_four_trades_are_not_scored_five_are() -> None:
    assert score([0.01, 0.02, -0.01, 0.03], 5, 0.01) is None
    five = score([0.01, 0.02, -0.01, 0.03, 0.05], 5, 0.01)
    assert five is not None
    assert five.trade_count == 5
    assert five.win_rate == pytest.approx(0.8)
    assert five.avg_return == pytest.approx(0.02)
    assert five.max_drawdown == pytest.approx(0.01)  # the fall 0.03 -> 0.02, equal to the floor
    assert five.alpha == pytest.approx(0.8 * 0.02 * math.sqrt(5) / 0.01)


def test_zero_drawdown_is_floored() -> None:
    assert max_drawdown([0.02] * 5) == 0
    found = score([0.02] * 5, 5, 0.01)
    assert found is not None
    assert found.max_drawdown == 0.01
    assert found.alpha == pytest.approx(1.0 * 0.02 * math.sqrt(5) / 0.01)


def test_drawdown_is_peak_to_trough_of_the_cumulative_sum() -> None:
    # cumulative 0.1, 0.05, -0.05, 0.15: peak 0.1, trough -0.05
    assert max_drawdown([0.1, -0.05, -0.1, 0.2]) == pytest.approx(0.15)
    assert max_drawdown([-0.1, 0.05]) == pytest.approx(0.1)  # from the start (0)


def test_a_sells_return_is_negated() -> None:
    assert trade_return(D(100), D(110), "buy") == pytest.approx(0.1)
    assert trade_return(D(100), D(110), "sell") == pytest.approx(-0.1)
    assert trade_return(D(100), D(90), "sell") == pytest.approx(0.1)
    assert trade_return(D(0), D(90), "buy") is None


def test_percentile_ties_share_the_lower_rank() -> None:
    got = percentiles({"low": 0.0, "a": 1.0, "b": 1.0, "top": 2.0})
    assert got == {"low": 0.0, "a": pytest.approx(100 / 3), "b": pytest.approx(100 / 3), "top": 100.0}
    assert percentiles({"all": 1.0, "same": 1.0}) == {"all": 0.0, "same": 0.0}
    assert percentile([5.0], 5.0) == 0.0  # a lone wallet is no one's top
    ranked = percentiles({f"w{i}": float(i) for i in range(101)})
    assert [w for w, p in ranked.items() if p >= 95] == [f"w{i}" for i in range(95, 101)]


# -- event time: pending, resolution, lookback -------------------------------------------------------


def _informed(wallet: str, start: int, n: int) -> list[ChainEvent]:
    """``n`` buys an hour apart, each followed by a 1 % rise on the CEX an hour later."""
    events = []
    for k in range(n):
        t = start + k * 2 * HOUR
        events += [cex(t - MIN, "3000"), swap(t, wallet, "buy", "3000"), cex(t + HOUR - MIN, "3030")]
    return events


def test_a_trade_stays_pending_until_the_watermark_passes_its_horizon() -> None:
    state = ChainState()
    t = 10 * HOUR
    first = [cex(t - MIN, "3000"), swap(t, "w", "buy", "3000"), cex(t + HOUR - MIN, "3300")]
    step = advance_chain(state, first, t + HOUR - 1, RULES)
    assert step.scores == []
    assert len(state.pending) == 1
    assert state.pending[0][1] == "3000"  # P(t) is fixed once event time passed t (the CEX price)
    assert next_due(state, RULES) == t + HOUR
    state = roundtrip(state)
    step = advance_chain(state, [], t + HOUR, RULES)
    assert state.pending == []
    assert state.wallets["w"].returns[0][5] == pytest.approx(0.1)  # resolved: +10 %, one trade: no score
    assert step.scores == []


def test_events_at_or_before_the_previous_watermark_are_late() -> None:
    state = ChainState()
    advance_chain(state, [cex(5 * HOUR, "3000")], 5 * HOUR, RULES)
    step = advance_chain(state, [swap(5 * HOUR, "w", "buy", "3000")], 6 * HOUR, RULES)
    assert step.late == 1
    assert state.pending == []
    step = advance_chain(state, [swap(5 * HOUR + 1, "w", "buy", "3000")], 6 * HOUR, RULES)
    assert step.late == 1  # the previous call's watermark (6 h) settled it


def test_cex_prices_win_over_the_pools_and_stale_prices_do_not_count() -> None:
    state = ChainState()
    t = 10 * HOUR
    # the pool price of the swap itself is 2900; the CEX said 3000 a minute before; at t+H only the pool
    events = [cex(t - MIN, "3000"), swap(t, "w", "buy", "2900"), swap(t + HOUR - MIN, "x", "buy", "3150")]
    advance_chain(state, events, t + HOUR, RULES)
    assert state.wallets["w"].returns[0][5] == pytest.approx(0.05)  # 3000 -> 3150 (the pool's, no CEX)
    stale = ChainState()
    events = [
        cex(t - 20 * MIN, "3000"),
        swap(t, "w", "buy", "2900"),
        swap(t + HOUR - MIN, "x", "buy", "3190"),
    ]
    advance_chain(stale, events, t + HOUR, RULES)
    assert stale.wallets["w"].returns[0][5] == pytest.approx(0.1)  # 20 min old CEX: P(t) is the pool's
    late_price = ChainState()
    gone = advance_chain(late_price, [swap(t, "w", "buy", "2900")], t + HOUR, RULES)
    assert gone.unpriced == 1  # at t+H the last price is an hour old: unpriced, not scored


def test_scores_percentiles_alerts_and_the_stream_equals_one_pass() -> None:
    base = 10 * HOUR
    events: list[ChainEvent] = []
    for k in range(6):  # informed: buys before each rise
        events += _informed("smart", base + k * 10 * HOUR, 1)
    for j, w in enumerate(("noise1", "noise2", "noise3")):  # the same mixed luck for all three
        for k in range(6):
            t = base + k * 10 * HOUR + (j + 1) * 2 * HOUR + 30 * MIN
            side = "buy" if k % 2 else "sell"
            events += [cex(t - MIN, "3000"), swap(t, w, side, "3000"),
                       cex(t + HOUR - MIN, "2990" if k % 3 else "3015")]  # fmt: skip
    events.sort(key=lambda e: e.ts_ms)
    last = events[-1].ts_ms
    events += _informed("smart", last + 2 * HOUR, 1)  # a trade once smart is top of the chain
    end = last + 5 * HOUR
    events.append(cex(end, "3000"))

    one = advance_chain(ChainState(), events, end, RULES)
    state, scores, alerts, watermark = ChainState(), [], [], 0
    for lo in range(0, len(events), 7):  # micro-batches; the watermark trails the previous batch
        batch = events[lo : lo + 7]
        step = advance_chain(state, batch, watermark, RULES)
        state = roundtrip(state)
        scores += step.scores
        alerts += step.alpha_trades
        watermark = batch[-1].ts_ms - 1
    step = advance_chain(state, [], end, RULES)
    scores, alerts = scores + step.scores, alerts + step.alpha_trades
    assert scores == one.scores
    assert alerts == one.alpha_trades
    assert state.pending == []
    assert len(state.wallets) == 4
    assert [len(s) for kinds in state.prices.values() for s in kinds.values()] == [1]  # the last fresh one
    latest = {s.wallet: s for s in one.scores}
    assert set(latest) == {"smart", "noise1", "noise2", "noise3"}
    assert latest["smart"].alpha_percentile == 100
    assert latest["smart"].score.win_rate == 1
    assert latest["smart"].score.alpha == pytest.approx(0.01 * math.sqrt(7) / 0.01)
    assert {latest[w].alpha_percentile for w in ("noise1", "noise2", "noise3")} == {0.0}  # tied
    (alert,) = one.alpha_trades  # smart's 7th trade: the only one made while at the top
    assert (alert.trade.wallet, alert.severity, alert.alpha_percentile) == ("smart", "high", 100)
    changes = [(s.wallet, s.previous_percentile, s.alpha_percentile) for s in one.scores if s.changed(RULES)]
    assert changes == [("smart", 0.0, 100.0)]  # first scored alone (0), then above the noise


def test_the_lookback_drops_old_returns() -> None:
    rules = ScoreRules(**{**RULES.__dict__, "lookback_ms": 24 * HOUR})
    events = _informed("w", HOUR, 5)  # resolved at 2h, 4h, 6h, 8h, 10h
    state = ChainState()
    step = advance_chain(state, events, 10 * HOUR, rules)
    assert [s.score.trade_count for s in step.scores] == [5]
    # one more trade resolving at 28h: the window (4h, 28h] holds 6h, 8h, 10h and 28h -> not scored
    more = _informed("w", 27 * HOUR, 1)
    step = advance_chain(state, more, 29 * HOUR, rules)
    assert step.scores == []
    assert [x[0] // HOUR for x in state.wallets["w"].returns] == [6, 8, 10, 28]  # 2h, 4h forgotten
    assert state.wallets["w"].last is None


def test_scores_as_of_one_time() -> None:
    events = _informed("a", HOUR, 5) + _informed("b", HOUR + HOUR // 2, 6)
    found = scores_as_of(events, 14 * HOUR, RULES)
    assert [(s.wallet, s.score.trade_count, s.alpha_percentile) for s in found] == [
        ("a", 5, 0.0),
        ("b", 6, 100.0),
    ]
    assert [s.wallet for s in scores_as_of(events, 10 * HOUR, RULES)] == ["a"]  # b's 5th: 10.5 h
