"""How a module shows itself to people: its per-symbol panel and the points of its recent windows.

A detector module declares a :class:`SymbolPanel` (which figures of its latest alert to show) and turns
each row of its own table into :class:`WindowPoint`s (price, volume, spread … of every window, flagged
or not). The pipeline keeps those points in the recent-windows store; the API and the dashboard draw
every active module's panel and series from these declarations alone, so they name no module.
Spark-free and FastAPI-free: the pipeline, the API and the tests all import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from coattail.contracts.types import format_utc


@dataclass(frozen=True, slots=True)
class Figure:
    """One number (or word) from the ``details`` of the module's latest alert for the symbol."""

    label: str
    field: str
    unit: str = ""


@dataclass(frozen=True, slots=True)
class SymbolPanel:
    """What the dashboard shows of a module for one symbol: a title and figures of its latest alert."""

    title: str
    figures: tuple[Figure, ...] = ()
    # Names of the window series this module feeds (for the legend); the points carry the same names.
    series: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class WindowPoint:
    """One window's value of one series for one symbol (e.g. "volume binance" at 12:01:00)."""

    module_id: str
    symbol: str
    series: str
    t: datetime  # window start, UTC
    value: float
    flagged: bool = False
    severity: str | None = None

    @property
    def key(self) -> str:
        """Sort key within a symbol: time first (fixed-width ISO), then module and series."""
        return f"{format_utc(self.t)}#{self.module_id}#{self.series}"

    def as_json(self) -> dict[str, object]:
        return {
            "module_id": self.module_id,
            "series": self.series,
            "t": format_utc(self.t),
            "value": self.value,
            "flagged": self.flagged,
            "severity": self.severity,
        }
