"""`coattail config show|check`: the effective configuration after tier and environment overrides."""

from __future__ import annotations

import json
from pathlib import Path

import typer
import yaml

from coattail.settings import load_settings
from coattail.settings.secrets import read_api_keys

app = typer.Typer(no_args_is_help=True)


@app.command()
def show(
    tier: str | None = typer.Option(None, help="Tier to apply (default: the config's `tier`)."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of YAML."),
) -> None:
    """Print the effective configuration: features.yaml + tier + COATTAIL_* overrides."""
    settings = load_settings(tier)
    data = settings.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False), nl=False)


@app.command()
def check(tier: str | None = typer.Option(None, help="Tier to apply.")) -> None:
    """Validate the configuration; prints one line and exits non-zero when it is wrong."""
    settings = load_settings(tier)
    keys_file = settings.api.api_keys_file
    if keys_file and not Path(keys_file).exists():
        # A Secret mounted only in the API's pod: checked there, when the API starts (fail closed).
        auth = f"API keys file {keys_file} not present here (the API checks it on start)"
    else:
        keys = read_api_keys(settings.api)  # a keys file that is set must hold keys
        auth = f"{len(keys)} API key(s)" if keys else "no API keys (auth off)"
    typer.echo(
        f"ok: profile {settings.profile}, tier {settings.tier}, "
        f"modules {', '.join(settings.active_modules)}, {auth}"
    )
