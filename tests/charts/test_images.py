"""Dockerfiles: multi-stage, pinned bases, non-root final stages, and every COPY source present in the
build context (the repo root, filtered by .dockerignore)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from tests.charts.helpers import REPO

pytestmark = pytest.mark.charts

DOCKERFILES = {
    "python": REPO / "images" / "python" / "Dockerfile",
    "spark": REPO / "images" / "spark" / "Dockerfile",
}


def stages(text: str) -> list[tuple[str, str, str]]:
    """(image, stage name, body) per FROM."""
    parts = re.split(r"^FROM\s+", text, flags=re.M)[1:]
    out = []
    for part in parts:
        head, _, body = part.partition("\n")
        image, _, name = head.partition(" AS ")
        out.append((image.strip(), name.strip(), body))
    return out


def ignored(rel: str) -> bool:
    """.dockerignore semantics for our file: last matching pattern wins, `!` re-includes."""
    verdict = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if (
            pattern == "**"
            or fnmatch.fnmatch(rel, pattern)
            or rel.startswith(pattern + "/")
            or fnmatch.fnmatch(rel, pattern.replace("**/", "*/"))
        ):
            verdict = not negate
    return verdict


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_dockerfile_is_multistage_pinned_and_non_root(name: str) -> None:
    text = DOCKERFILES[name].read_text()
    all_stages = stages(text)
    assert len(all_stages) >= 2, "multi-stage build expected"
    names = {s[1] for s in all_stages}
    for image, _, _ in all_stages:
        if image in names:
            continue
        assert re.search(r":[\w.-]+", image.split("/")[-1]), f"{image} is not pinned by tag"
        assert not image.endswith(":latest"), image
    final_image, _, final_body = all_stages[-1]
    users = re.findall(r"^USER\s+(\S+)", final_body, re.M)
    if not users and final_image in names:  # inherits from a named stage: look there too
        users = re.findall(r"^USER\s+(\S+)", next(s[2] for s in all_stages if s[1] == final_image), re.M)
    assert users, f"final stage of {name} sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), f"final stage of {name} runs as root"
    assert not re.search(r"apt-get install|pip install|mvn ", final_body), "build tools in the final stage"


@pytest.mark.parametrize("name", list(DOCKERFILES))
def test_copy_sources_are_in_the_build_context(name: str) -> None:
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", DOCKERFILES[name].read_text(), re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert (REPO / src).exists(), f"{name}: COPY {src}: no such file"
            assert not ignored(src.rstrip("/")), f"{name}: COPY {src} is excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_state_out() -> None:
    for rel in (".venv", ".state", ".cache", ".git", "infra", "tests", "k8s-local"):
        assert ignored(rel), f"{rel} would be sent to the docker build context"


def test_spark_image_pins_spark_and_resolves_jars_with_maven() -> None:
    text = DOCKERFILES["spark"].read_text()
    assert "FROM spark:4.1.1-scala2.13-java17-ubuntu" in text
    assert "jvm/spark/pom.xml" in text
    assert "mvn " in text
    assert Path(REPO / "images" / "spark" / "pom.xml").is_file()
