"""MOD-010's pure parts: the feature vector, the logistic model against hand-computed numbers, the alert
rules at their boundaries (0.7 and a change of 0.15), evaluation windows closing at 15 min boundaries
(stream state = batch), the coefficients file's validation, and finish() with its context (no Spark)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from coattail.contracts import Alert, alert_id
from coattail.settings import ConfigError, load_settings
from jobs.backtest_logic import PriceIndex
from jobs.detectors.predictive import PredictiveScorerDetector
from jobs.logic import WhaleFlowTrade
from jobs.predict_logic import (
    FEATURES,
    HORIZONS,
    HorizonModel,
    PredictorState,
    PriceTrade,
    advance_evaluation,
    coefficients_json,
    decide,
    feature_vector,
    load_coefficients,
    parse_coefficients,
    sigmoid,
)
from jobs.predictor_context import PredictorContext

pytestmark = pytest.mark.unit
MIN = 60_000
T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z
VOLUME = {"window_ms": MIN, "baseline_windows": 60, "min_history": 10, "threshold": 2.5}
SHIPPED = Path(__file__).resolve().parents[2] / "config" / "predictor" / "coefficients.json"


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


# -- features and model -----------------------------------------------------------------------------


def test_feature_vector_scales_caps_and_defaults() -> None:
    x = feature_vector(
        consensus_score=80, alpha_percentile=97.5, max_abs_z=-14.0, whale_buy=300.0, whale_sell=100.0,
        hit_rate=0.62,
    )  # fmt: skip
    assert list(x) == list(FEATURES)
    assert x == pytest.approx(
        {"consensus": 0.8, "wallet_alpha": 0.975, "volume_z": 10.0, "flow": 0.5, "hit_rate": 0.62}
    )  # flow = |2 * 0.75 - 1|; |z| capped at 10
    quiet = feature_vector(
        consensus_score=None, alpha_percentile=None, max_abs_z=None, whale_buy=0, whale_sell=0, hit_rate=None
    )
    assert quiet == {"consensus": 0.0, "wallet_alpha": 0.0, "volume_z": 0.0, "flow": 0.0, "hit_rate": 0.5}


def test_sigmoid_and_probabilities_match_hand_computed_numbers() -> None:
    assert sigmoid(0) == 0.5
    assert sigmoid(2) == pytest.approx(0.8807970779778823)
    assert sigmoid(-800) == pytest.approx(0.0)
    assert sigmoid(800) == 1.0
    model = HorizonModel(-1.0, (1.0, 2.0, 0.5, -1.0, 0.0))
    x = {"consensus": 0.5, "wallet_alpha": 0.25, "volume_z": 2.0, "flow": 0.5, "hit_rate": 0.9}
    # -1 + 0.5 + 0.5 + 1.0 - 0.5 + 0 = 0.5
    assert model.probability(x) == pytest.approx(1 / (1 + math.exp(-0.5)))
    shipped = load_coefficients(SHIPPED)
    assert shipped.version.startswith("default-")
    quiet = {"consensus": 0.0, "wallet_alpha": 0.0, "volume_z": 0.0, "flow": 0.0, "hit_rate": 0.5}
    p = shipped.probabilities(quiet)
    assert p["1h"] == pytest.approx(sigmoid(-3.5 + 0.5))  # the shipped 1 h intercept and hit-rate weight
    assert p["1h"] < p["2h"] < p["4h"] < 0.2  # quiet market: a 2 % move is unlikely, less so in 1 h
    strong = {"consensus": 0.9, "wallet_alpha": 0.99, "volume_z": 6.0, "flow": 0.8, "hit_rate": 0.7}
    assert min(shipped.probabilities(strong).values()) > 0.7


def test_alert_rules_at_their_boundaries() -> None:
    low = {"1h": 0.2, "2h": 0.3, "4h": 0.5}
    assert decide(low, None).high is False
    assert decide({"1h": 0.5, "2h": 0.6, "4h": 0.7}, None).high is True  # 0.7 is enough
    assert decide({"1h": 0.5, "2h": 0.6, "4h": 0.6999}, None).high is False
    top = decide({"1h": 0.71, "2h": 0.75, "4h": 0.74}, None)
    assert (top.top_horizon, top.max_p) == ("2h", 0.75)
    assert decide(low, None).changed == ()  # nothing to compare with: no score_update
    moved = decide({"1h": 0.35, "2h": 0.3, "4h": 0.65}, low)  # 0.35 - 0.2 is 0.1499999... in floats
    assert moved.changed == ("1h", "4h")
    assert decide({"1h": 0.34, "2h": 0.44, "4h": 0.36}, low).changed == ()  # 0.14 each way: not enough
    assert decide({"1h": 0.05, "2h": 0.3, "4h": 0.5}, low).changed == ("1h",)  # a drop of 0.15 counts too


# -- evaluation windows -----------------------------------------------------------------------------


def _trades(minutes: int) -> list[PriceTrade]:
    """A trade every 20 s on one exchange with steady volume, then a burst in minute 12."""
    out = []
    for i in range(minutes * 3):
        ts = T0 + 10_000 + i * 20_000
        qv = 1000.0 + ((ts - T0) // MIN % 3) * 100 + (20_000.0 if ts // MIN == T0 // MIN + 12 else 0)
        out.append(PriceTrade(ts, "binance", qv, f"{100 + i * 0.01:.2f}", f"t{i:04d}"))
    return out


def _whales() -> list[WhaleFlowTrade]:
    def w(ms: int, side: str, n: int) -> WhaleFlowTrade:
        return WhaleFlowTrade(T0 + ms, "binance", side, Decimal(200_000), f"w{n}")

    # window 1 (0-5 min): 3 buys; window 3 (10-15 min): 2 buys 1 sell; window 4 (15-20): 1 sell
    first = [w(30_000, "buy", 1), w(60_000, "buy", 2), w(90_000, "buy", 3)]
    return [
        *first,
        w(11 * MIN, "buy", 4),
        w(12 * MIN, "buy", 5),
        w(13 * MIN, "sell", 6),
        w(16 * MIN, "sell", 7),
    ]


def test_evaluation_windows_close_at_15_minute_boundaries() -> None:
    state = PredictorState()
    trades, whales = _trades(20), _whales()
    kw = dict(flow_ms=5 * MIN, eval_ms=15 * MIN, volume=VOLUME)
    assert advance_evaluation(state, trades, whales, T0, **kw) == []  # type: ignore[arg-type]
    # The watermark one ms before the first window's end: nothing closes; at its end, it closes.
    assert advance_evaluation(state, [], [], T0 + 15 * MIN - 1, **kw) == []  # type: ignore[arg-type]
    closed = advance_evaluation(state, [], [], T0 + 15 * MIN, **kw)  # type: ignore[arg-type]
    assert [(w.start_ms, w.end_ms) for w in closed] == [(T0, T0 + 15 * MIN)]
    slot = closed[0].slot
    assert slot.trades == 45
    assert slot.close == (T0 + 10_000 + 44 * 20_000, "t0044", "100.44")  # the last trade of the window
    assert slot.whale_buy == Decimal(1_000_000)
    assert slot.whale_sell == Decimal(200_000)
    assert slot.whale_trades == 6
    assert slot.max_abs_z is not None
    assert slot.max_abs_z > 2.5
    assert slot.consensus is not None
    start, buy, sell, n, z = slot.consensus  # the latest flow window: 10-15 min
    assert (start, buy, sell, n) == (T0 + 10 * MIN, Decimal(400_000), Decimal(200_000), 3)
    assert z == slot.max_abs_z  # the spike sits in that flow window
    # A late trade for the closed window is dropped; the rest closes in batch mode (watermark None).
    late = PriceTrade(T0 + 14 * MIN, "binance", 5.0, "1", "late")
    rest = advance_evaluation(state, [late], [], None, **kw)  # type: ignore[arg-type]
    assert [(w.start_ms, w.slot.trades) for w in rest] == [(T0 + 15 * MIN, 15)]
    assert rest[0].slot.whale_sell == Decimal(200_000)
    assert rest[0].slot.consensus is not None


def test_stream_state_round_trip_gives_the_batch_windows() -> None:
    trades, whales = _trades(30), _whales()
    kw = dict(flow_ms=5 * MIN, eval_ms=15 * MIN, volume=VOLUME)
    batch = advance_evaluation(PredictorState(), trades, whales, None, **kw)  # type: ignore[arg-type]
    state, streamed, seen = PredictorState(), [], T0
    for i in range(0, len(trades), 7):  # micro-batches, state through JSON each time
        chunk = trades[i : i + 7]
        ws = [w for w in whales if seen < w.ts_ms <= chunk[-1].ts_ms]
        watermark = seen - 30_000  # Spark's: from the batches before, 30 s behind
        seen = chunk[-1].ts_ms
        state = PredictorState.from_json(json.loads(json.dumps(state.to_json())))
        streamed += advance_evaluation(state, chunk, ws, watermark, **kw)  # type: ignore[arg-type]
    streamed += advance_evaluation(state, [], [], None, **kw)  # type: ignore[arg-type]
    assert [(w.start_ms, w.slot) for w in streamed] == [(w.start_ms, w.slot) for w in batch]
    assert [w.start_ms for w in batch] == [T0, T0 + 15 * MIN]


# -- coefficients file ------------------------------------------------------------------------------


def _doc(**changes: Any) -> dict[str, Any]:
    doc = coefficients_json("t1", {h: HorizonModel(-2.0, (1.0,) * len(FEATURES)) for h in HORIZONS})
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": list(reversed(FEATURES))}, "'features' is"),
        ({"features": [*FEATURES, "sentiment"]}, "refit with `coattail batch fit-predictor`"),
        ({"version": ""}, "'version' must be a non-empty string"),
        ({"horizons": {"1h": {"intercept": 0, "weights": {}}}}, "'horizons' must hold exactly 1h, 2h, 4h"),
    ],
)
def test_bad_coefficient_files_are_one_line_config_errors(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_doc(**change)))
    with pytest.raises(ConfigError) as err:
        load_coefficients(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_weights_and_files_are_checked() -> None:
    doc = _doc()
    del doc["horizons"]["2h"]["weights"]["flow"]
    with pytest.raises(ValueError, match="horizon 2h: 'weights' must name exactly"):
        parse_coefficients(doc)
    doc = _doc()
    doc["horizons"]["4h"]["intercept"] = "high"
    with pytest.raises(ValueError, match="horizon 4h intercept must be a finite number"):
        parse_coefficients(doc)
    assert parse_coefficients(_doc(fitted_at="x")).meta == {"fitted_at": "x"}


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_coefficients(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="is not readable JSON"):
        load_coefficients(tmp_path / "bad.json")


def test_a_bad_coefficients_file_fails_configure(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_doc(features=["consensus"])))
    settings = load_settings("large", overrides={"modules.MOD-010.params.coefficients_file": str(path)})
    with pytest.raises(ConfigError, match="MOD-010 coefficients file"):
        PredictiveScorerDetector().configure(settings)
    bad_window = load_settings("large", overrides={"modules.MOD-010.params.window_seconds": 700})
    with pytest.raises(ConfigError, match="must be a multiple of MOD-006 window_seconds"):
        PredictiveScorerDetector().configure(bad_window)


# -- finish(): records, alerts, the context ---------------------------------------------------------


def _row(
    start_ms: int, *, buy: str = "0", sell: str = "0", z: float | None = None, cw: bool = False
) -> dict[str, Any]:
    return {
        "symbol": "ETH-USDT", "window_start_us": start_ms * 1000,
        "window_end_us": (start_ms + 15 * MIN) * 1000,
        "trades": 40, "close_price": "3000.5", "max_abs_z": z, "whale_buy": buy, "whale_sell": sell,
        "whale_trades": 4 if cw else 0, "cw_start_us": (start_ms + 10 * MIN) * 1000 if cw else None,
        "cw_buy": buy if cw else None, "cw_sell": sell if cw else None, "cw_trades": 4 if cw else None,
        "cw_max_z": z if cw else None,
    }  # fmt: skip


def _wallet_alert(ms: int, pct: float) -> Alert:
    return Alert.create(
        module_id="MOD-004", alert_type="high_alpha_wallet", symbol="ETH-USD", exchange="ethereum",
        severity="high", detected_at=at(ms), message="smart wallet bought WETH",
        details={"alpha_percentile": pct, "token_symbol": "WETH", "side": "buy"}, evidence=("w", ms),
    )  # fmt: skip


def test_finish_scores_windows_and_raises_both_alerts() -> None:
    detector = PredictiveScorerDetector()
    detector.configure(load_settings("large"))
    wallet = _wallet_alert(T0 + 20 * MIN, 99.0)  # WETH on chain is ETH: counts for ETH-USDT
    whale = Alert.create(
        module_id="MOD-002", alert_type="whale_trade", symbol="ETH-USDT", exchange="binance", severity="high",
        detected_at=at(T0 + 16 * MIN), message="w", details={"side": "buy"}, evidence=("x",),
    )  # fmt: skip
    detector.context = PredictorContext.from_results(
        [wallet, whale], PriceIndex([]), lookback=timedelta(minutes=60), aliases=detector.aliases
    )
    quiet = _row(T0)
    loud = _row(T0 + 15 * MIN, buy="2000000", sell="100000", z=7.0, cw=True)
    result = detector.finish([loud, quiet])  # any order: scored in time order
    first, second = result.records
    assert (first["scored_at"], second["scored_at"]) == (at(T0 + 15 * MIN), at(T0 + 30 * MIN))
    f1, f2 = json.loads(first["features"]), json.loads(second["features"])
    assert f1 == {"consensus": 0.0, "wallet_alpha": 0.0, "volume_z": 0.0, "flow": 0.0, "hit_rate": 0.5}
    assert f2["wallet_alpha"] == 0.99
    assert f2["volume_z"] == 7.0
    assert f2["flow"] == pytest.approx(round(abs(2 * 2_000_000 / 2_100_000 - 1), 6))
    assert f2["hit_rate"] == 0.5  # the whale alert's hour has not passed (and is unpriced): unknown
    assert f2["consensus"] == pytest.approx(second["consensus_score"] / 100, abs=1e-6)
    assert second["consensus_direction"] == "bullish"
    assert second["price"] == Decimal("3000.5")
    assert first["flagged"] is False
    assert second["flagged"] is True
    assert {a.alert_type for a in result.alerts} == {"high_probability_move", "score_update"}
    high = next(a for a in result.alerts if a.alert_type == "high_probability_move")
    update = next(a for a in result.alerts if a.alert_type == "score_update")
    assert high.alert_id == alert_id("MOD-010", "ETH-USDT", at(T0 + 15 * MIN))
    assert update.alert_id != high.alert_id
    assert update.severity == "low"
    assert high.severity == "high"
    assert update.details["previous"] == {h: first[f"p_{h}"] for h in HORIZONS}
    assert high.details["coefficients_version"] == detector.coefficients.version
    assert high.detected_at == at(T0 + 30 * MIN)
    # The next batch compares with the last score of this one; the same window again is not "previous".
    again = detector.finish([loud])
    assert [a.alert_type for a in again.alerts] == ["high_probability_move", "score_update"]


def _whale(ms: int, side: str, n: int) -> Alert:
    return Alert.create(
        module_id="MOD-002", alert_type="whale_trade", symbol="BTC-USDT", exchange="binance", severity="high",
        detected_at=at(ms), message="w", details={"side": side}, evidence=("whale", n),
    )  # fmt: skip


def test_the_hit_rate_feature_only_knows_outcomes_whose_hour_has_passed() -> None:
    # The price rises 1 % an hour: buys hit, sells miss.
    prices = PriceIndex(
        [("BTC-USDT", "binance", at(T0 + i * MIN), 100 * (1 + 0.01 * i / 60)) for i in range(0, 300)],
        max_age=timedelta(minutes=15),
    )
    alerts = [_whale(T0, "buy", 1), _whale(T0 + 5 * MIN, "buy", 2), _whale(T0 + 10 * MIN, "sell", 3)]
    alerts += [_whale(T0 + 35 * MIN, "buy", 4), _whale(T0 + 125 * MIN, "buy", 5)]
    ctx = PredictorContext.from_results(alerts, prices, lookback=timedelta(minutes=60), aliases={})
    # [30, 45 min): MOD-002 spoke, but none of its outcomes is known at 45 min: unknown.
    assert ctx.hit_rate("BTC-USDT", at(T0 + 30 * MIN), at(T0 + 45 * MIN)) is None
    # [120, 135 min): the three first alerts resolved (2 hits of 3) and the fourth (a hit) too by then.
    assert ctx.hit_rate("BTC-USDT", at(T0 + 120 * MIN), at(T0 + 135 * MIN)) == pytest.approx(3 / 4)
    assert ctx.hit_rate("BTC-USD", at(T0 + 120 * MIN), at(T0 + 135 * MIN)) == pytest.approx(
        3 / 4
    )  # same BASE
    assert ctx.hit_rate("BTC-USDT", at(T0 + 60 * MIN), at(T0 + 75 * MIN)) is None  # nobody spoke then
    assert ctx.hit_rate("ETH-USDT", at(T0 + 120 * MIN), at(T0 + 135 * MIN)) is None
    wallets = PredictorContext(lookback=timedelta(minutes=60), aliases={"WETH": "ETH"})
    wallets.set_alerts([_wallet_alert(T0, 96.0), _wallet_alert(T0 + 30 * MIN, 99.5)])
    assert wallets.wallet_alpha("ETH-USDT", at(T0 + 15 * MIN)) == 96.0
    assert wallets.wallet_alpha("ETH-USDT", at(T0 + 45 * MIN)) == 99.5
    assert wallets.wallet_alpha("ETH-USDT", at(T0 + 91 * MIN)) is None  # older than the hour
    assert (
        wallets.wallet_alpha("ETH-USDT", at(T0 + 30 * MIN)) == 96.0
    )  # an alert at the end is the next window's


def test_publish_puts_the_scores_in_the_analytics_store() -> None:
    from types import SimpleNamespace

    from coattail.hotstore.analytics import MemoryAnalyticsStore

    detector = PredictiveScorerDetector()
    detector.configure(load_settings("large"))
    records = detector.finish([_row(T0), _row(T0 + 15 * MIN)]).records
    hot = SimpleNamespace(analytics=MemoryAnalyticsStore(prediction_retention=timedelta(days=100_000)))
    detector.publish(hot, records)
    stored = hot.analytics.predictions("ETH-USDT")
    assert [s["p_1h"] for s in stored] == [records[1]["p_1h"], records[0]["p_1h"]]  # newest first
