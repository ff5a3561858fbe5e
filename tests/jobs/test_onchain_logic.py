"""MOD-008 / MOD-009 pure logic (jobs.onchain_logic): thresholds on their boundaries, exact decimals,
price impact, the pool windows' liquidity change and late events."""

from __future__ import annotations

from decimal import Decimal

import pytest

from coattail.settings.modules import SeverityBand
from jobs.onchain_logic import (
    LargeSwapRule,
    OnchainBands,
    PoolEvent,
    PoolState,
    PoolWindow,
    advance_pool,
    canonical_pair,
    classify_event,
    large_swap_severity,
    liquidity_severity,
    price_impact_pct,
    swap_facts,
    trim,
    usd_symbol,
    venue_name,
    window_liquidity,
)

pytestmark = pytest.mark.unit
D = Decimal
BANDS = OnchainBands(
    large_transfer=[
        SeverityBand(above=50_000, severity="medium"),
        SeverityBand(above=1_000_000, severity="high"),
    ],
    dex_swap=[SeverityBand(above=100_000, severity="medium")],
)
RULE = LargeSwapRule(
    [SeverityBand(above=100_000, severity="medium"), SeverityBand(above=1_000_000, severity="high")], D("1.0")
)
LIQUIDITY = [SeverityBand(above=10, severity="medium"), SeverityBand(above=25, severity="high")]
USDC, WETH = "0xusdc", "0xweth"
WINDOW = 60_000


def test_large_transfer_boundaries() -> None:
    assert classify_event("transfer", D("50000"), BANDS) is None  # exactly 50K is not large
    assert classify_event("transfer", D("50000.000001"), BANDS) == ("large_transfer", "medium")
    assert classify_event("transfer", D("1000000"), BANDS) == ("large_transfer", "medium")
    assert classify_event("transfer", D("1000000.01"), BANDS) == ("large_transfer", "high")
    assert classify_event("transfer", None, BANDS) is None  # no price: not known to be large


def test_every_swap_is_a_dex_swap() -> None:
    assert classify_event("swap", None, BANDS) == ("dex_swap", "low")
    assert classify_event("swap", D("10"), BANDS) == ("dex_swap", "low")
    assert classify_event("swap", D("100000"), BANDS) == ("dex_swap", "low")
    assert classify_event("swap", D("100000.5"), BANDS) == ("dex_swap", "medium")
    assert classify_event("liquidity_add", D("5000000"), BANDS) is None


def test_names() -> None:
    assert usd_symbol("WETH") == "ETH-USD"
    assert usd_symbol("USDC") == "USDC-USD"
    assert usd_symbol("USDC.e") == "USDCE-USD"
    assert usd_symbol("$wif") == "WIF-USD"
    assert usd_symbol(None) == "UNKNOWN-USD"
    assert venue_name("uniswap-v2") == "uniswap_v2"
    assert venue_name("ethereum") == "ethereum"


def test_pair_is_canonical_whichever_way_the_trader_swapped() -> None:
    buy, sell = canonical_pair("USDC", "WETH"), canonical_pair("WETH", "USDC")
    assert buy.name == sell.name == "WETH/USDC"
    assert (buy.base_is_in, sell.base_is_in) == (False, True)
    assert canonical_pair("WBTC", "WETH").name == "WBTC/WETH"
    assert canonical_pair("PEPE", "BONK").name == "PEPE/BONK"  # unlisted: the first by name is the quote


def test_swap_facts_exact() -> None:
    # 200,000 USDC in, 66 WETH out: a buy of WETH at 3030.30… USDC
    facts = swap_facts("USDC", "WETH", D("200000"), D("66"), D("0.000333333"), D("0.000291875"))
    assert facts.side == "buy"
    assert (facts.base_amount, facts.quote_amount) == (D("66"), D("200000"))
    assert facts.execution_price == D("3030.303030303030303030")
    sell = swap_facts("WETH", "USDC", D("1.5"), D("4500.75"), None, None)
    assert (sell.side, sell.execution_price, sell.price_impact_pct) == ("sell", D("3000.5"), None)


def test_price_impact() -> None:
    assert price_impact_pct(D("2000"), D("2020")) == D("1")  # |2020/2000 - 1| x 100
    assert price_impact_pct(D("2000"), D("1980")) == D("1")  # a fall counts the same
    assert price_impact_pct(D("3"), D("2")) == D("33.333333333333333333")
    assert price_impact_pct(None, D("1")) is None
    assert price_impact_pct(D("0"), D("1")) is None


def test_large_dex_swap_boundaries() -> None:
    assert large_swap_severity(D("100000"), None, RULE) is None
    assert large_swap_severity(D("100000.01"), D("0.2"), RULE) == "medium"
    assert large_swap_severity(D("100000.01"), D("1"), RULE) == "medium"  # exactly 1 %: not high
    assert large_swap_severity(D("100000.01"), D("1.0001"), RULE) == "high"
    assert large_swap_severity(D("1000000.01"), None, RULE) == "high"
    assert large_swap_severity(None, D("50"), RULE) is None  # unpriced swaps are never "large"


def swap(
    at_s: float, i: int, usdc_in: str, weth_out: str, r_usdc: str, r_weth: str, usd: str | None
) -> PoolEvent:
    amounts = (D(usdc_in), D(weth_out), D(r_usdc), D(r_weth), None if usd is None else D(usd))
    return PoolEvent(int(at_s * 1000), 100 + i, i, f"e{i}", "swap", USDC, WETH, *amounts)


