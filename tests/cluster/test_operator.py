"""The release under real controllers: the spark-operator submits the pipeline (spark-submit for real,
its webhook shaping the driver pod), the CronJob's Job completes, `make stop` / `make start` switch
streaming off and on, and `helm upgrade` with a changed value rolls out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.checks import assert_release_healthy
from tests.cluster.conftest import Release, wait_until

pytestmark = pytest.mark.cluster


def _app_state(release: Release) -> str:
    app = release.one("sparkapplications", "pipeline")
    return str(((app.get("status") or {}).get("applicationState") or {}).get("state", ""))


def _driver(release: Release) -> dict[str, Any] | None:
    app = release.one("sparkapplications", "pipeline")["metadata"]["name"]
    pods = release.kube.items(
        "pods", release.namespace, f"spark-role=driver,sparkoperator.k8s.io/app-name={app}"
    )
    return pods[0] if pods else None


def test_spark_application_runs_with_our_driver_pod(release: Release) -> None:
    wait_until(
        lambda: _app_state(release) == "RUNNING",
        what="the SparkApplication to reach RUNNING",
        timeout=180,
        every=2,
    )
    app = release.one("sparkapplications", "pipeline")
    pod = _driver(release)
    assert pod is not None
    assert pod["status"]["phase"] == "Running"
    spec = pod["spec"]
    driver_spec = app["spec"]["driver"]
    # Service account, ConfigMap env and security context come from our spec: spark-submit sets the
    # first, the operator's mutating webhook the others (without it PodSecurity would refuse the pod).
    assert spec["serviceAccountName"] == driver_spec["serviceAccount"]
    container = next(c for c in spec["containers"] if c["name"] == "spark-kubernetes-driver")
    assert container.get("envFrom") == driver_spec["envFrom"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    for item in driver_spec.get("env", []):
        if "value" in item:
            assert env.get(item["name"]) == item["value"], item["name"]
    assert spec["securityContext"].get("runAsNonRoot") is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    config_maps = {c["metadata"]["name"] for c in release.kube.items("configmaps", release.namespace)}
    for source in driver_spec["envFrom"]:
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] in config_maps
    labels = pod["metadata"]["labels"]
    assert labels.get("sparkoperator.k8s.io/app-name") == app["metadata"]["name"]
    assert labels.get("sparkoperator.k8s.io/mutated-by-spark-operator") == "true", "the webhook ran"


def test_the_cronjob_job_completes(release: Release) -> None:
    kube, ns = release.kube, release.namespace
    cron = release.one("cronjobs")["metadata"]["name"]
    kube.kubectl("-n", ns, "create", "job", f"{cron}-manual", f"--from=cronjob/{cron}")
    kube.kubectl(
        "-n", ns, "wait", "--for=condition=Complete", f"job/{cron}-manual", "--timeout=90s", timeout=120
    )
    kube.kubectl("-n", ns, "delete", "job", f"{cron}-manual", "--wait=true")


def _connector_replicas(release: Release) -> dict[str, int]:
    deps = release.kube.items("deployments", release.namespace)
    return {
        d["metadata"]["name"]: d["spec"]["replicas"]
        for d in deps
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "connectors"
    }


def test_make_stop_and_start_switch_streaming(release: Release) -> None:
    kube, ns = release.kube, release.namespace
    wait_until(lambda: _app_state(release) == "RUNNING", what="RUNNING before the stop", timeout=180, every=2)
    before = _connector_replicas(release)
    assert before
    assert all(n > 0 for n in before.values()), before

    stopped = kube.make("stop", release=release.name, namespace=ns)
    assert stopped.returncode == 0, stopped.stderr
    assert set(_connector_replicas(release).values()) == {0}
    wait_until(
        lambda: not kube.items("pods", ns, "app.kubernetes.io/component=connectors"),
        what="connector pods gone",
    )
    assert release.one("sparkapplications", "pipeline")["spec"]["suspend"] is True
    wait_until(
        lambda: _app_state(release) == "SUSPENDED" and _driver(release) is None,
        what="the pipeline suspended, driver gone",
        timeout=120,
        every=2,
    )

    started = kube.make("start", release=release.name, namespace=ns)
    assert started.returncode == 0, started.stderr
    assert _connector_replicas(release) == before
    wait_until(lambda: _app_state(release) == "RUNNING", what="the pipeline resumed", timeout=180, every=2)
    assert_release_healthy(kube, ns)


def test_helm_upgrade_with_a_changed_value_rolls_out(release: Release) -> None:
    kube, ns = release.kube, release.namespace
    api = release.one("deployments", "api")
    revision = api["metadata"]["annotations"].get("deployment.kubernetes.io/revision")
    kube.helm(
        "upgrade",
        release.name,
        "charts/coattail",
        "-n",
        ns,
        "--reuse-values",
        "--set=config.extra.api\\.max_limit=250",
        "--wait",
        "--timeout=120s",
    )
    data = {c["metadata"]["name"]: c.get("data", {}) for c in kube.items("configmaps", ns)}
    assert "250" in str(data[f"{release.name}-env"]) + str(data[f"{release.name}-config"]), (
        "the value reached a ConfigMap"
    )
    api = release.one("deployments", "api")
    assert api["metadata"]["annotations"].get("deployment.kubernetes.io/revision") != revision, (
        "a config change rolls the API"
    )
    assert_release_healthy(kube, ns)
