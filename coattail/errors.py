"""The project's exceptions share one base, and validation problems one one-line formatter.

Every error meant for a user (a bad config, input, request, or a service that is down) derives from
:class:`CoattailError`, whose ``str()`` is one sentence; the CLIs print it as ``error: …`` and exit
non-zero instead of showing a traceback. Subclasses keep their builtin kind (``ValueError`` …) as a
second base where callers catch that.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class CoattailError(Exception):
    """Base of the project's user-facing errors; ``str(err)`` is one line that says what is wrong."""


@dataclass(frozen=True)
class Problem:
    """The first of a list of validation problems (pydantic's or FastAPI's ``errors()``)."""

    loc: tuple[str, ...]
    where: str
    message: str
    error: Mapping[str, Any]
    others: int

    @property
    def more(self) -> str:
        return f"; {self.others} more problem(s)" if self.others else ""

    def line(self) -> str:
        """``where: message; N more problem(s)``."""
        return f"{self.where}: {self.message}{self.more}"


def first_problem(
    errors: Sequence[Mapping[str, Any]],
    *,
    prefix: Sequence[str] = (),
    skip: Collection[str] = (),
    fallback: str = "payload",
    unknown: str = "unknown field",
) -> Problem:
    """The first problem with its dotted location (after ``prefix``, without the ``skip`` parts such as
    FastAPI's "query"), its message without pydantic's "Value error, " prefix (``unknown`` for an
    extra key) and how many others there are — so every one-line error reads the same."""
    first = errors[0]
    loc = (*prefix, *(str(p) for p in first.get("loc", ()) if str(p) not in skip))
    message = unknown if first.get("type") == "extra_forbidden" else str(first.get("msg", "invalid value"))
    where = ".".join(loc) or fallback
    return Problem(loc, where, message.removeprefix("Value error, "), first, len(errors) - 1)
