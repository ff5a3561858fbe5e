"""`coattail dev cluster up|down|status|env`: the local control plane for kubectl, helm and the tests."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from coattail.cliutil import fail, state_cell
from coattail.devservices.cluster.local import APP_NAMESPACE, ClusterError, ComponentInfo, LocalCluster
from coattail.devservices.cluster.pki import PkiError
from coattail.devservices.jars import MissingDependencyError
from coattail.settings.paths import state_dir

app = typer.Typer(no_args_is_help=True, help="A local Kubernetes control plane (kwok nodes, spark-operator).")
console = Console()


def _cluster() -> LocalCluster:
    return LocalCluster(state_dir() / "cluster")


def _table(cluster: LocalCluster, infos: dict[str, ComponentInfo]) -> Table:
    table = Table(title=f"local control plane ({cluster.root})")
    for column in ("component", "state", "pid", "log"):
        table.add_column(column)
    for info in infos.values():
        state = state_cell(info.answering, info.pid)
        table.add_row(info.name, state, str(info.pid or "-"), info.log)
    return table


@app.command()
def up() -> None:
    """Start etcd, the API server, controllers, a kwok node and the spark-operator; wait until all answer."""
    cluster = _cluster()
    try:
        infos = cluster.up()
    except (ClusterError, MissingDependencyError, PkiError) as exc:
        fail(str(exc))
    console.print(_table(cluster, infos))
    console.print(
        f"export KUBECONFIG={cluster.kubeconfig}   # then: kubectl get nodes; "
        f"helm install coattail charts/coattail -n {APP_NAMESPACE} -f charts/coattail/values-local.yaml"
    )


@app.command()
def down(
    wipe: bool = typer.Option(False, help="Also delete etcd's data, the certificates and the kubeconfig."),
) -> None:
    """Stop every part of the control plane (no process is left behind)."""
    stopped = _cluster().down(wipe=wipe)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Say what runs. Exit code 1 when a part is not answering."""
    cluster = _cluster()
    infos = cluster.status()
    if as_json:
        typer.echo(json.dumps(cluster.as_dict(), indent=2))
    else:
        console.print(_table(cluster, infos))
    if not all(i.answering for i in infos.values()):
        raise typer.Exit(1)


@app.command()
def env() -> None:
    """Print the line that points kubectl and helm here: `eval "$(coattail dev cluster env)"`."""
    for key, value in _cluster().env().items():
        typer.echo(f"export {key}={value}")
