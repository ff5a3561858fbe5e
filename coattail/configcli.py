"""`coattail config show|check`: the effective configuration after tier and environment overrides."""

from __future__ import annotations

import json

import typer
import yaml

from coattail.settings import load_settings

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
    typer.echo(
        f"ok: profile {settings.profile}, tier {settings.tier}, modules {', '.join(settings.active_modules)}"
    )
