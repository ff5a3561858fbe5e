"""MOD-010 predictive scoring as pure functions over plain data (DESIGN.md "Detector semantics").

An evaluation window (15 min per symbol) is scored by a logistic regression per horizon (1 h, 2 h, 4 h):
p = sigmoid(intercept + w · x) = the chance that the price moves more than 2 % either way within the
horizon. The coefficients come from a JSON file (``config/predictor/coefficients.json``, refitted by
``coattail batch fit-predictor``); the feature vector has a fixed order, :data:`FEATURES`, and a file
naming other features is refused, so a model can never be applied to inputs it was not fitted on.

The windows themselves are advanced here too (:func:`advance_evaluation`): MOD-001's per-exchange volume
windows (the same :func:`jobs.logic.advance_volume`) and MOD-006's whale flow windows (the same
:func:`jobs.logic.advance_flow`), nested inside the evaluation windows and closed by the same watermark,
so the stream (state in the query's checkpoint), ``coattail detect`` (everything closed) and the tests
see the same windows — the design MOD-007 uses.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from coattail.settings import ConfigError
from jobs.logic import FlowState, VolumeState, WhaleFlowTrade, advance_flow, advance_volume

# The model's inputs, in the order of its weight vector (and of the coefficients file's "features").
FEATURES: tuple[str, ...] = ("consensus", "wallet_alpha", "volume_z", "flow", "hit_rate")
HORIZONS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": timedelta(hours=4),
}
VOLUME_Z_CAP = 10.0  # one absurd spike (a thin minute after a quiet hour) must not dominate the score
UNKNOWN_HIT_RATE = 0.5  # no back-tested evidence: a coin flip
CHANGE_EPSILON = 1e-9  # p's are compared rounded: 0.35 - 0.2 is 0.1499999... in floats


# -- features ---------------------------------------------------------------------------------------


def feature_vector(
    *,
    consensus_score: float | None,
    alpha_percentile: float | None,
    max_abs_z: float | None,
    whale_buy: float,
    whale_sell: float,
    hit_rate: float | None,
) -> dict[str, float]:
    """The features of one window, each a plain float (order: :data:`FEATURES`).

    consensus: the latest consensus score / 100 (0 without one); wallet_alpha: the highest alpha
    percentile of a high-alpha wallet active on the asset / 100 (0: none); volume_z: max |z| of the
    window's volume spikes, capped at :data:`VOLUME_Z_CAP` (0: none); flow: |2 × flow_ratio − 1| of the
    window's whale trades, flow_ratio = buy / (buy + sell) (0: no whales); hit_rate: the back-tested
    1 h hit rate of the modules that alerted on the asset in the window (0.5: unknown).
    """
    total = whale_buy + whale_sell
    flow = abs(2 * whale_buy / total - 1) if total > 0 else 0.0
    return {
        "consensus": min(1.0, max(0.0, (consensus_score or 0.0) / 100)),
        "wallet_alpha": min(1.0, max(0.0, (alpha_percentile or 0.0) / 100)),
        "volume_z": min(VOLUME_Z_CAP, abs(max_abs_z or 0.0)),
        "flow": flow,
        "hit_rate": UNKNOWN_HIT_RATE if hit_rate is None else min(1.0, max(0.0, hit_rate)),
    }


def flow_ratio(whale_buy: float, whale_sell: float) -> float | None:
    total = whale_buy + whale_sell
    return whale_buy / total if total > 0 else None


def pooled_hit_rate(rates: Iterable[tuple[int, int]]) -> float | None:
    """n-weighted hit rate of several (hits, n): Σ hits / Σ n; None when nothing was resolved."""
    hits = n = 0
    for h, k in rates:
        hits, n = hits + h, n + k
    return hits / n if n else None


def base_of(symbol: str) -> str:
    """``ETH-USDT`` -> ``ETH``: the asset, whatever it is quoted in."""
    return symbol.split("-", 1)[0].upper()


# -- the model --------------------------------------------------------------------------------------


def sigmoid(x: float) -> float:
    """1 / (1 + e^−x), without overflow for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@dataclass(frozen=True)
class HorizonModel:
    intercept: float
    weights: tuple[float, ...]  # in FEATURES order

    def probability(self, features: Mapping[str, float]) -> float:
        return sigmoid(
            self.intercept + sum(w * features[f] for w, f in zip(self.weights, FEATURES, strict=True))
        )


@dataclass(frozen=True)
class Coefficients:
    """A loaded coefficients file: one logistic model per horizon, plus what the file says about itself."""

    version: str
    models: dict[str, HorizonModel]
    meta: dict[str, Any] = field(default_factory=dict)  # fitted_at, ranges, auc, calibration, notes

    def probabilities(self, features: Mapping[str, float]) -> dict[str, float]:
        return {h: self.models[h].probability(features) for h in HORIZONS}


def coefficients_json(version: str, models: Mapping[str, HorizonModel], **meta: Any) -> dict[str, Any]:
    """The file form of a model (what :func:`parse_coefficients` reads): weights named by feature."""
    return {
        "version": version,
        "features": list(FEATURES),
        **meta,
        "horizons": {
            h: {
                "intercept": models[h].intercept,
                "weights": dict(zip(FEATURES, models[h].weights, strict=True)),
            }
            for h in HORIZONS
        },
    }


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, not {value!r}")
    return float(value)


