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

    def to_json(self) -> dict[str, Any]:
        return {"open": {str(k): v for k, v in self.open.items()}, "h": self.history, "l": self.last_closed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VolumeState:
        return cls({int(k): list(v) for k, v in data["open"].items()}, list(data["h"]), data["l"])


@dataclass(frozen=True)
class ClosedWindow:
    window_start_ms: int
    window_end_ms: int
    volume: float
    trades: int
    score: ZScore


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
        closed.append(ClosedWindow(start, start + window_ms, volume, int(count), score))
        state.history.append(volume)
        del state.history[:-baseline_windows]
        state.last_closed = start
    return closed, late


def band_severity(bands: list[SeverityBand], measure: float, floor: SeverityName = "low") -> SeverityName:
    """Severity band for a flagged measure; ``floor`` when the threshold sits below the first band."""
    return severity_for(bands, measure) or floor


# -- MOD-002 whale ----------------------------------------------------------------------------------


def whale_severity(bands: list[SeverityBand], quote_volume: Decimal) -> SeverityName | None:
    """Severity of a trade by its exact quote volume: the highest band it is strictly above, else None."""
    chosen: SeverityName | None = None
    for band in bands:
        if quote_volume > Decimal(str(band.above)):
            chosen = band.severity
    return chosen


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


def spread_pairs(equivalences: dict[str, list[str]]) -> list[Pair]:
    """Pairs to compare: in each group the first instrument is "a", every other one a "b"."""
    return [
        Pair(group, members[0], b) for group, members in sorted(equivalences.items()) for b in members[1:]
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
