"""Backfill progress: a rich bar with rate and ETA on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("jobs.batch")


class Reporter:
    """One task per (symbol, range); progress is trade time covered, so the ETA is meaningful."""

    def __init__(self, *, interactive: bool | None = None, every_seconds: float = 10.0) -> None:
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.every = every_seconds
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._started: dict[str, float] = {}
        self._last_log: dict[str, float] = {}
        self._totals: dict[str, int] = {}

    def __enter__(self) -> Reporter:
        if self.interactive:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rows]:,} rows · {task.fields[rate]:,.0f} rows/s"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, name: str, total_ms: int, done_ms: int = 0) -> None:
        self._started[name] = time.monotonic()
        self._last_log[name] = 0.0
        self._totals[name] = max(total_ms, 1)
        if self._progress is not None:
            self._tasks[name] = self._progress.add_task(name, total=max(total_ms, 1), rows=0, rate=0.0)
            self._progress.update(self._tasks[name], completed=done_ms)

    def update(self, name: str, done_ms: int, total_ms: int, rows: int) -> None:
        elapsed = max(time.monotonic() - self._started.get(name, time.monotonic()), 1e-6)
        rate = rows / elapsed
        if self._progress is not None:
            self._progress.update(self._tasks[name], completed=done_ms, rows=rows, rate=rate)
            return
        now = time.monotonic()
        if now - self._last_log.get(name, 0.0) < self.every:
            return
        self._last_log[name] = now
        fraction = min(done_ms / total_ms, 1.0) if total_ms > 0 else 1.0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        log.info(
            "%s: %d rows, %.0f rows/s, %.0f%% of range, ETA %.0f s", name, rows, rate, fraction * 100, eta
        )

    def finish(self, name: str, rows: int) -> None:
        elapsed = time.monotonic() - self._started.get(name, time.monotonic())
        if self._progress is not None:
            self._progress.update(self._tasks[name], completed=self._totals[name], rows=rows)
        log.info("%s: done, %d new rows in %.1f s", name, rows, elapsed)
