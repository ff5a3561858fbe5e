"""Where an interrupted backfill resumes: the last aggregate id loaded per (exchange, symbol, range).

Two records of the same fact: a small JSON state file (fast, local) and a snapshot property on the
``raw_trades`` commit that carried the rows (durable: it lands atomically with the data, so a pod
that lost its state folder still resumes exactly after the last committed page).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.table import Table

PROPERTY_PREFIX = "coattail.backfill."


@dataclass
class RangeProgress:
    last_id: int | None = None  # last aggregate id committed (None: nothing yet)
    last_ms: int | None = None  # its trade time, for the progress bar after a resume
    rows: int = 0  # rows added to raw_trades by this range so far
    done: bool = False


def range_key(exchange: str, symbol: str, start_ms: int, end_ms: int) -> str:
    return f"{exchange}:{symbol}:{start_ms}:{end_ms}"


class ProgressFile:
    """JSON map range key -> RangeProgress, replaced atomically on every save."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read_all(self) -> dict[str, dict[str, object]]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except json.JSONDecodeError:
            return {}  # a torn file is no worse than none: the lake property still resumes us
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> RangeProgress:
        raw = self._read_all().get(key)
        if not isinstance(raw, dict):
            return RangeProgress()
        return RangeProgress(**{k: v for k, v in raw.items() if k in RangeProgress.__dataclass_fields__})  # type: ignore[arg-type]

    def save(self, key: str, progress: RangeProgress) -> None:
        data = self._read_all()
        data[key] = asdict(progress)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.path)


def lake_last_id(table: Table, key: str) -> int | None:
    """Highest last id recorded for ``key`` in the table's snapshot summaries."""
    best: int | None = None
    for snapshot in table.snapshots():
        value = snapshot.summary.get(PROPERTY_PREFIX + key) if snapshot.summary else None
        if value is not None and str(value).isdigit():
            best = max(best or 0, int(value))
    return best
