"""`coattail connectors run|replay|plan`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import orjson
import typer

from coattail.settings import load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command()
def run(
    exchange: Annotated[
        list[str] | None,
        typer.Option(help="Only these exchanges or chains (ethereum, solana; default: the tier's)"),
    ] = None,
    tier: Annotated[str | None, typer.Option(help="Tier to load (default: config)")] = None,
    log_level: Annotated[str, typer.Option(help="Log level")] = "INFO",
) -> None:
    """Stream the configured exchanges (trades) and chains (on-chain events) to the configured streams
    until SIGTERM (SYMBOLS env partitions the exchanges' instruments)."""
    from connectors.logs import setup_json_logging
    from connectors.manager import ConnectorManager, plan_connectors

    setup_json_logging(log_level)
    settings = load_settings(tier)
    plan, chains = plan_connectors(settings, os.environ.get("SYMBOLS", ""), exchange or None)

    async def main() -> int:
        manager = ConnectorManager(settings, plan, chains=chains)
        return await manager.run()

    code = asyncio.run(main())
    raise SystemExit(code)


@app.command()
def plan(tier: Annotated[str | None, typer.Option(help="Tier to load")] = None) -> None:
    """Print which exchange/symbols this pod would stream (after SYMBOLS) and the spread pairs
    MOD-003 compares among the tier's venues (every pair of an equivalence group)."""
    from connectors.manager import plan_symbols
    from jobs.logic import spread_pairs

    settings = load_settings(tier)
    streams = plan_symbols(settings, os.environ.get("SYMBOLS", ""))
    active = [f"{ex}:{s}" for ex in settings.active_connectors for s in settings.instruments.get(ex, [])]
    pairs = [f"{p.a} vs {p.b}" for p in spread_pairs(settings.equivalences, active)]
    typer.echo(orjson.dumps({"streams": streams, "spread_pairs": pairs}).decode())


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="Raw-message JSONL ('-' for stdin)")],
    fast: Annotated[
        bool, typer.Option("--fast", help="As fast as possible instead of the recorded pace")
    ] = False,
    exchange: Annotated[str | None, typer.Option(help="Exchange of bare (non-envelope) lines")] = None,
    speed: Annotated[float, typer.Option(help="Pace multiplier when not --fast")] = 1.0,
) -> None:
    """Replay raw exchange messages through normalise -> writer to the configured stream.

    SIGTERM/SIGINT: stop reading, flush, print the report, exit 143/130.
    """
    from connectors.replay import replay_cli

    code = replay_cli(file, fast=fast, exchange=exchange, speed=speed)
    if code:
        raise SystemExit(code)
