"""Shared CLI behaviour: one-line errors on stderr and a non-zero exit instead of tracebacks."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from coattail.settings import ConfigError


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` (first line bold when on a terminal) and exit with ``code``."""
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(code)


def run_cli(app: typer.Typer) -> None:
    """Run a typer app, turning ConfigError into a one-line error with exit code 2."""
    try:
        # Without standalone mode click returns the exit code of typer.Exit instead of raising it.
        result = app(standalone_mode=False)
        if isinstance(result, int) and result != 0:
            raise SystemExit(result)
    except ConfigError as exc:
        fail(str(exc))
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        fail("aborted", 130)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
