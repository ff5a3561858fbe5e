"""`coattail` command line. Each component contributes one typer sub-app, registered below."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from coattail.cliutil import fail, run_cli
from coattail.settings import ConfigError

app = typer.Typer(
    name="coattail",
    help="Coat Tail Capital: crypto smart-money detection on Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, attribute, command name, help). Groups whose module is not importable are skipped, so a
# component's CLI appears as soon as its package lands.
SUBCOMMANDS: list[tuple[str, str, str, str]] = [
    ("coattail.devcli", "app", "dev", "Start, check and stop the local Kafka broker and DynamoDB Local."),
    ("coattail.configcli", "app", "config", "Show and check the effective configuration."),
    ("coattail.infra_values", "app", "infra", "Helpers for the Terraform-provisioned AWS profile."),
    ("connectors.cli", "app", "connectors", "Run exchange connectors or replay recorded feeds."),
    ("connectors.simulate_cli", "app", "simulate", "Seeded market simulator emitting raw exchange messages."),
    ("connectors.normalize_cli", "app", "normalize", "Raw exchange messages (stdin) to TradeEvent JSONL."),
    ("jobs.cli", "pipeline_app", "pipeline", "The streaming detector pipeline on Spark."),
    ("jobs.cli", "detect_app", "detect", "Run the detectors on a bounded dataset (batch mode)."),
    ("jobs.batch.cli", "app", "batch", "Backfill, reprocessing, quality checks and catalog upkeep."),
    ("api.cli", "app", "api", "Serve the alert API and dashboard."),
]


def _register() -> None:
    for module_name, attr, name, help_text in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
                continue  # that component has not landed
            raise
        sub: Any = getattr(module, attr)
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name, help=help_text)
        else:  # a plain function: a single command
            app.command(name=name, help=help_text)(sub)


_register()


def main() -> None:
    try:
        run_cli(app)
    except ConfigError as exc:
        fail(str(exc))
    sys.exit(0)
