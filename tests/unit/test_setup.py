"""The set-up is idempotent: once it has run, a second run only verifies (no download, no build)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
DOING_WORK = ("resolving", "building", "go install", "fetching", "installing")


def test_second_setup_run_only_verifies() -> None:
    result = subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "PIP_NO_INDEX": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("[setup]")]
    working = [line for line in lines if any(word in line for word in DOING_WORK)]
    assert not working, f"a second set-up run did work: {working}"
    assert lines[-1] == "[setup] set-up complete"
