"""Replay recorded raw messages (JSONL) through the same normalise -> writer path as live streaming."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from connectors.base import DeadLetter, RecentIds
from connectors.rawlines import parse_line
from connectors.registry import Normalizer, normalizer
from connectors.trade import NormalizeError, Trade, now_iso
from connectors.writer import StreamWriter

log = logging.getLogger("connectors")


@dataclass
class ReplayStats:
    lines: int = 0
    trades: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    by_exchange: dict[str, int] = field(default_factory=dict)


def replay(
    lines: Iterable[str | bytes],
    writer: StreamWriter,
    *,
    fast: bool = False,
    default_exchange: str | None = None,
    known_symbols: dict[str, list[str]] | None = None,
    speed: float = 1.0,
) -> ReplayStats:
    """Normalise and write every line; at recorded pace (``received_at`` gaps / ``speed``) unless ``fast``."""
    stats = ReplayStats()
    normalizers: dict[str, Normalizer] = {}
    recent = RecentIds(1_000_000)
    first_recorded: float | None = None
    started = time.monotonic()
    for line in lines:
        if not line.strip():
            continue
        stats.lines += 1
        received_at = now_iso()
        exchange = default_exchange or "unknown"
        try:
            parsed = parse_line(line)
            exchange = parsed.exchange or default_exchange or ""
            if not exchange:
                raise NormalizeError("bare message without --exchange")
            if not fast and parsed.received_at:
                first_recorded = _pace(parsed.received_at, first_recorded, started, speed)
            norm = normalizers.get(exchange)
            if norm is None:
                try:
                    norm = normalizers[exchange] = normalizer(
                        exchange, (known_symbols or {}).get(exchange, ())
                    )
                except ValueError as exc:
                    raise NormalizeError(str(exc)) from None
            trades = norm.message(parsed.message, parsed.received_at or received_at)
        except NormalizeError as exc:
            text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            writer.dead_letter(DeadLetter(exchange, str(exc), text.rstrip("\n"), received_at))
            stats.dead_lettered += 1
            continue
        if not trades:
            stats.skipped += 1
        for trade in trades:
            _write(trade, writer, recent, stats)
    return stats


def _write(trade: Trade, writer: StreamWriter, recent: RecentIds, stats: ReplayStats) -> None:
    if not recent.add((trade.exchange, *trade.dedupe_key)):
        stats.duplicates += 1
        return
    writer.write(trade)
    stats.trades += 1
    stats.by_exchange[trade.exchange] = stats.by_exchange.get(trade.exchange, 0) + 1


def _pace(received_at: str, first: float | None, started: float, speed: float) -> float:
    recorded = datetime.fromisoformat(received_at).timestamp()
    if first is None:
        return recorded
    due = started + (recorded - first) / speed
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    return first
