"""`coattail` command line. Each component contributes one typer sub-app, registered below."""

from __future__ import annotations

import importlib
import importlib.util
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

# Third-party modules that tell whether an extra of pyproject.toml is installed (find_spec does not
# import them, so `coattail --help` stays fast). tests/unit/test_extras.py checks them against it.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "api": ("fastapi", "uvicorn", "sse_starlette"),
    "connectors": ("confluent_kafka", "websockets", "httpx"),
    "pipeline": ("pyspark", "pyarrow", "pandas"),
    "batch": ("kubernetes", "pyiceberg", "pyarrow", "confluent_kafka", "websockets", "httpx"),
    "dev": ("confluent_kafka",),  # the local broker's topic set-up
}

# Extra each group needs (None: the core) -> (module, attribute, command name, help) of the groups.
# Groups whose module is not importable are skipped, so a component's CLI appears as soon as its
# package lands; a group whose extra is missing stays listed and says which extra to install.
SUBCOMMANDS: dict[str | None, list[tuple[str, str, str, str]]] = {
    "dev": [
        ("coattail.devcli", "app", "dev", "Start, check and stop the local Kafka broker and DynamoDB Local."),
    ],
    None: [
        ("coattail.configcli", "app", "config", "Show and check the effective configuration."),
        ("coattail.infra_values", "app", "infra", "Helpers for the Terraform-provisioned AWS profile."),
    ],
    "connectors": [
        ("connectors.cli", "app", "connectors", "Run exchange connectors or replay recorded feeds."),
        (
            "connectors.simulate_cli",
            "app",
            "simulate",
            "Seeded market simulator emitting raw exchange messages.",
        ),
        (
            "connectors.chainsim.cli",
            "app",
            "simulate-chain",
            "Deploy Uniswap V2 on a local chain and drive wallets on it, with ground truth.",
        ),
        (
            "connectors.normalize_cli",
            "app",
            "normalize",
            "Raw exchange messages (stdin) to TradeEvent JSONL.",
        ),
        ("jobs.outbound.cli", "app", "alerts", "Alerts out: deliver published alerts to webhooks."),
    ],
    "pipeline": [
        ("jobs.cli", "pipeline_app", "pipeline", "The streaming detector pipeline on Spark."),
        ("jobs.cli", "detect_app", "detect", "Run the detectors on a bounded dataset (batch mode)."),
    ],
    "batch": [
        ("jobs.batch.cli", "app", "batch", "Backfill, reprocessing, quality checks and catalog upkeep."),
    ],
    "api": [
        ("api.cli", "app", "api", "Serve the alert API and dashboard."),
    ],
}


def missing_extra_message(command: str, extra: str) -> str:
    return f"`coattail {command}` needs the '{extra}' extra: pip install 'coattail[{extra}]'"


def _extra_installed(extra: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in EXTRA_MODULES[extra])


def _missing_extra_command(name: str, help_text: str, extra: str) -> None:
    """A stand-in for a group whose extra is not installed: any invocation prints one line."""

    def stand_in() -> None:
        fail(missing_extra_message(name, extra))

    app.command(
        name=name,
        help=f"{help_text} (not installed: needs the '{extra}' extra)",
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(stand_in)


def _register() -> None:
    for extra, groups in SUBCOMMANDS.items():
        for group in groups:
            _register_group(extra, *group)


def _register_group(extra: str | None, module_name: str, attr: str, name: str, help_text: str) -> None:
    if extra is not None and not _extra_installed(extra):
        _missing_extra_command(name, help_text, extra)
        return
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return  # that component has not landed
        raise
    sub: Any = getattr(module, attr)
    if isinstance(sub, typer.Typer):
        app.add_typer(sub, name=name, help=help_text)
    else:  # a plain function: a single command
        app.command(name=name, help=help_text)(sub)


def _extra_providing(module: str | None) -> str | None:
    top = (module or "").partition(".")[0]
    return next((extra for extra, names in EXTRA_MODULES.items() if top in names), None)


_register()


def main() -> None:
    try:
        run_cli(app)
    except ConfigError as exc:
        fail(str(exc))
    except ModuleNotFoundError as exc:
        # A command whose own extra is installed can still reach into another one lazily (the batch
        # Spark steps run on pyspark, from the 'pipeline' extra).
        extra = _extra_providing(exc.name)
        if extra is None:
            raise
        command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "")
        missing = (exc.name or "").partition(".")[0]
        fail(f"{missing_extra_message(command, extra)} ({missing} is not installed)")
    sys.exit(0)
