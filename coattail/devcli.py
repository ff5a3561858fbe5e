"""`coattail dev up|down|status`: the local Kafka broker, DynamoDB Local and (on-chain tiers) anvil."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from coattail.cliutil import fail, state_cell
from coattail.devservices import DevServices, ServiceError, ServiceInfo
from coattail.devservices.cluster.cli import app as cluster_app
from coattail.devservices.jars import MissingDependencyError
from coattail.settings import load_settings
from coattail.settings.paths import state_dir

app = typer.Typer(no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")
console = Console()


def _services(chain: bool = False, block_time: float | None = None) -> DevServices:
    return DevServices(state_dir(), chain=chain, block_time=block_time)


def needs_chain(tier: str | None) -> bool:
    """A tier streaming Ethereum needs a local node to read from (config/tiers/*.yaml `connectors:`)."""
    return "ethereum" in load_settings(tier).active_connectors


def _table(infos: dict[str, ServiceInfo]) -> Table:
    table = Table(title=f"local services ({state_dir() / 'dev'})")
    for column in ("service", "state", "address", "pid", "log"):
        table.add_column(column)
    for info in infos.values():
        state = state_cell(info.answering, info.pid)
        table.add_row(info.name, state, info.address or "-", str(info.pid or "-"), info.log)
    return table


@app.command()
def up(
    tier: str | None = typer.Option(None, help="Tier whose services to start (default: config)."),
    chain: bool | None = typer.Option(
        None,
        "--chain/--no-chain",
        help="Start anvil or not (default: when the tier has the ethereum connector).",
    ),
    block_time: float | None = typer.Option(
        None, min=0.1, help="anvil mines a block every this many seconds (default: one per transaction)."
    ),
) -> None:
    """Start Kafka (KRaft), DynamoDB Local and, for on-chain tiers, anvil; wait until each answers."""
    with_chain = needs_chain(tier) if chain is None else chain
    try:
        infos = _services(with_chain, block_time).up()
    except (ServiceError, MissingDependencyError) as exc:
        fail(str(exc))
    console.print(_table(infos))


@app.command()
def down(wipe: bool = typer.Option(False, help="Also delete the services' data.")) -> None:
    """Stop the local services (no process is left behind)."""
    stopped = _services().down(wipe=wipe)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Say what runs where. Exit code 1 when a service is not answering."""
    services = _services()
    infos = services.status()
    if as_json:
        typer.echo(json.dumps(services.as_dict(), indent=2))
    else:
        console.print(_table(infos))
    if not all(i.answering for i in infos.values()):
        raise typer.Exit(1)
