"""`coattail normalize`: raw exchange messages (JSONL on stdin) -> TradeEvent JSONL on stdout.

Every input line ends exactly once as one of: trades (a line can hold several, Coinbase batches), a
dead letter (reason + raw line) or ignored (a known control message such as a heartbeat or a
subscription reply, an envelope of another exchange than ``--exchange``, or a blank line). The
summary on stderr adds up: lines = lines with trades + ignored + dead-lettered.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import orjson
import typer

from coattail.cliutil import fail
from connectors.rawlines import dead_letter_reason, parse_line
from connectors.registry import EXCHANGES, Normalizer, normalizer
from connectors.trade import NormalizeError, now_iso


def normalize_command(
    exchange: Annotated[
        str | None, typer.Option(help=f"{' | '.join(EXCHANGES)} (required for bare messages)")
    ] = None,
    dead_letter: Annotated[
        Path | None, typer.Option(help="Write malformed lines here (reason + raw)")
    ] = None,
) -> None:
    """Normalise raw messages (envelope lines or bare messages); control messages are ignored."""
    if exchange is not None:
        exchange = exchange.lower()
        if exchange not in EXCHANGES:
            fail(f"--exchange must be one of {', '.join(sorted(EXCHANGES))}, not {exchange!r}")
    try:
        dlq = dead_letter.open("wb") if dead_letter else None
    except OSError as exc:
        fail(f"cannot write {dead_letter}: {exc.strerror}")
    try:
        counts = run_normalize(sys.stdin.buffer, sys.stdout.buffer, exchange, dlq)
    except OSError as exc:
        fail(f"cannot read the input: {exc}")
    finally:
        if dlq:
            dlq.close()
    sys.stdout.flush()
    sys.stderr.write(
        f"normalize: {counts['lines']} lines: {counts['trades']} trades from {counts['trade_lines']} "
        f"lines, {counts['ignored']} ignored (control messages, other exchanges, blank lines), "
        f"{counts['dead_lettered']} dead-lettered\n"
    )


def run_normalize(src: BinaryIO, out: BinaryIO, exchange: str | None, dlq: BinaryIO | None) -> dict[str, int]:
    """Normalise every line of ``src``; counts: lines = trade_lines + ignored + dead_lettered."""
    counts = {"lines": 0, "trades": 0, "trade_lines": 0, "ignored": 0, "dead_lettered": 0}
    normalizers: dict[str, Normalizer] = {}
    for line in src:
        counts["lines"] += 1
        if not line.strip():
            counts["ignored"] += 1
            continue
        try:
            parsed = parse_line(line)
            name = parsed.exchange or exchange
            if name is None:
                raise NormalizeError(f"bare message: pass --exchange {'|'.join(EXCHANGES)}")
            if exchange is not None and name != exchange:
                counts["ignored"] += 1
                continue
            norm = normalizers.get(name)
            if norm is None:
                try:
                    norm = normalizers[name] = normalizer(name)
                except ValueError as exc:
                    raise NormalizeError(str(exc)) from None
            trades = norm.message(parsed.message, parsed.received_at or now_iso())
        except Exception as exc:  # one bad line must never stop the rest
            counts["dead_lettered"] += 1
            if dlq is not None:
                raw = line.decode("utf-8", "replace").rstrip("\n")
                dlq.write(orjson.dumps({"reason": dead_letter_reason(exc), "raw": raw}) + b"\n")
            continue
        if not trades:
            counts["ignored"] += 1
            continue
        counts["trade_lines"] += 1
        for trade in trades:
            out.write(trade.to_json() + b"\n")
        counts["trades"] += len(trades)
    return counts


app = normalize_command
