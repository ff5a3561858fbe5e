"""Where the config and the local state live.

From a checkout, ``config/`` and ``.state/`` sit at the repository root; in an image the chart sets
COATTAIL_CONFIG_DIR (read-only ConfigMap) and COATTAIL_STATE_DIR (a writable emptyDir).
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def config_dir() -> Path:
    explicit = os.environ.get("COATTAIL_CONFIG_DIR")
    return Path(explicit).expanduser().resolve() if explicit else REPO_ROOT / "config"


def state_dir() -> Path:
    explicit = os.environ.get("COATTAIL_STATE_DIR")
    return Path(explicit).expanduser().resolve() if explicit else REPO_ROOT / ".state"