def parse_coefficients(data: Any) -> Coefficients:
    """Validate a coefficients document; ValueError with one line saying what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("the file must hold a JSON object")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise ValueError("'version' must be a non-empty string")
    features = data.get("features")
    if features != list(FEATURES):
        raise ValueError(
            f"'features' is {features!r} but this code's model takes {list(FEATURES)!r} (in that order); "
            "refit with `coattail batch fit-predictor`"
        )
    horizons = data.get("horizons")
    if not isinstance(horizons, dict) or set(horizons) != set(HORIZONS):
        found = sorted(horizons) if isinstance(horizons, dict) else horizons
        raise ValueError(f"'horizons' must hold exactly {', '.join(HORIZONS)}; found {found!r}")
    models = {}
    for h in HORIZONS:
        entry = horizons[h]
        if not isinstance(entry, dict) or not isinstance(entry.get("weights"), dict):
            raise ValueError(f"horizon {h} needs 'intercept' and a 'weights' object")
        weights = entry["weights"]
        if set(weights) != set(FEATURES):
            raise ValueError(
                f"horizon {h}: 'weights' must name exactly {', '.join(FEATURES)}; found {sorted(weights)}"
            )
        models[h] = HorizonModel(
            _number(entry.get("intercept"), f"horizon {h} intercept"),
            tuple(_number(weights[f], f"horizon {h} weight {f}") for f in FEATURES),
        )
    meta = {k: v for k, v in data.items() if k not in ("version", "features", "horizons")}
    return Coefficients(version.strip(), models, meta)


def load_coefficients(path: Path) -> Coefficients:
    """The coefficients file at ``path``; a missing or bad file is a one-line :class:`ConfigError`."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"MOD-010 coefficients file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"MOD-010 coefficients file {path} is not readable JSON ({exc})") from None
    try:
        return parse_coefficients(data)
    except ValueError as exc:
        raise ConfigError(f"MOD-010 coefficients file {path}: {exc}") from None


# -- alert rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    high: bool  # max p >= threshold -> high_probability_move
    changed: tuple[str, ...]  # horizons whose p moved by >= change since the previous score -> score_update
    top_horizon: str  # the horizon of the highest p
    max_p: float


def decide(
    probabilities: Mapping[str, float],
    previous: Mapping[str, float] | None,
    *,
    threshold: float = 0.7,
    change: float = 0.15,
) -> Decision:
    """DESIGN.md MOD-010: max p ≥ ``threshold`` → high_probability_move; any p_h that moved by ≥
    ``change`` since the symbol's previous score → score_update (none without a previous score).
    Both inclusive; differences compared to 1e-9 so a move of exactly 0.15 counts."""
    top = max(HORIZONS, key=lambda h: (probabilities[h], -list(HORIZONS).index(h)))
    max_p = probabilities[top]
    changed: tuple[str, ...] = ()
    if previous:
        changed = tuple(
            h
            for h in HORIZONS
            if h in previous and abs(probabilities[h] - previous[h]) >= change - CHANGE_EPSILON
        )
    return Decision(max_p >= threshold - CHANGE_EPSILON, changed, top, max_p)


# -- evaluation windows -----------------------------------------------------------------------------


