"""Shared CLI behaviour: one-line errors on stderr and a non-zero exit instead of tracebacks."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer

from coattail.errors import CoattailError
from coattail.settings import ConfigError

_CLICK_EXCEPTION: type[Any] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` (first line bold when on a terminal) and exit with ``code``."""
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(code)


def state_cell(answering: bool, pid: int | None) -> str:
    """The state column of `coattail dev status` and `coattail dev cluster status` (rich markup)."""
    return "[green]answering" if answering else ("[yellow]not answering" if pid else "[red]stopped")


def run_cli(app: typer.Typer) -> None:
    """Run a typer app: a ConfigError is one line and exit 2, any other CoattailError one line and exit 1."""
    try:
        # Without standalone mode click returns the exit code of typer.Exit instead of raising it.
        result = app(standalone_mode=False)
        if isinstance(result, int) and result != 0:
            raise SystemExit(result)
    except ConfigError as exc:
        fail(str(exc))
    except CoattailError as exc:  # a service down, bad input, …: our errors are one sentence already
        fail(str(exc), 1)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        fail("aborted", 130)
    except Exception as exc:
        # Usage errors. typer >= 0.2x carries its own copy of click (and click itself may not be
        # installed), so take ClickException from typer's public BadParameter rather than `click`.
        if isinstance(exc, _CLICK_EXCEPTION):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
