"""Detection logic as pure functions over plain data (DESIGN.md "Detector semantics").

Spark is only the plumbing around these: the streaming pipeline, the batch ``coattail detect`` and the
unit tests all call the same functions, so a semantic change is made (and tested) in one place.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from coattail.settings.modules import SeverityBand, SeverityName, severity_for

# -- MOD-001 volume anomaly -------------------------------------------------------------------------


@dataclass(frozen=True)
class ZScore:
    """Baseline of one window: ``z`` is None while there is too little history or no variance."""

    z: float | None
    mean: float | None
    stddev: float | None
    history_windows: int
    flagged: bool


def z_score_for_window(
    history: Sequence[float], volume: float, *, min_history: int, threshold: float
) -> ZScore:
    """z of ``volume`` against ``history`` (the key's preceding windows, zeros included).

    Sample standard deviation; flagged only when |z| is strictly above ``threshold`` and at least
    ``min_history`` windows of history exist. A flat history (stddev 0) gives no z: any change
    against a constant baseline would be "infinitely" anomalous, which is not a useful alert.
    """
    n = len(history)
    if n < max(min_history, 2):
        mean = statistics.fmean(history) if history else None
        return ZScore(None, mean, None, n, False)
    mean = statistics.fmean(history)
    std = statistics.stdev(history)
    if std == 0:
        return ZScore(None, mean, 0.0, n, False)
    z = (volume - mean) / std
    return ZScore(z, mean, std, n, abs(z) > threshold)


@dataclass
class VolumeState:
    """Per (symbol, exchange) state: open windows and the closed-window history (oldest first).

    ``history`` holds consecutive windows ending at ``last_closed``; windows without trades are
    zeros, so the baseline sees quiet minutes as the quiet minutes they are.
    """

    open: dict[int, list[float]] = field(default_factory=dict)  # window start ms -> [volume, trades]
    history: list[float] = field(default_factory=list)
    last_closed: int | None = None
    warned: set[int] = field(default_factory=set)  # open windows that already raised an early warning

    def to_json(self) -> dict[str, Any]:
        return {
            "open": {str(k): v for k, v in self.open.items()},
            "h": self.history,
            "l": self.last_closed,
            "w": sorted(self.warned),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VolumeState:
        warned = set(data.get("w", ()))  # (state written before early warnings existed has none)
        return cls({int(k): list(v) for k, v in data["open"].items()}, list(data["h"]), data["l"], warned)


@dataclass(frozen=True)
class ClosedWindow:
    window_start_ms: int
    window_end_ms: int
    volume: float
    trades: int
    score: ZScore
    early_warned: bool = False  # an early warning was raised for it while it was open


def advance_volume(
    state: VolumeState,
    trades: Iterable[tuple[int, float]],
    watermark_ms: int | None,
    *,
    window_ms: int,
    baseline_windows: int,
    min_history: int,
    threshold: float,
) -> tuple[list[ClosedWindow], int]:
    """Add ``(timestamp_ms, quote_volume)`` trades and close every window ending at/before the watermark.

    ``watermark_ms`` None closes everything (batch mode). A trade at or before the watermark, or in a
    window this key already closed, is late and dropped (as Spark's window aggregation would).
    Returns the closed windows, oldest first, and the number of late trades dropped.
    """
    late = 0
    for ts_ms, volume in trades:
        start = ts_ms - ts_ms % window_ms
        if (watermark_ms is not None and ts_ms <= watermark_ms) or (
            state.last_closed is not None and start <= state.last_closed
        ):
            late += 1
            continue
        slot = state.open.setdefault(start, [0.0, 0])
        slot[0] += volume
        slot[1] += 1
    closed: list[ClosedWindow] = []
    for start in sorted(state.open):
        if watermark_ms is not None and start + window_ms > watermark_ms:
            break
        volume, count = state.open.pop(start)
        if state.last_closed is not None:  # quiet windows in between count as zero volume
            gap = (start - state.last_closed) // window_ms - 1
            state.history.extend([0.0] * min(gap, baseline_windows))
            del state.history[:-baseline_windows]
        score = z_score_for_window(state.history, volume, min_history=min_history, threshold=threshold)
        warned = start in state.warned
        state.warned.discard(start)
        closed.append(ClosedWindow(start, start + window_ms, volume, int(count), score, warned))
        state.history.append(volume)
        del state.history[:-baseline_windows]
        state.last_closed = start
    return closed, late


def early_spikes(
    state: VolumeState, *, window_ms: int, baseline_windows: int, min_history: int, threshold: float
) -> list[ClosedWindow]:
    """Open windows whose running volume already makes z > ``threshold`` (each window once).

    The baseline is the one the window will be scored with at close — the closed history, quiet
    windows as zeros — with an earlier window that is still open counted at its running volume (its
    trades are in; only late ones could still come). Volume only grows, so a spike seen early is
    nearly always confirmed at close; one that is not is retracted (see the volume detector). Only
    spikes up: a drop is known only when the window is over.
    """
    out: list[ClosedWindow] = []
    history, last = list(state.history), state.last_closed
    for start in sorted(state.open):
        volume, count = state.open[start]
        if last is not None:
            history.extend([0.0] * min((start - last) // window_ms - 1, baseline_windows))
            del history[:-baseline_windows]
        score = z_score_for_window(history, volume, min_history=min_history, threshold=threshold)
        if score.flagged and score.z is not None and score.z > 0 and start not in state.warned:
            state.warned.add(start)
            out.append(ClosedWindow(start, start + window_ms, volume, int(count), score, True))
        history.append(volume)
        del history[:-baseline_windows]
        last = start
    return out


def band_severity(bands: list[SeverityBand], measure: float, floor: SeverityName = "low") -> SeverityName:
    """Severity band for a flagged measure; ``floor`` when the threshold sits below the first band."""
    return severity_for(bands, measure) or floor


# -- MOD-002 whale ----------------------------------------------------------------------------------


def whale_severity(bands: list[SeverityBand], quote_volume: Decimal) -> SeverityName | None:
    """Severity of a trade by its exact quote volume: the highest band it is strictly above, else None."""
    return exact_severity(bands, quote_volume)


# -- MOD-003 spread ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    group: str
    a: str  # "exchange:symbol"
    b: str


@dataclass(frozen=True)
class Spread:
    pair: Pair
    a_vwap: float
    b_vwap: float
    spread_pct: float
    flagged: bool


def vwap(notional: float, quantity: float) -> float | None:
    """Volume-weighted average price: Σ(price × qty) / Σ qty (None without volume)."""
    return notional / quantity if quantity > 0 else None


def spread_pct(a_vwap: float, b_vwap: float) -> float:
    """(a − b) / b × 100."""
    return (a_vwap - b_vwap) / b_vwap * 100


def spread_pairs(equivalences: dict[str, list[str]], present: Iterable[str] | None = None) -> list[Pair]:
    """Every pair of instruments in each group, "a" listed before "b" (so a group of n gives n(n-1)/2).

    ``present`` (``exchange:symbol`` keys) keeps only pairs whose both sides are streamed.
    """
    keep = None if present is None else set(present)
    return [
        Pair(group, a, b)
        for group, members in sorted(equivalences.items())
        for i, a in enumerate(members)
        for b in members[i + 1 :]
        if keep is None or (a in keep and b in keep)
    ]


def spreads_for_window(vwaps: dict[str, float], pairs: Sequence[Pair], threshold_pct: float) -> list[Spread]:
    """Spreads of every pair whose two instruments both traded in the window."""
    out = []
    for pair in pairs:
        a, b = vwaps.get(pair.a), vwaps.get(pair.b)
        if a is None or b is None or b <= 0:
            continue
        pct = spread_pct(a, b)
        out.append(Spread(pair, a, b, pct, abs(pct) > threshold_pct))
    return out


def exact_severity(bands: list[SeverityBand], measure: Decimal) -> SeverityName | None:
    """Highest band ``measure`` is strictly above, compared exactly (band thresholds read as decimals)."""
    chosen: SeverityName | None = None
    for band in bands:
        if measure > Decimal(str(band.above)):
            chosen = band.severity
    return chosen


# -- MOD-006 flow direction -------------------------------------------------------------------------


@dataclass(frozen=True)
class WhaleFlowTrade:
    """One whale trade as the flow window sees it (exact quote volume, taker side)."""

    ts_ms: int
    exchange: str
    side: str  # buy | sell (taker)
    quote_volume: Decimal
    event_id: str


@dataclass
class FlowState:
    """Per symbol: open windows of whale flow and the last closed window start (late trades drop)."""

    open: dict[int, list[WhaleFlowTrade]] = field(default_factory=dict)  # window start ms -> trades
    last_closed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "open": {
                str(k): [[t.ts_ms, t.exchange, t.side, str(t.quote_volume), t.event_id] for t in v]
                for k, v in self.open.items()
            },
            "l": self.last_closed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FlowState:
        return cls(
            {
                int(k): [WhaleFlowTrade(int(t[0]), t[1], t[2], Decimal(t[3]), t[4]) for t in v]
                for k, v in data["open"].items()
            },
            data["l"],
        )


@dataclass(frozen=True)
class FlowWindow:
    """A closed window of one symbol's whale flow (only windows that saw whale trades exist)."""

    window_start_ms: int
    window_end_ms: int
    trades: tuple[WhaleFlowTrade, ...]  # time order

    @property
    def buy(self) -> Decimal:
        return sum((t.quote_volume for t in self.trades if t.side == "buy"), Decimal(0))

    @property
    def sell(self) -> Decimal:
        return sum((t.quote_volume for t in self.trades if t.side == "sell"), Decimal(0))

    @property
    def exchanges(self) -> list[str]:
        return sorted({t.exchange for t in self.trades})


def advance_flow(
    state: FlowState, whales: Iterable[WhaleFlowTrade], watermark_ms: int | None, *, window_ms: int
) -> tuple[list[FlowWindow], int]:
    """Add whale trades, close every window ending at/before the watermark (None: all, batch mode).

    Late trades (at/before the watermark, or in a window already closed) are dropped and counted,
    as :func:`advance_volume` does, so stream and batch agree on what a window holds.
    """
    late = 0
    for trade in whales:
        start = trade.ts_ms - trade.ts_ms % window_ms
        if (watermark_ms is not None and trade.ts_ms <= watermark_ms) or (
            state.last_closed is not None and start <= state.last_closed
        ):
            late += 1
            continue
        state.open.setdefault(start, []).append(trade)
    closed: list[FlowWindow] = []
    for start in sorted(state.open):
        if watermark_ms is not None and start + window_ms > watermark_ms:
            break
        trades = sorted(state.open.pop(start), key=lambda t: (t.ts_ms, t.event_id))
        closed.append(FlowWindow(start, start + window_ms, tuple(trades)))
        state.last_closed = start
    return closed, late


@dataclass(frozen=True)
class FlowBands:
    """MOD-006 thresholds: ratio strictly above ``accumulation`` / below ``distribution`` is a signal."""

    accumulation: Decimal
    accumulation_high: Decimal
    distribution: Decimal
    distribution_high: Decimal


@dataclass(frozen=True)
class FlowScore:
    buy: Decimal
    sell: Decimal
    whale_trades: int
    net_flow: Decimal
    ratio: Decimal
    signal: str | None  # accumulation | distribution | None
    severity: SeverityName | None


def score_flow(
    buy: Decimal, sell: Decimal, whale_trades: int, *, min_whale_trades: int, bands: FlowBands
) -> FlowScore | None:
    """flow_ratio = buy / (buy + sell), exactly; None for a window with fewer than ``min_whale_trades``.

    A ratio exactly on a threshold is not a signal (strictly above / below).
    """
    total = buy + sell
    if whale_trades < min_whale_trades or total <= 0:
        return None
    ratio = buy / total
    signal: str | None = None
    severity: SeverityName | None = None
    if ratio > bands.accumulation:
        signal, severity = "accumulation", "high" if ratio > bands.accumulation_high else "medium"
    elif ratio < bands.distribution:
        signal, severity = "distribution", "high" if ratio < bands.distribution_high else "medium"
    return FlowScore(buy, sell, whale_trades, buy - sell, ratio, signal, severity)


# -- MOD-007 consensus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsensusWeights:
    volume: Decimal
    whale: Decimal
    flow: Decimal


@dataclass(frozen=True)
class ConsensusScore:
    direction: int  # +1 whale buys dominate, -1 sells, 0 balanced
    score: Decimal  # 0..100
    volume_signal: Decimal
    whale_signal: Decimal
    flow_signal: Decimal


def consensus_score(
    buy: Decimal,
    sell: Decimal,
    flow_signal: str | None,
    flow_ratio: Decimal | None,
    max_abs_z: float | None,
    *,
    z_threshold: float,
    weights: ConsensusWeights,
) -> ConsensusScore | None:
    """DESIGN.md MOD-007: direction from net whale flow; components in [0, 1]; score = 100 × Σ w·c.

    No whale flow → None. The flow component counts only when the window's MOD-006 signal points the
    way the whales do (an accumulation signal against net selling contributes 0). Exact decimals, so
    a score exactly on the threshold stays on it (0.3 + 0.4 in floats is 0.7000000000000001).
    """
    total = buy + sell
    if total <= 0:
        return None
    direction = (buy > sell) - (buy < sell)
    volume = Decimal(0)
    if max_abs_z:
        volume = min(Decimal(1), abs(Decimal(str(max_abs_z))) / (2 * Decimal(str(z_threshold))))
    whale = abs(buy - sell) / total
    agrees = (flow_signal == "accumulation" and direction > 0) or (
        flow_signal == "distribution" and direction < 0
    )
    flow = abs(2 * flow_ratio - 1) if agrees and flow_ratio is not None else Decimal(0)
    score = 100 * (weights.volume * volume + weights.whale * whale + weights.flow * flow)
    return ConsensusScore(direction, score, volume, whale, flow)


@dataclass(frozen=True)
class VolumeSpike:
    """A flagged MOD-001 window (it raised a volume_spike alert) inside a consensus window."""

    exchange: str
    window_start_ms: int
    z: float


@dataclass
class ConsensusState:
    """Per symbol: MOD-001's per-exchange volume state, whale flow windows, and the spikes seen in
    windows that are still open — everything the consensus of a window needs, in the query's state."""

    volume: dict[str, VolumeState] = field(default_factory=dict)
    flow: FlowState = field(default_factory=FlowState)
    spikes: dict[int, list[VolumeSpike]] = field(default_factory=dict)  # consensus window start -> spikes

    def to_json(self) -> dict[str, Any]:
        return {
            "v": {ex: s.to_json() for ex, s in self.volume.items()},
            "f": self.flow.to_json(),
            "s": {str(k): [[x.exchange, x.window_start_ms, x.z] for x in v] for k, v in self.spikes.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConsensusState:
        return cls(
            {ex: VolumeState.from_json(s) for ex, s in data["v"].items()},
            FlowState.from_json(data["f"]),
            {int(k): [VolumeSpike(x[0], int(x[1]), float(x[2])) for x in v] for k, v in data["s"].items()},
        )


@dataclass(frozen=True)
class ConsensusWindow:
    flow: FlowWindow
    spikes: tuple[VolumeSpike, ...]

    @property
    def max_abs_z(self) -> float | None:
        return max((abs(s.z) for s in self.spikes), default=None)


def advance_consensus(
    state: ConsensusState,
    trades: Iterable[tuple[int, str, float]],
    whales: Iterable[WhaleFlowTrade],
    watermark_ms: int | None,
    *,
    window_ms: int,
    volume: dict[str, Any],
) -> list[ConsensusWindow]:
    """Advance MOD-001 (per exchange, the same :func:`advance_volume`) and the whale flow windows of
    one symbol; return each closed consensus window with the volume spikes it contained.

    ``trades`` are ``(ts_ms, exchange, quote_volume)``; ``volume`` holds advance_volume's keyword
    arguments (MOD-001's window and baseline). MOD-001's windows nest inside the consensus window and
    close under the same watermark, so a window's spikes are all known when it closes.
    """
    per_exchange: dict[str, list[tuple[int, float]]] = {}
    for ts_ms, exchange, qv in trades:
        per_exchange.setdefault(exchange, []).append((ts_ms, qv))
    for exchange in sorted(set(state.volume) | set(per_exchange)):
        vs = state.volume.setdefault(exchange, VolumeState())
        closed, _ = advance_volume(vs, sorted(per_exchange.get(exchange, [])), watermark_ms, **volume)
        for w in closed:
            if w.score.flagged and w.score.z is not None:
                bucket = w.window_start_ms - w.window_start_ms % window_ms
                spike = VolumeSpike(exchange, w.window_start_ms, w.score.z)
                state.spikes.setdefault(bucket, []).append(spike)
    windows, _ = advance_flow(state.flow, whales, watermark_ms, window_ms=window_ms)
    out = [ConsensusWindow(w, tuple(state.spikes.pop(w.window_start_ms, ()))) for w in windows]
    for bucket in [b for b in state.spikes if watermark_ms is None or b + window_ms <= watermark_ms]:
        del state.spikes[bucket]  # closed windows without whale flow: no score
    return out
