"""Shared helpers for the chart, image, Tiltfile and workflow checks (tests/charts)."""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "coattail"
TOOLS = REPO / ".tools" / "bin"
HELM = TOOLS / "helm"
KUBECONFORM = TOOLS / "kubeconform"
ACTIONLINT = TOOLS / "actionlint"
HELM_DOCS = TOOLS / "helm-docs"
VENV_BIN = REPO / ".venv" / "bin"
COATTAIL = VENV_BIN / "coattail"
CRD_SCHEMAS = REPO / ".cache" / "crds" / "schemas"
K8S_VERSION = "1.33.0"
K8S_SCHEMAS = REPO / ".cache" / "k8s-schemas"

# Profiles: name -> values files (relative to the chart), layered in order.
PROFILES: dict[str, tuple[str, ...]] = {
    "default": (),
    "local": ("values-local.yaml",),
    "eks": ("values-eks.yaml",),
    "all-features": ("values-local.yaml", "ci/all-features-values.yaml"),
    "stopped": ("values-eks.yaml", "ci/stopped-values.yaml"),
}
TIERS = ("small", "medium", "large")
# The seed §8.2 alarms the chart's PrometheusRule raises (tests/charts and tests/monitoring).
SEED_ALARMS = frozenset(
    {
        "CoattailQualityScoreLow",
        "CoattailStreamLagHigh",
        "CoattailConnectorNoTrades",
        "CoattailApi5xxRate",
        "CoattailBatchFailed",
        "CoattailBatchStale",
    }
)
# helm-unittest suites mirror the template tree: tests/<component>/<kind>_test.yaml.
UNITTEST_GLOB = "tests/**/*_test.yaml"
Doc = dict[str, Any]


def helm_env() -> dict[str, str]:
    """Helm with private, empty state (no repos, no cache from the user) and our plugins."""
    base = REPO / ".cache" / "helm-test"
    return {
        **os.environ,
        "HELM_PLUGINS": str(REPO / ".tools" / "helm-plugins"),
        "HELM_CACHE_HOME": str(base / "cache"),
        "HELM_CONFIG_HOME": str(base / "config"),
        "HELM_DATA_HOME": str(base / "data"),
    }


def run(
    argv: list[str | Path], *, env: Mapping[str, str] | None = None, timeout: float = 120, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        check=False,
    )


def value_args(profile: str, tier: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    args: list[str] = []
    for name in PROFILES[profile]:
        args += ["-f", str(CHART / name)]
    if tier:
        args += ["--set", f"tier={tier}"]
    for item in extra:
        args += ["--set", item]
    return args


@functools.cache
def render_text(
    profile: str,
    tier: str | None = None,
    extra: tuple[str, ...] = (),
    release: str = "coattail",
    namespace: str = "coattail",
) -> str:
    result = run(
        [
            HELM,
            "template",
            release,
            CHART,
            "--namespace",
            namespace,
            "--kube-version",
            K8S_VERSION,
            *value_args(profile, tier, extra),
        ],
        env=helm_env(),
    )
    assert result.returncode == 0, f"helm template {profile}/{tier} failed:\n{result.stderr}"
    return result.stdout


def render(profile: str, tier: str | None = None, extra: tuple[str, ...] = ()) -> list[Doc]:
    return [d for d in yaml.safe_load_all(render_text(profile, tier, extra)) if d]


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def pod_specs(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod spec) of every Deployment, Job and CronJob."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
