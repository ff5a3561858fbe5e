"""k8s-local scripts and the CI workflows."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.charts.helpers import ACTIONLINT, REPO, run

pytestmark = pytest.mark.charts

K8S_LOCAL = REPO / "k8s-local"


@pytest.mark.parametrize("script", ["up.sh", "down.sh"])
def test_scripts_parse_and_are_executable(script: str) -> None:
    path = K8S_LOCAL / script
    assert path.stat().st_mode & 0o111, f"{script} is not executable"
    result = run(["bash", "-n", path])
    assert result.returncode == 0, result.stderr


def test_spark_operator_chart_is_pinned_to_the_crd_version() -> None:
    versions = dict(
        line.split("=", 1)
        for line in (K8S_LOCAL / "versions.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    setup = (REPO / "scripts" / "setup.sh").read_text()
    crd_version = re.search(r"^SPARK_OPERATOR_VERSION=v(\S+)$", setup, re.M)
    assert crd_version
    assert versions["SPARK_OPERATOR_CHART_VERSION"] == crd_version.group(1) == "2.4.0"


def test_kind_config_and_local_services() -> None:
    config = yaml.safe_load((K8S_LOCAL / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["name"] == "coattail"
    names = {
        d["metadata"]["name"]
        for p in (K8S_LOCAL / "manifests").glob("*.yaml")
        for d in yaml.safe_load_all(p.read_text())
        if d and d["kind"] == "Service"
    }
    assert names == {"redpanda", "dynamodb-local", "minio", "iceberg-rest"}
    local = (REPO / "charts" / "coattail" / "values-local.yaml").read_text()
    for name in names:
        assert f"{name}.coattail-deps.svc.cluster.local" in local, f"values-local.yaml does not use {name}"


def test_workflows_pass_actionlint() -> None:
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = run([ACTIONLINT, "-no-color", *workflows])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_make_test_and_a_kind_job() -> None:
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = [s.get("run", "") for s in ci["jobs"]["test"]["steps"]]
    assert "make test" in steps
    kind_steps = ci["jobs"]["kind"]["steps"]
    assert any(str(s.get("uses", "")).startswith("helm/kind-action@") for s in kind_steps)
    script = "\n".join(s.get("run", "") for s in kind_steps)
    for needle in (
        "kind load docker-image",
        "k8s-local/up.sh deps",
        "helm upgrade --install coattail",
        "simulator.enabled=true",
        "/alerts",
    ):
        assert needle in script, needle
