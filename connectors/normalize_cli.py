"""`coattail normalize`: raw exchange messages (JSONL on stdin) -> TradeEvent JSONL on stdout, or with
``--source ethereum|solana`` raw RPC objects -> OnchainEvent JSONL.

Every input line ends exactly once as one of: trades/events (a line can hold several, Coinbase batches,
a block), a dead letter (reason + raw line) or ignored (a known control message such as a heartbeat or
a subscription reply, an envelope of another exchange than ``--exchange``, a log that is none of ours,
or a blank line). The summary on stderr adds up: lines = lines with output + ignored + dead-lettered.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, BinaryIO

import orjson
import typer

from coattail.cliutil import fail
from connectors.chain_lines import load_price_book
from connectors.chain_lines import run_normalize as run_chain_lines
from connectors.rawlines import dead_letter_reason, parse_line
from connectors.registry import CHAINS, EXCHANGES, Normalizer, normalizer
from connectors.trade import NormalizeError, now_iso

# Offline, a price file may be sparse (a few trades per hour): a price up to this old at the block time
# counts, and the file's whole history is kept (blocks of any hour in it are valued).
PRICES_MAX_AGE = timedelta(hours=1)
PRICES_KEEP = timedelta(days=36_500)


def normalize_command(
    exchange: Annotated[
        str | None, typer.Option(help=f"{' | '.join(EXCHANGES)} (required for bare messages)")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(help=f"{' | '.join(CHAINS)}: raw RPC objects (logs, transactions, blocks) instead"),
    ] = None,
    prices: Annotated[
        Path | None, typer.Option(help="--source: TradeEvent JSONL whose prices value the events (usd_value)")
    ] = None,
    tokens: Annotated[
        list[Path] | None, typer.Option(help="--source: extra token registry YAML files (repeatable)")
    ] = None,
    dead_letter: Annotated[
        Path | None, typer.Option(help="Write malformed lines here (reason + raw)")
    ] = None,
) -> None:
    """Normalise raw messages (envelope lines or bare messages); control messages are ignored."""
    if source is not None:
        if exchange is not None:
            fail("--source and --exchange exclude each other: one kind of input per run")
        _normalize_chain(source.lower(), prices, tokens or [], dead_letter)
        return
    if prices is not None or tokens:
        fail("--prices and --tokens value on-chain events: use them with --source ethereum|solana")
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


def _normalize_chain(chain: str, prices: Path | None, tokens: list[Path], dead_letter: Path | None) -> None:
    from coattail.chains.tokens import TokenRegistryError, load_registry
    from coattail.chains.valuation import PriceBook

    if chain not in CHAINS:
        fail(f"--source must be one of {', '.join(sorted(CHAINS))}, not {chain!r}")
    try:
        registry = load_registry(chain, tokens)
    except TokenRegistryError as exc:
        fail(str(exc))
    book = PriceBook(max_age=PRICES_MAX_AGE, keep=PRICES_KEEP)
    if prices is not None:
        try:
            load_price_book(prices, book)
        except ValueError as exc:
            fail(str(exc))
    try:
        dlq = dead_letter.open("wb") if dead_letter else None
    except OSError as exc:
        fail(f"cannot write {dead_letter}: {exc.strerror}")
    try:
        norm = CHAINS[chain].normalizer(registry, book)
        counts = run_chain_lines(sys.stdin.buffer, sys.stdout.buffer, norm, dlq)
    except OSError as exc:
        fail(f"cannot read the input: {exc}")
    finally:
        if dlq:
            dlq.close()
    sys.stdout.flush()
    sys.stderr.write(
        f"normalize: {counts['lines']} lines: {counts['events']} {chain} events from {counts['event_lines']} "
        f"lines, {counts['ignored']} ignored (none of our events, blank lines), "
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