def liquidity(
    at_s: float, i: int, kind: str, usdc: str, weth: str, r_usdc: str, r_weth: str, usd: str
) -> PoolEvent:
    return PoolEvent(
        int(at_s * 1000),
        100 + i,
        i,
        f"e{i}",
        kind,
        USDC,
        WETH,
        D(usdc),
        D(weth),
        D(r_usdc),
        D(r_weth),
        D(usd),
    )


def one_window(*events: PoolEvent) -> PoolWindow:
    (window,) = advance_pool(PoolState(), events, None, window_ms=WINDOW).closed
    return window


def test_a_swap_barely_moves_the_pools_value() -> None:
    # pool 3,000,000 USDC / 1000 WETH; 3000 USDC in for 0.997 WETH out (reserves after: Sync)
    w = window_liquidity(one_window(swap(5, 1, "3000", "0.997", "3003000", "999.003", "3000")))
    assert (w.swaps, w.liquidity_events, w.volume_usd) == (1, 0, D("3000"))
    assert w.value_start_usd is not None
    assert w.value_end_usd is not None
    assert w.change_pct is not None
    assert abs(w.change_pct) < D("0.01")
    assert liquidity_severity(w.change_pct, LIQUIDITY) is None


@pytest.mark.parametrize(
    ("added_usdc", "added_weth", "severity"),
    [
        ("300000", "100", None),  # exactly +10 %: not flagged
        ("300003", "100.001", "medium"),  # just above 10 %
        ("750000", "250", "medium"),  # exactly +25 %: medium
        ("750003", "250.001", "high"),
    ],
)
def test_liquidity_change_boundaries(added_usdc: str, added_weth: str, severity: str | None) -> None:
    # A pool of 3,000,000 USDC / 1000 WETH (3000 USD/WETH) gets liquidity; both sides valued at 3000.
    r_usdc, r_weth = D("3000000") + D(added_usdc), D("1000") + D(added_weth)
    value = D(added_usdc) * 2  # both sides (100.001 WETH is 300,003 USD at 3000)
    add = liquidity(10, 1, "liquidity_add", added_usdc, added_weth, str(r_usdc), str(r_weth), str(value))
    w = window_liquidity(one_window(add))
    assert w.value_start_usd == D("6000000")
    assert liquidity_severity(w.change_pct, LIQUIDITY) == severity


def test_a_removal_is_a_fall() -> None:
    remove = liquidity(10, 1, "liquidity_remove", "900000", "300", "2100000", "700", "1800000")
    w = window_liquidity(one_window(remove))
    assert (w.value_start_usd, w.value_end_usd, w.change_pct) == (D("6000000"), D("4200000"), D("-30"))
    assert liquidity_severity(w.change_pct, LIQUIDITY) == "high"


def test_window_start_and_end_across_several_events() -> None:
    # two swaps and a removal in one window: start = before the first, end = after the last (chain order)
    events = [
        liquidity(40, 3, "liquidity_remove", "600000", "200", "2403000", "799.003", "1200000"),
        swap(5, 1, "3000", "0.997", "3003000", "999.003", "3000"),
    ]
    w = window_liquidity(one_window(*events))
    assert w.value_start_usd is not None
    assert w.value_end_usd is not None
    assert w.value_start_usd == D("6000000")  # 3,000,000 USDC + 1000 WETH at 3000
    assert w.change_pct is not None
    assert D("-20.1") < w.change_pct < D("-19.9")


def test_pools_without_reserves_or_prices_have_no_liquidity_figure() -> None:
    v3 = PoolEvent(5000, 1, 1, "e1", "swap", USDC, WETH, D("3000"), D("1"), None, None, D("3000"))
    assert window_liquidity(one_window(v3)).change_pct is None
    unpriced = swap(5, 1, "3000", "0.997", "3003000", "999.003", None)
    w = window_liquidity(one_window(unpriced))
    assert (w.change_pct, w.unpriced_swaps, w.volume_usd) == (None, 1, D("0"))


def test_windows_close_on_the_watermark_and_late_events_are_dropped() -> None:
    state = PoolState()
    early, later = swap(5, 1, "1", "1", "10", "10", "1"), swap(70, 2, "1", "1", "10", "10", "1")
    first = advance_pool(state, [early, later], watermark_ms=60_000, window_ms=WINDOW)
    # watermark 60 s: the event at 5 s is at/before it -> late; window [60, 120) stays open
    assert (first.late, [e.event_id for e in first.accepted], first.closed) == (1, ["e2"], [])
    second = advance_pool(
        state, [swap(90, 3, "1", "1", "10", "10", "1")], watermark_ms=125_000, window_ms=WINDOW
    )
    assert second.late == 1  # 90 s is before the new watermark
    assert [(w.window_start_ms, [e.event_id for e in w.events]) for w in second.closed] == [(60_000, ["e2"])]
    third = advance_pool(
        state, [swap(126, 4, "1", "1", "10", "10", "1")], watermark_ms=None, window_ms=WINDOW
    )
    assert third.late == 0
    assert [w.window_start_ms for w in third.closed] == [120_000]
    # a window already closed takes nothing more, even without a watermark (batch mode)
    assert advance_pool(state, [swap(61, 5, "1", "1", "10", "10", "1")], None, window_ms=WINDOW).late == 1


def test_state_round_trips_exactly() -> None:
    state = PoolState()
    advance_pool(state, [swap(5, 1, "3000.000001", "0.997", "3003000", "999.003", None)], 0, window_ms=WINDOW)
    back = PoolState.from_json(state.to_json())
    assert back == state
    assert back.open[0][0].amount_in == D("3000.000001")


def test_trim_keeps_plain_notation() -> None:
    assert str(trim(D("60000.000000000000000000"))) == "60000"
    assert str(trim(D("0.500000000000000000"))) == "0.5"
