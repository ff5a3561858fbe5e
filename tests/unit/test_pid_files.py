"""Pid files: a recorded process is found again, and a pid reused by another process is not (what
`coattail dev down` and the suite's reaping of a killed run would otherwise kill)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coattail.devservices.process import read_pid, spawn, stop

pytestmark = pytest.mark.unit


def test_a_spawned_process_is_found_by_its_pid_file_until_it_stops(tmp_path: Path) -> None:
    pid_path = tmp_path / "sleeper.pid"
    pid = spawn([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "sleeper.log", pid_path)
    try:
        assert len(pid_path.read_text().split()) == 2  # pid and start time
        assert read_pid(pid_path) == pid
    finally:
        stop(pid, grace_seconds=5)
    assert read_pid(pid_path) is None


def test_a_pid_reused_by_another_process_is_not_ours(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            pid_path = tmp_path / "stale.pid"
            pid_path.write_text(f"{other.pid} 1")  # same pid, another start time: not the process we started
            assert read_pid(pid_path) is None
            pid_path.write_text(str(other.pid))  # a pid file without a start time (older format)
            assert read_pid(pid_path) == other.pid
        finally:
            other.kill()


@pytest.mark.parametrize("content", ["", "abc", "12x 3"])
def test_an_unreadable_pid_file_names_no_process(tmp_path: Path, content: str) -> None:
    pid_path = tmp_path / "bad.pid"
    pid_path.write_text(content)
    assert read_pid(pid_path) is None
