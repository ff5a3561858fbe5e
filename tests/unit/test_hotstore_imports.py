"""The pipeline and the core hot store import without the API's web stack (issue 11: Spark image)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
# Run with these made unimportable, as in an environment without the API extra (and without api/).
BLOCKER = """
import importlib.abc, sys
BLOCKED = {"fastapi", "starlette", "anyio", "uvicorn", "sse_starlette", "api"}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, Blocker())
"""


@pytest.mark.parametrize("module", ["jobs.framework.runner", "jobs.cli", "coattail.hotstore"])
def test_imports_without_the_api_stack(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"{BLOCKER}\nimport {module}"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]


def test_jobs_never_import_api() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in (REPO / "jobs").rglob("*.py")
        for n, text in enumerate(path.read_text().splitlines(), 1)
        if text.lstrip().startswith(("from api", "import api"))
    ]
    assert not offenders
