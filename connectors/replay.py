"""Replay recorded raw messages (JSONL) through the same normalise -> writer path as live streaming.

Every line ends exactly once as trades, a dead letter (with its reason) or ignored (a known control
message or a blank line): ``lines = trade_lines + ignored + dead_lettered``. SIGTERM/SIGINT stop the
reading at the next line; what was read is flushed and reported, and the exit code is 128 + signal
(143/130) because the input was not replayed to its end. A second signal ends the process at once.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from coattail.cliutil import fail
from coattail.settings import load_settings
from connectors.base import DeadLetter, RecentIds
from connectors.metrics import Metrics
from connectors.rawlines import dead_letter_reason, parse_line
from connectors.registry import Normalizer, normalizer
from connectors.trade import NormalizeError, Trade, now_iso
from connectors.writer import ProduceError, StreamWriter, build_writer

log = logging.getLogger("connectors")
FLUSH_SECONDS = 60.0


@dataclass
class ReplayStats:
    lines: int = 0  # every line read, blank ones included
    trade_lines: int = 0  # lines that held at least one trade
    trades: int = 0  # trades handed to the writer (after in-process de-duplication)
    duplicates: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    by_exchange: dict[str, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Records handed to the writer: trades and dead letters."""
        return self.trades + self.dead_lettered


class _StopReading(Exception):  # noqa: N818 - a signal, not an error
    """Raised by the signal handler only while blocked reading input (e.g. a silent stdin)."""


