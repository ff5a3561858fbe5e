"""Installed size of each image's Python environment, before and after the per-component extras.

    python3.11 benchmarks/image_sizes.py [--work /tmp/image-sizes] [--only NAME ...] [--keep]

No Docker engine is needed: for each image a fresh venv (``--work``/size-<name>) gets what its
Dockerfile installs -- the runtime requirements of its extras from pyproject.toml, then our package
with ``--no-deps`` from a copy of the packages the image ships -- reusing pip's cache, and ``du``
measures site-packages without bytecode. "before" is what every image installed until the extras
existed: the whole runtime set (the core plus every component extra); the Spark image leaves pyspark
to the Spark distribution, then and now. Prints one Markdown table row per image and the ratio
after/before; the README's "Images" table comes from here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COMPONENT_EXTRAS = ("api", "connectors", "pipeline", "batch")
ALL_PACKAGES = ("coattail", "connectors", "jobs", "api")


@dataclass(frozen=True)
class Install:
    """One image's pip step: extras, distributions it leaves out, the packages it ships."""

    name: str
    extras: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    packages: tuple[str, ...] = ALL_PACKAGES
    only_binary: bool = True  # images/python sets PIP_ONLY_BINARY=:all:


# (image, before, after). The Python image's default EXTRAS serve the chart's one coattail/python
# image (connectors, api, batch CronJob); the lean per-component builds use --build-arg EXTRAS=...
IMAGES: list[tuple[str, Install, Install]] = [
    (
        "python (default: connectors, api, batch)",
        Install("python-before", COMPONENT_EXTRAS, only_binary=False),  # pyspark ships no wheel
        Install("python", ("api", "connectors", "batch")),
    ),
    (
        "python, `--build-arg EXTRAS=api`",
        Install("python-before", COMPONENT_EXTRAS, only_binary=False),
        Install("api", ("api",)),
    ),
    (
        "python, `--build-arg EXTRAS=connectors`",
        Install("python-before", COMPONENT_EXTRAS, only_binary=False),
        Install("connectors", ("connectors",)),
    ),
    (
        "spark (pipeline, batch; pyspark from Spark)",
        Install("spark-before", COMPONENT_EXTRAS, exclude=("pyspark",), only_binary=False),
        Install(
            "spark",
            ("pipeline", "batch"),
            exclude=("pyspark",),
            packages=("coattail", "connectors", "jobs"),
            only_binary=False,
        ),
    ),
]


def dist_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group()).lower()


def requirements(project: dict[str, Any], extras: tuple[str, ...], exclude: tuple[str, ...]) -> list[str]:
    """The core dependencies plus those of ``extras``, self-references (coattail[x]) expanded."""
    optional: dict[str, list[str]] = project["optional-dependencies"]
    out: set[str] = set(project["dependencies"])
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in optional[extra]:
            if dist_name(req) == project["name"]:
                todo += re.findall(r"[\w-]+", req.partition("[")[2].partition("]")[0])
            else:
                out.add(req)
    return sorted(r for r in out if dist_name(r) not in exclude)


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def size_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0]) / 1024


def fresh_venv(venv: Path) -> Path:
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return venv


def without_bytecode_mb(venv: Path) -> float:
    for cache in site_packages(venv).rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    return size_mb(site_packages(venv))


def measure(install: Install, project: dict[str, Any], work: Path, keep: bool) -> float:
    """site-packages MB of a venv that holds what the image's pip step installs."""
    venv = work / f"size-{install.name}"
    if keep and (venv / ".installed").exists():
        return without_bytecode_mb(venv)
    fresh_venv(venv)
    src = work / f"src-{install.name}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for pkg in install.packages:
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    reqs = work / f"requirements-{install.name}.txt"
    reqs.write_text("\n".join(requirements(project, install.extras, install.exclude)) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if install.only_binary:
        env["PIP_ONLY_BINARY"] = ":all:"
    subprocess.run([*pip, "-r", str(reqs)], check=True, env=env)
    subprocess.run([*pip, "--no-deps", str(src)], check=True, env=env)
    (venv / ".installed").touch()
    return without_bytecode_mb(venv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/image-sizes"))
    parser.add_argument("--only", nargs="*", help="after-install names to measure (python, api, ...)")
    parser.add_argument("--keep", action="store_true", help="reuse the venvs of an earlier complete run")
    args = parser.parse_args()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    args.work.mkdir(parents=True, exist_ok=True)
    empty = without_bytecode_mb(fresh_venv(args.work / "size-empty"))  # pip and setuptools
    sizes: dict[str, float] = {}
    print(f"measured {datetime.now(UTC):%Y-%m-%d} with {sys.executable} ({os.cpu_count()} CPUs);")
    print(f"installed = site-packages without bytecode minus an empty venv's ({empty:.0f} MB)")
    print("| image | extras | installed before → after | after / before |")
    print("|---|---|---|---|")
    for image, before, after in IMAGES:
        if args.only and after.name not in args.only:
            continue
        for install in (before, after):
            if install.name not in sizes:
                sizes[install.name] = measure(install, project, args.work, args.keep) - empty
        old, new = sizes[before.name], sizes[after.name]
        extras = ",".join(after.extras) + (f" minus {','.join(after.exclude)}" if after.exclude else "")
        print(f"| {image} | `{extras}` | {old:.0f} MB → {new:.0f} MB | {new / old:.2f} |", flush=True)


if __name__ == "__main__":
    main()
