"""`coattail dev cluster status|env|up` as a developer runs them, against the session's cluster."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.charts.helpers import COATTAIL
from tests.cluster.conftest import Kube

pytestmark = pytest.mark.cluster


def _cli(kube: Kube, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    state = str(kube.cluster.root.parent)
    return subprocess.run(
        [str(COATTAIL), "dev", "cluster", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COATTAIL_STATE_DIR": state, **env},
    )  # fmt: skip


def test_status_reports_every_component_answering(kube: Kube) -> None:
    done = _cli(kube, "status", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["kubeconfig"] == str(kube.cluster.kubeconfig)
    assert {c["name"] for c in report["components"].values() if c["answering"]} == set(report["components"])
    assert "kube-apiserver" in report["components"]
    assert "spark-operator-webhook" in report["components"]


def test_env_points_kubectl_at_the_cluster(kube: Kube) -> None:
    done = _cli(kube, "env")
    assert done.stdout.strip() == f"export KUBECONFIG={kube.cluster.kubeconfig}"
    version = kube.kubectl("version", "-o", "json")
    assert json.loads(version.stdout)["serverVersion"]["gitVersion"] == "v1.34.4"


def test_up_without_the_binaries_says_how_to_build_them(kube: Kube, tmp_path: object) -> None:
    done = _cli(kube, "up", COATTAIL_CLUSTER_BIN="/nonexistent/bin", COATTAIL_STATE_DIR=str(tmp_path))
    assert done.returncode == 2
    assert "scripts/setup.sh cluster" in done.stderr
    assert "Traceback" not in done.stderr