@dataclass
class EvalSlot:
    """An open evaluation window: its trades' count and close, and what its inner windows gave."""

    trades: int = 0
    close: tuple[int, str, str] | None = None  # (ts_ms, event_id, price text) of the latest trade
    max_abs_z: float | None = None  # of MOD-001's flagged windows inside it
    whale_buy: Decimal = Decimal(0)
    whale_sell: Decimal = Decimal(0)
    whale_trades: int = 0
    # The latest consensus (flow) window inside it: start ms, buy, sell, whale trades, max |z| of its spikes
    consensus: tuple[int, Decimal, Decimal, int, float | None] | None = None

    def to_json(self) -> list[Any]:
        c = self.consensus
        return [
            self.trades,
            list(self.close) if self.close else None,
            self.max_abs_z,
            str(self.whale_buy),
            str(self.whale_sell),
            self.whale_trades,
            None if c is None else [c[0], str(c[1]), str(c[2]), c[3], c[4]],
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> EvalSlot:
        c = data[6]
        return cls(
            int(data[0]),
            None if data[1] is None else (int(data[1][0]), str(data[1][1]), str(data[1][2])),
            None if data[2] is None else float(data[2]),
            Decimal(data[3]),
            Decimal(data[4]),
            int(data[5]),
            None
            if c is None
            else (int(c[0]), Decimal(c[1]), Decimal(c[2]), int(c[3]), None if c[4] is None else float(c[4])),
        )


@dataclass
class PredictorState:
    """Per symbol: MOD-001's volume state per exchange, MOD-006's flow windows, the spikes of open flow
    windows, and the open evaluation windows."""

    volume: dict[str, VolumeState] = field(default_factory=dict)
    flow: FlowState = field(default_factory=FlowState)
    spikes: dict[int, float] = field(default_factory=dict)  # flow window start -> max |z| seen in it
    evals: dict[int, EvalSlot] = field(default_factory=dict)  # evaluation window start -> slot
    last_closed: int | None = None  # start of the last closed evaluation window

    def to_json(self) -> dict[str, Any]:
        return {
            "v": {ex: s.to_json() for ex, s in self.volume.items()},
            "f": self.flow.to_json(),
            "s": {str(k): v for k, v in self.spikes.items()},
            "e": {str(k): v.to_json() for k, v in self.evals.items()},
            "l": self.last_closed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PredictorState:
        return cls(
            {ex: VolumeState.from_json(s) for ex, s in data["v"].items()},
            FlowState.from_json(data["f"]),
            {int(k): float(v) for k, v in data["s"].items()},
            {int(k): EvalSlot.from_json(v) for k, v in data["e"].items()},
            data["l"],
        )

    def wake_ms(self, *, flow_ms: int, eval_ms: int, volume_ms: int) -> int | None:
        """When the earliest open window (evaluation, flow or volume) closes: the state's timeout."""
        wake = [min(self.evals) + eval_ms] if self.evals else []
        wake += [min(self.flow.open) + flow_ms] if self.flow.open else []
        wake += [min(v.open) + volume_ms for v in self.volume.values() if v.open]
        return min(wake) if wake else None


@dataclass(frozen=True)
class EvaluationWindow:
    start_ms: int
    end_ms: int
    slot: EvalSlot


@dataclass(frozen=True)
class PriceTrade:
    """A trade as the evaluation window sees it."""

    ts_ms: int
    exchange: str
    quote_volume: float  # MOD-001 sums doubles, so does this
    price: str  # exact text
    event_id: str


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def advance_evaluation(
    state: PredictorState,
    trades: Sequence[PriceTrade],
    whales: Iterable[WhaleFlowTrade],
    watermark_ms: int | None,
    *,
    flow_ms: int,
    eval_ms: int,
    volume: dict[str, Any],
) -> list[EvaluationWindow]:
    """Add one symbol's trades (and its whale trades), close every evaluation window ending at or
    before the watermark (None: all, batch mode) and return them, oldest first.

    Late trades (at/before the watermark, or in a window already closed) are dropped, as every other
    windowed module does. ``volume`` holds :func:`jobs.logic.advance_volume`'s keyword arguments;
    ``eval_ms`` is a multiple of ``flow_ms``, which is one of MOD-001's window: the inner windows close no
    later than the evaluation window holding them, under the same watermark.
    """
    per_exchange: dict[str, list[tuple[int, float]]] = {}
    for t in trades:
        start = t.ts_ms - t.ts_ms % eval_ms
        if (watermark_ms is not None and t.ts_ms <= watermark_ms) or (
            state.last_closed is not None and start <= state.last_closed
        ):
            continue
        slot = state.evals.setdefault(start, EvalSlot())
        slot.trades += 1
        key = (t.ts_ms, t.event_id, t.price)
        if slot.close is None or key[:2] > slot.close[:2]:
            slot.close = key
        per_exchange.setdefault(t.exchange, []).append((t.ts_ms, t.quote_volume))
    for exchange in sorted(set(state.volume) | set(per_exchange)):
        vs = state.volume.setdefault(exchange, VolumeState())
        closed, _ = advance_volume(vs, sorted(per_exchange.get(exchange, [])), watermark_ms, **volume)
        for w in closed:
            if not (w.score.flagged and w.score.z is not None):
                continue
            z = abs(w.score.z)
            fbucket = w.window_start_ms - w.window_start_ms % flow_ms
            state.spikes[fbucket] = max(z, state.spikes.get(fbucket, 0.0))
            holder = state.evals.get(w.window_start_ms - w.window_start_ms % eval_ms)
            if holder is not None:
                holder.max_abs_z = _max(holder.max_abs_z, z)
    windows, _ = advance_flow(state.flow, whales, watermark_ms, window_ms=flow_ms)
    for fw in windows:
        target = state.evals.get(fw.window_start_ms - fw.window_start_ms % eval_ms)
        spike = state.spikes.pop(fw.window_start_ms, None)
        if target is None:
            continue
        slot = target
        buy, sell = fw.buy, fw.sell
        slot.whale_buy += buy
        slot.whale_sell += sell
        slot.whale_trades += len(fw.trades)
        if slot.consensus is None or fw.window_start_ms > slot.consensus[0]:
            slot.consensus = (fw.window_start_ms, buy, sell, len(fw.trades), spike)
    for bucket in [b for b in state.spikes if watermark_ms is None or b + flow_ms <= watermark_ms]:
        del state.spikes[bucket]  # flow windows without whale trades: no consensus score
    out: list[EvaluationWindow] = []
    for start in sorted(state.evals):
        if watermark_ms is not None and start + eval_ms > watermark_ms:
            break
        out.append(EvaluationWindow(start, start + eval_ms, state.evals.pop(start)))
        state.last_closed = start
    return out
