"""Where the suite keeps the servers it shares across a session."""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from coattail.settings.paths import REPO_ROOT

_HELD: list[IO[str]] = []  # open for the whole session: the OS drops the locks when the process ends


@dataclass(frozen=True)
class SessionState:
    path: Path
    fixed: bool  # the checkout's own folder: what a killed run left in it must be stopped first


def session_state(name: str, tmp_path_factory: pytest.TempPathFactory) -> SessionState:
    """The folder of one session-wide server set: ``.state/test/<name>`` of this checkout, so a run
    killed before its teardown leaves its pid files where the next run finds and stops them (its
    logs stay until then). A second session running beside the first gets a private folder instead,
    as it holds no lock on the fixed one and must not stop servers that are in use."""
    root = REPO_ROOT / ".state" / "test"
    root.mkdir(parents=True, exist_ok=True)
    lock = (root / f"{name}.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return SessionState(tmp_path_factory.mktemp(name), fixed=False)
    _HELD.append(lock)
    return SessionState(root / name, fixed=True)
