"""Fixtures of the batch tests: a private state folder (sqlite catalog, warehouse, raw zone)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from coattail.settings import Settings, load_settings

LoadSettings = Callable[..., Settings]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(state))
    return state


@pytest.fixture
def make_settings(state_dir: Path) -> LoadSettings:
    """Settings over the private state folder; keyword overrides use dotted paths."""

    def make(**overrides: Any) -> Settings:
        return load_settings("small", env={"COATTAIL_STATE_DIR": str(state_dir)}, overrides=overrides)

    return make