class Interrupt:
    """SIGTERM/SIGINT handling: remember the signal, stop at the next line, never mid-write."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.reading = False
        self._raised = False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # second signal: the default action, at once
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        self.signum = signum
        if self.reading and not self._raised:
            self._raised = True
            raise _StopReading

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def sleep(self, seconds: float) -> None:
        """Sleep in short slices so a signal ends the wait promptly."""
        until = time.monotonic() + seconds
        while self.signum is None:
            left = until - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))


def replay(
    lines: Iterable[str | bytes],
    writer: StreamWriter,
    *,
    fast: bool = False,
    default_exchange: str | None = None,
    known_symbols: dict[str, list[str]] | None = None,
    speed: float = 1.0,
    interrupt: Interrupt | None = None,
) -> ReplayStats:
    """Normalise and write every line; at recorded pace (``received_at`` gaps / ``speed``) unless ``fast``."""
    stop = interrupt or Interrupt()
    stats = ReplayStats()
    normalizers: dict[str, Normalizer] = {}
    recent = RecentIds(1_000_000)
    first_recorded: float | None = None
    started = time.monotonic()
    for line in _read(lines, stop):
        stats.lines += 1
        if not line.strip():
            stats.ignored += 1
            continue
        received_at = now_iso()
        exchange = default_exchange or "unknown"
        try:
            parsed = parse_line(line)
            exchange = parsed.exchange or default_exchange or ""
            if not exchange:
                raise NormalizeError("bare message without --exchange")
            if not fast and parsed.received_at:
                first_recorded = _pace(parsed.received_at, first_recorded, started, speed, stop)
            norm = normalizers.get(exchange)
            if norm is None:
                try:
                    norm = normalizers[exchange] = normalizer(
                        exchange, (known_symbols or {}).get(exchange, ())
                    )
                except ValueError as exc:
                    raise NormalizeError(str(exc)) from None
            trades = norm.message(parsed.message, parsed.received_at or received_at)
        except Exception as exc:  # one bad line must never stop the replay
            raw = line.rstrip(b"\n") if isinstance(line, bytes) else line.rstrip("\n")
            reason = dead_letter_reason(exc)
            writer.dead_letter(DeadLetter.of(exchange[:40] or "unknown", reason, raw, received_at))
            stats.dead_lettered += 1
            continue
        if not trades:
            stats.ignored += 1
            continue
        stats.trade_lines += 1
        for trade in trades:
            _write(trade, writer, recent, stats)
    return stats


def _read(lines: Iterable[str | bytes], stop: Interrupt) -> Iterator[str | bytes]:
    """The lines until the input ends or a signal arrives (even while blocked reading)."""
    source = iter(lines)
    while stop.signum is None:
        stop.reading = True
        try:
            line = next(source)
        except (StopIteration, _StopReading):
            return
        finally:
            stop.reading = False
        if stop.signum is not None:
            return  # the signal came while this line was read: it is not processed
        yield line


def _write(trade: Trade, writer: StreamWriter, recent: RecentIds, stats: ReplayStats) -> None:
    if not recent.add((trade.exchange, *trade.dedupe_key)):
        stats.duplicates += 1
        return
    writer.write(trade)
    stats.trades += 1
    stats.by_exchange[trade.exchange] = stats.by_exchange.get(trade.exchange, 0) + 1


def _pace(received_at: str, first: float | None, started: float, speed: float, stop: Interrupt) -> float:
    recorded = datetime.fromisoformat(received_at).timestamp()
    if first is None:
        return recorded
    due = started + (recorded - first) / speed
    delay = due - time.monotonic()
    if delay > 0:
        stop.sleep(delay)
    return first


# -- `coattail connectors replay` --------------------------------------------------------------------
def replay_cli(file: Path, *, fast: bool, exchange: str | None, speed: float) -> int:
    """Replay ``file`` ('-' = stdin) to the configured stream; prints the report, returns the exit code."""
    stdin = str(file) == "-"
    if not stdin and not file.is_file():
        fail(f"{file} does not exist; record one with `coattail simulate --out {file}`")
    if speed <= 0:
        fail("--speed must be positive")
    settings = load_settings()
    writer = build_writer(settings, Metrics())
    interrupt = Interrupt()
    interrupt.install()
    stats = ReplayStats()
    error = ""
    try:
        with _open(file, stdin) as fh:
            stats = replay(
                fh,
                writer,
                fast=fast,
                default_exchange=exchange.lower() if exchange else None,
                known_symbols=settings.instruments,
                speed=speed,
                interrupt=interrupt,
            )
    except ProduceError as exc:
        error = str(exc)
    finally:
        timeout = settings.producer.shutdown_grace_seconds if interrupt.signum else FLUSH_SECONDS
        try:
            remaining = writer.flush(timeout)
        except ProduceError as exc:
            remaining, error = -1, error or str(exc)
        writer.close()
        interrupt.restore()
    _report(stats, interrupt)
    lost = undelivered(writer, stats, remaining)
    if error:
        fail(f"the stream refused records: {error}", 1)
    if lost:
        fail(f"{lost} of {stats.records} records were not delivered within {timeout:g} s", 1)
    return 128 + interrupt.signum if interrupt.signum else 0


def _open(file: Path, stdin: bool) -> BinaryIO:
    return sys.stdin.buffer if stdin else file.open("rb")


def _report(stats: ReplayStats, interrupt: Interrupt) -> None:
    head = f"interrupted by {interrupt.name}: " if interrupt.signum else ""
    sys.stderr.write(
        f"{head}replayed {stats.lines} lines: {stats.trades} trades written (from {stats.trade_lines} "
        f"lines), {stats.duplicates} duplicates dropped, {stats.ignored} ignored (control messages, "
        f"blank lines), {stats.dead_lettered} dead-lettered\n"
    )


def undelivered(writer: StreamWriter, stats: ReplayStats, remaining: int) -> int:
    """Records handed to the writer and not acknowledged: exact when the writer counts deliveries.

    Kafka's ``flush`` result also counts queued client events (errors, stats), not only records, so it
    would overstate a loss; the writers' own delivery counts do not.
    """
    delivered = getattr(writer, "delivered", None)
    if isinstance(delivered, int):
        return max(0, stats.records - delivered)
    return max(0, remaining)
