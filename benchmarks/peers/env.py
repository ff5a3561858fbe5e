"""The peers' own Python environment and jar cache, kept apart from the project's .venv.

PyFlink and quixstreams bring their own pins (apache-beam, pyarrow, a second confluent-kafka); installing
them into .venv would move the project's versions. So ``ensure()`` creates ``.cache/peers/venv`` from
``requirements.txt`` and the Flink Kafka connector jar from ``pom.xml`` (``mvn dependency:copy``), and
writes a stamp of both files: a second run only verifies (imports, jar present, stamp matches).

    .venv/bin/python benchmarks/peers/env.py          # create or verify, print where things are
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = REPO / ".cache" / "peers"
VENV = CACHE / "venv"
JARS = CACHE / "jars"
STAMP = CACHE / "stamp"
REQUIREMENTS = HERE / "requirements.txt"
POM = HERE / "pom.xml"
# What a working environment must import; a broken or half-finished install fails here, not mid-run.
CHECK = "import pyflink.table, pyflink.datastream, quixstreams, confluent_kafka, orjson"


class PeerEnvError(RuntimeError):
    """The peers' environment could not be created or verified (the message says which step)."""


@dataclass(frozen=True)
class PeerEnv:
    python: Path
    jars: list[Path]


def _key() -> str:
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, POM):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(step: str, cmd: list[str], cwd: Path | None = None, timeout: float = 1800) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerEnvError(f"{step}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        raise PeerEnvError(f"{step} failed (exit {done.returncode}):\n" + "\n".join(tail))


def _python() -> Path:
    return VENV / "bin" / "python"


def _base_python() -> str:
    """The interpreter .venv was made from: the same Python version for the peers."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _jars() -> list[Path]:
    return sorted(JARS.glob("flink-sql-connector-kafka-*.jar"))


def verify() -> PeerEnv:
    """The environment as it is, or PeerEnvError saying what is missing or stale."""
    if not STAMP.exists() or STAMP.read_text().strip() != _key():
        raise PeerEnvError(f"{CACHE} is missing or older than requirements.txt/pom.xml")
    if not _jars():
        raise PeerEnvError(f"no flink-sql-connector-kafka jar in {JARS}")
    _run("importing the peer libraries", [str(_python()), "-c", CHECK], timeout=120)
    return PeerEnv(_python(), _jars())


def ensure(quiet: bool = False) -> PeerEnv:
    """Verify the environment; (re)build it first when the stamp is missing or stale."""
    try:
        return verify()
    except PeerEnvError as why:
        if not quiet:
            print(f"peers env: building ({why})", flush=True)
    if not _python().exists():
        _run("creating the venv", [_base_python(), "-m", "venv", str(VENV)])
    _run("pip install", [str(_python()), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)])
    if shutil.which("mvn") is None:
        raise PeerEnvError("mvn is not on PATH (needed for the Flink Kafka connector jar)")
    for old in _jars():  # a connector version change must not leave two jars on Flink's class path
        old.unlink()
    _run("mvn dependency:copy", ["mvn", "-q", "-B", "dependency:copy", f"-DoutputDirectory={JARS}"], cwd=HERE)
    STAMP.write_text(_key() + "\n")
    return verify()


if __name__ == "__main__":
    try:
        env = ensure()
    except PeerEnvError as exc:
        sys.exit(f"peers env: {exc}")
    print(f"peers env ok: {env.python}; jars: {', '.join(j.name for j in env.jars)}")
