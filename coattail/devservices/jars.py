"""Where set-up put the JVM jars and how to reach a Java runtime."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from coattail.errors import CoattailError
from coattail.settings.paths import REPO_ROOT


class MissingDependencyError(CoattailError, RuntimeError):
    pass


def jar_dir(name: str) -> Path:
    base = Path(os.environ.get("COATTAIL_JARS_DIR", REPO_ROOT / ".cache" / "jars"))
    path = base / name
    if not path.is_dir() or not any(path.glob("*.jar")):
        raise MissingDependencyError(
            f"no {name} jars in {path}; run `scripts/setup.sh jvm` (or `make setup`) first"
        )
    return path


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if candidate and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if not found:
        raise MissingDependencyError("no java on PATH; install a Java 17+ runtime or set JAVA_HOME")
    return found
