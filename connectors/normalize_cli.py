"""`coattail normalize`: raw exchange messages (JSONL on stdin) -> TradeEvent JSONL on stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import orjson
import typer

from coattail.cliutil import fail
from connectors.rawlines import parse_line
from connectors.registry import Normalizer, normalizer
from connectors.trade import NormalizeError, now_iso


def normalize_command(
    exchange: Annotated[
        str | None, typer.Option(help="binance | coinbase (required for bare messages)")
    ] = None,
    dead_letter: Annotated[
        Path | None, typer.Option(help="Write malformed lines here (reason + raw)")
    ] = None,
) -> None:
    """Normalise raw messages (envelope lines or bare messages); non-trade messages are skipped."""
    if exchange is not None and exchange not in ("binance", "coinbase"):
        fail(f"--exchange must be binance or coinbase, not {exchange!r}")
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
        f"normalize: {counts['trades']} trades, {counts['skipped']} non-trade messages skipped, "
        f"{counts['malformed']} malformed lines\n"
    )


def run_normalize(src: BinaryIO, out: BinaryIO, exchange: str | None, dlq: BinaryIO | None) -> dict[str, int]:
    counts = {"trades": 0, "skipped": 0, "malformed": 0}
    normalizers: dict[str, Normalizer] = {}
    for line in src:
        if not line.strip():
            continue
        try:
            parsed = parse_line(line)
            name = parsed.exchange or exchange
            if name is None:
                raise NormalizeError("bare message: pass --exchange binance|coinbase")
            if exchange is not None and name != exchange:
                counts["skipped"] += 1
                continue
            norm = normalizers.get(name)
            if norm is None:
                try:
                    norm = normalizers[name] = normalizer(name)
                except ValueError as exc:
                    raise NormalizeError(str(exc)) from None
            trades = norm.message(parsed.message, parsed.received_at or now_iso())
        except NormalizeError as exc:
            counts["malformed"] += 1
            if dlq is not None:
                raw = line.decode("utf-8", "replace").rstrip("\n")
                dlq.write(orjson.dumps({"reason": str(exc), "raw": raw}) + b"\n")
            continue
        if not trades:
            counts["skipped"] += 1
        for trade in trades:
            out.write(trade.to_json() + b"\n")
            counts["trades"] += 1
    return counts


app = normalize_command
