"""MOD-011's pure back-testing: implied directions, pending/unpriced outcomes, Sharpe and drawdown on
hand-computed series, no look-ahead in hit_rates_as_of, and the degradation rule."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from coattail.contracts import Alert
from jobs.backtest_logic import (
    HORIZONS,
    LakeAlert,
    Outcome,
    PriceIndex,
    big_move,
    calibration,
    degradations,
    evaluate,
    evaluate_all,
    hit_rates_as_of,
    implied_direction,
    max_drawdown,
    sharpe,
    summarize,
    with_net_flow,
)

pytestmark = pytest.mark.unit
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
FEATURES = Path(__file__).resolve().parents[2] / "config" / "features.yaml"

# (alert_type, details) -> expected implied direction; every alert type of config/features.yaml appears
CASES: list[tuple[str, dict[str, Any], int | None]] = [
    ("volume_spike", {"z_score": 3.0, "net_flow": 1250.5}, 1),
    ("volume_spike", {"z_score": 3.0, "net_flow": -10}, -1),
    ("volume_spike", {"z_score": 3.0, "net_flow": 0}, None),
    ("volume_spike", {"z_score": 3.0}, None),  # no net flow given: cannot be back-tested
    ("whale_trade", {"side": "buy"}, 1),
    ("whale_trade", {"side": "sell"}, -1),
    ("spread_divergence", {"spread_pct": 0.8}, -1),  # a above b: a should fall back towards b
    ("spread_divergence", {"spread_pct": -0.6}, 1),
    ("high_alpha_wallet", {"side": "buy"}, 1),
    ("high_alpha_wallet", {"side": "sell"}, -1),
    ("score_change", {"old_percentile": 50, "new_percentile": 90}, None),
    ("known_whale_activity", {"direction": "from_exchange"}, 1),
    ("known_whale_activity", {"direction": "to_exchange"}, -1),
    ("known_whale_activity", {"direction": None}, None),
    ("accumulation_signal", {"flow_ratio": 0.9}, 1),
    ("distribution_signal", {"flow_ratio": 0.1}, -1),
    ("consensus_bullish", {"consensus_score": 80}, 1),
    ("consensus_bearish", {"consensus_score": 80}, -1),
    ("large_transfer", {"usd_value": "2000000"}, None),
    ("dex_swap", {"side": "sell"}, -1),
    ("dex_swap", {"token_in_symbol": "USDC", "token_out_symbol": "WETH"}, 1),
    ("dex_swap", {"token_in_symbol": "WETH", "token_out_symbol": "USDT"}, -1),
    ("dex_swap", {"token_in_symbol": "WETH", "token_out_symbol": "WBTC"}, None),
    ("large_dex_swap", {"side": "buy"}, 1),
    ("large_dex_swap", {"side": "sell"}, -1),
    ("liquidity_change", {"change_pct": 30}, None),
    ("high_probability_move", {"p_1h": 0.8}, 0),
    ("score_update", {"p_1h": 0.4}, None),
    ("backtest_complete", {}, None),
    ("signal_degradation", {}, None),
    ("no_such_type", {"side": "buy"}, None),
]


@pytest.mark.parametrize(("alert_type", "details", "expected"), CASES)
def test_implied_direction(alert_type: str, details: dict[str, Any], expected: int | None) -> None:
    assert implied_direction(alert_type, details) == expected


def test_every_configured_alert_type_has_a_decided_direction() -> None:
    configured = {
        t
        for module in yaml.safe_load(FEATURES.read_text())["modules"].values()
        for t in module["alert_types"]
    }
    decided = {case[0] for case in CASES}
    assert configured <= decided, f"alert types without a back-test decision: {sorted(configured - decided)}"


def test_with_net_flow_feeds_the_volume_spike_direction() -> None:
    details = with_net_flow({"z_score": 4.0}, -3.5)
    assert details == {"z_score": 4.0, "net_flow": -3.5}
    assert implied_direction("volume_spike", details) == -1


def _alert(
    alert_type: str = "whale_trade",
    details: dict[str, Any] | None = None,
    *,
    at: datetime = T0,
    symbol: str = "BTC-USDT",
    exchange: str | None = "binance",
    module_id: str = "MOD-002",
    alert_id: str = "a1",
) -> LakeAlert:
    return LakeAlert(alert_id, module_id, alert_type, symbol, exchange, at, details or {"side": "buy"})


def _prices(
    *points: tuple[str, str | None, timedelta, float], max_age: timedelta = timedelta(minutes=15)
) -> PriceIndex:
    return PriceIndex([(s, e, T0 + dt, p) for s, e, dt, p in points], max_age)


def test_price_index_lookup_order_and_max_age() -> None:
    prices = _prices(
        ("BTC-USDT", "binance", timedelta(0), 100.0),
        ("BTC-USDT", "binance", timedelta(minutes=5), 101.0),
        ("BTC-USD", "coinbase", timedelta(minutes=6), 102.0),
        ("ETH-USDT", "okx", timedelta(minutes=1), 2000.0),
    )
    assert prices.price_at("BTC-USDT", "binance", T0 - timedelta(seconds=1)) is None  # nothing before
    assert prices.price_at("BTC-USDT", "binance", T0) == 100.0  # at or before t
    assert prices.price_at("BTC-USDT", "binance", T0 + timedelta(minutes=7)) == 101.0  # exact pair first
    assert prices.price_at("BTC-USDT", "kraken", T0 + timedelta(minutes=7)) == 101.0  # same symbol elsewhere
    assert prices.price_at("BTC-USDT", None, T0 + timedelta(minutes=7)) == 101.0
    # on-chain names: BASE-USD on a chain -> exact BTC-USD first, ETH-USD via any dollar quote
    assert prices.price_at("BTC-USD", "ethereum", T0 + timedelta(minutes=7)) == 102.0
    assert prices.price_at("ETH-USD", "uniswap_v2", T0 + timedelta(minutes=2)) == 2000.0
    assert prices.price_at("ETH-BTC", None, T0 + timedelta(minutes=2)) is None  # no dollar fallback
    # no older than max_age (15 min)
    assert prices.price_at("BTC-USDT", "binance", T0 + timedelta(minutes=20)) == 101.0
    # stale on binance (and on every BTC-USDT venue): the newer BTC-USD (a dollar quote) answers
    assert prices.price_at("BTC-USDT", "binance", T0 + timedelta(minutes=20, seconds=1)) == 102.0
    assert prices.price_at("BTC-USDT", "binance", T0 + timedelta(minutes=21, seconds=1)) is None
    # a return takes entry and exit from one source: binance has both here, coinbase only the exit
    assert prices.prices_at("BTC-USDT", "binance", T0, T0 + timedelta(minutes=6)) == (100.0, 101.0)
    assert prices.prices_at("BTC-USD", "coinbase", T0, T0 + timedelta(minutes=6)) == (
        100.0,
        101.0,
    )  # not 100 -> 102
    assert prices.last_time == T0 + timedelta(minutes=6)
    assert PriceIndex([]).last_time is None


def test_evaluate_directional_hit_and_miss() -> None:
    prices = _prices(("BTC-USDT", "binance", timedelta(0), 100.0), ("BTC-USDT", "binance", H, 103.0))
    as_of = T0 + timedelta(hours=2)
    buy = evaluate(_alert(details={"side": "buy"}), "1h", prices, as_of)
    sell = evaluate(_alert(details={"side": "sell"}), "1h", prices, as_of)
    assert buy is not None
    assert buy.status == "resolved"
    assert buy.hit is True
    assert buy.signed_return == pytest.approx(0.03)
    assert sell is not None
    assert sell.hit is False
    assert sell.signed_return == pytest.approx(-0.03)


def test_horizon_not_elapsed_is_pending_never_a_miss() -> None:
    prices = _prices(("BTC-USDT", "binance", timedelta(0), 100.0), ("BTC-USDT", "binance", H, 90.0))
    as_of = T0 + H - timedelta(seconds=1)
    out = evaluate(_alert(details={"side": "buy"}), "1h", prices, as_of)
    assert out is not None
    assert out.status == "pending"
    assert out.hit is None
    assert out.signed_return is None
    # exactly at the horizon it resolves (and here misses)
    done = evaluate(_alert(details={"side": "buy"}), "1h", prices, T0 + H)
    assert done is not None
    assert done.status == "resolved"
    assert done.hit is False
    rows = summarize([out])
    assert rows[0]["n"] == 0
    assert rows[0]["pending"] == 1
    assert rows[0]["hit_rate"] is None


def test_unpriced_and_not_backtested() -> None:
    prices = _prices(("BTC-USDT", "binance", timedelta(0), 100.0))  # no price near the 1 h exit
    out = evaluate(_alert(), "1h", prices, T0 + timedelta(hours=3))
    assert out is not None
    assert out.status == "unpriced"
    assert evaluate(_alert("large_transfer", {"usd_value": 1}), "1h", prices, T0 + timedelta(hours=3)) is None
    eth = evaluate(_alert(symbol="ETH-USDT"), "1h", prices, T0 + timedelta(hours=3))
    assert eth is not None
    assert eth.status == "unpriced"


def test_unsigned_move_call_hits_on_a_big_move_either_way() -> None:
    prices = _prices(
        ("SOL-USDT", "binance", timedelta(0), 100.0),
        ("SOL-USDT", "binance", H, 97.5),  # -2.5 %: a big move
        ("SOL-USDT", "binance", 4 * H, 101.0),  # +1 %: not one
    )
    alert = _alert(
        "high_probability_move", {"p_1h": 0.8}, symbol="SOL-USDT", exchange=None, module_id="MOD-010"
    )
    as_of = T0 + timedelta(hours=5)
    one, four = evaluate(alert, "1h", prices, as_of), evaluate(alert, "4h", prices, as_of)
    assert one is not None
    assert one.hit is True
    assert one.signed_return == pytest.approx(0.025)
    assert four is not None
    assert four.hit is False
    assert four.signed_return == pytest.approx(0.01)
    assert evaluate(alert, "4h", prices, as_of, move_pct=0.5).hit is True  # type: ignore[union-attr]


def test_spread_divergence_is_a_call_on_convergence_of_a_against_b() -> None:
    prices = _prices(
        ("BTC-USDT", "binance", timedelta(0), 101.0),
        ("BTC-USD", "coinbase", timedelta(0), 100.0),
        ("BTC-USDT", "binance", H, 102.0),  # a rose 0.990 %...
        ("BTC-USD", "coinbase", H, 102.0),  # ... b rose 2 %: a fell relative to b, the spread converged
    )
    alert = _alert(
        "spread_divergence",
        {"spread_pct": 1.0, "instrument_a": "binance:BTC-USDT", "instrument_b": "coinbase:BTC-USD"},
        exchange=None,
        module_id="MOD-003",
    )
    out = evaluate(alert, "1h", prices, T0 + 2 * H)
    assert out is not None
    assert out.hit is True
    assert out.signed_return == pytest.approx(-((102 / 101) / (102 / 100) - 1))


def test_evaluate_takes_the_alert_contract() -> None:
    alert = Alert.create(
        module_id="MOD-006", alert_type="distribution_signal", symbol="ETH-USDT", exchange=None,
        severity="medium", detected_at=T0, message="m", details={"flow_ratio": 0.1},
        evidence=("ETH-USDT", T0),
    )  # fmt: skip
    prices = _prices(("ETH-USDT", "okx", timedelta(0), 2000.0), ("ETH-USDT", "okx", H, 1980.0))
    out = evaluate(alert, "1h", prices, T0 + 2 * H)
    assert out is not None
    assert out.hit is True
    assert out.signed_return == pytest.approx(0.01)
    assert len(evaluate_all([alert], prices, T0 + 2 * H)) == len(HORIZONS)


def test_sharpe_and_max_drawdown_on_a_crafted_series() -> None:
    returns = [0.10, -0.05, 0.02, -0.10, 0.04]
    # mean = 0.002; deviations 0.098, -0.052, 0.018, -0.102, 0.038; squares sum = 0.02448
    # sample var = 0.02448 / 4 = 0.00612; std = 0.0782304...; sharpe = 0.002 / std
    assert sharpe(returns) == pytest.approx(0.002 / math.sqrt(0.00612))
    # equity: 1.1, 1.045, 1.0659, 0.95931, 0.9976824; peak 1.1 -> trough 0.95931: dd = 0.12790
    assert max_drawdown(returns) == pytest.approx((1.1 - 0.95931) / 1.1)
    assert sharpe([0.01]) is None
    assert sharpe([0.01, 0.01]) is None
    assert max_drawdown([0.01, 0.02]) == 0.0
    assert max_drawdown([-0.5]) == pytest.approx(0.5)  # the start (1.0) is a peak


def test_summarize_orders_returns_by_detected_at() -> None:
    # the same returns as above, handed over shuffled: drawdown follows detection time, not input order
    returns = [0.10, -0.05, 0.02, -0.10, 0.04]
    outcomes = [
        Outcome(f"a{i}", "MOD-002", "BTC-USDT", "1h", T0 + i * H, "resolved", r, r > 0)
        for i, r in enumerate(returns)
    ]
    extra = [
        Outcome("p", "MOD-002", "BTC-USDT", "1h", T0, "pending"),
        Outcome("u", "MOD-002", "BTC-USDT", "1h", T0, "unpriced"),
        Outcome("o", "MOD-002", "ETH-USDT", "4h", T0, "resolved", 0.01, True),
    ]
    rows = summarize(list(reversed(outcomes)) + extra)
    btc, eth = rows
    assert (btc["module_id"], btc["symbol"], btc["horizon"]) == ("MOD-002", "BTC-USDT", "1h")
    assert btc["n"] == 5
    assert btc["hits"] == 3
    assert btc["hit_rate"] == pytest.approx(0.6)
    assert btc["mean_return"] == pytest.approx(0.002)
    assert btc["sharpe"] == pytest.approx(0.002 / math.sqrt(0.00612))
    assert btc["max_drawdown"] == pytest.approx((1.1 - 0.95931) / 1.1)
    assert btc["pending"] == 1
    assert btc["unpriced"] == 1
    assert eth["n"] == 1
    assert eth["sharpe"] is None
    assert eth["max_drawdown"] == 0.0


def test_hit_rates_as_of_excludes_outcomes_not_known_yet() -> None:
    outcomes = [
        Outcome("a", "MOD-002", "BTC-USDT", "1h", T0, "resolved", 0.01, True),
        Outcome("b", "MOD-002", "BTC-USDT", "1h", T0 + timedelta(minutes=30), "resolved", -0.01, False),
        Outcome("c", "MOD-002", "BTC-USDT", "4h", T0, "resolved", 0.01, True),  # other horizon
        Outcome("d", "MOD-007", "BTC-USDT", "1h", T0, "pending"),
    ]
    assert hit_rates_as_of(outcomes, T0 + H - timedelta(seconds=1)) == {}  # nothing resolved yet at t
    assert hit_rates_as_of(outcomes, T0 + H) == {("MOD-002", "BTC-USDT"): (1, 1)}
    later = T0 + H + timedelta(minutes=30)
    assert hit_rates_as_of(outcomes, later) == {("MOD-002", "BTC-USDT"): (1, 2)}
    assert hit_rates_as_of(outcomes, T0 + 4 * H, "4h") == {("MOD-002", "BTC-USDT"): (1, 1)}


DAY = date(2026, 3, 10)


def _row(
    day: date, hits: int, n: int, *, module: str = "MOD-002", symbol: str = "BTC-USDT", horizon: str = "1h"
) -> dict[str, Any]:
    return {"backtest_date": day, "module_id": module, "symbol": symbol, "horizon": horizon, "n": n,
            "hits": hits, "hit_rate": hits / n if n else None}  # fmt: skip


def test_degradation_fires_at_15_points_with_enough_n() -> None:
    trailing = [_row(DAY - timedelta(days=d), 14, 20) for d in range(1, 8)]  # 70 %
    # today across two symbols, weighted by n: (6 + 5) / (10 + 10) = 55 % = 70 - 15: fires (<=)
    today = [_row(DAY, 6, 10), _row(DAY, 5, 10, symbol="ETH-USDT")]
    found = degradations(trailing + today, DAY)
    assert [d.module_id for d in found] == ["MOD-002"]
    d = found[0]
    assert (d.today_hits, d.today_n, d.trailing_hits, d.trailing_n) == (11, 20, 98, 140)
    assert d.drop_points == pytest.approx(15.0)
    assert len(d.trailing_dates) == 7
    # 56 %: only 14 points below: no
    assert degradations([*trailing, _row(DAY, 14, 25)], DAY) == []


def test_degradation_needs_n_on_both_sides_and_ignores_other_rows() -> None:
    trailing = [_row(DAY - timedelta(days=1), 18, 20)]  # 90 %
    assert degradations([*trailing, _row(DAY, 2, 19)], DAY) == []  # today n 19 < 20
    assert degradations([_row(DAY - timedelta(days=1), 9, 10), _row(DAY, 2, 20)], DAY) == []  # trailing 10
    assert len(degradations([*trailing, _row(DAY, 2, 20)], DAY)) == 1
    # outside the 7 trailing days, later dates, other horizons and other modules do not count
    noise = [
        _row(DAY - timedelta(days=8), 0, 1000),
        _row(DAY + timedelta(days=1), 0, 1000),
        _row(DAY - timedelta(days=1), 0, 1000, horizon="4h"),
        _row(DAY - timedelta(days=1), 0, 1000, module="MOD-007"),
    ]
    found = degradations([*trailing, _row(DAY, 2, 20), *noise], DAY)
    assert [(d.module_id, d.trailing_n) for d in found] == [("MOD-002", 20)]
    # the rule reads hit_rate × n when a row has no hits column, and takes other horizons when asked
    legacy = [{k: v for k, v in r.items() if k != "hits"} for r in [*trailing, _row(DAY, 2, 20)]]
    assert len(degradations(legacy, DAY)) == 1
    four = [_row(DAY - timedelta(days=1), 18, 20, horizon="4h"), _row(DAY, 2, 20, horizon="4h")]
    assert len(degradations(four, DAY, horizon="4h")) == 1
    assert degradations(four, DAY) == []


def test_big_move_and_calibration_bins() -> None:
    prices = _prices(("BTC-USDT", "binance", timedelta(0), 100.0), ("BTC-USDT", "binance", H, 103.0))
    assert big_move(prices, "BTC-USDT", T0, "1h", T0 + H) is True
    assert big_move(prices, "BTC-USDT", T0, "1h", T0 + H, move_pct=5) is False
    assert big_move(prices, "BTC-USDT", T0, "1h", T0 + H - timedelta(seconds=1)) is None  # not known yet
    assert big_move(prices, "ETH-USDT", T0, "1h", T0 + H) is None  # unpriced
    bins = calibration([(0.05, False), (0.08, True), (0.72, True), (0.78, True), (0.75, False), (1.0, True)])
    assert [(b["bin_low"], b["n"]) for b in bins] == [(0.0, 2), (0.7, 3), (0.9, 1)]
    assert bins[0]["mean_p"] == pytest.approx(0.065)
    assert bins[1]["frequency"] == pytest.approx(2 / 3)
    assert calibration([]) == []


def test_html_report_embeds_its_plots() -> None:
    from jobs.batch.backtest_report import render_html, table_cells
    from jobs.detectors.backtester import BacktestRun

    outcomes = [
        Outcome(f"a{i}", "MOD-007", "BTC-USDT", h, T0 + i * H, "resolved", 0.01 * (-1) ** i, i % 2 == 0)
        for i in range(6)
        for h in ("1h", "4h")
    ]
    rows = [{"backtest_date": T0.date(), **r} for r in summarize(outcomes)]
    run = BacktestRun("run-1", T0, T0 + 24 * H, T0 + 30 * H, 42, 6, rows, outcomes)
    bins = calibration([(0.1, False), (0.8, True), (0.85, True)])
    page = render_html(run, bins)
    assert page.count("data:image/png;base64,") == 3
    assert "<td>MOD-007</td>" in page
    assert table_cells(rows)[0] == ("MOD-007", "BTC-USDT", "1h", "6", "50.0%", "0.000%", "0.00", "1.0%", "0")
    assert render_html(run).count("data:image/png;base64,") == 2
