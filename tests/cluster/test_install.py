"""`helm install --wait` of the chart on a real API server, for each profile that runs on Kubernetes
and each tier: every Deployment available, every pod admitted under Pod Security `restricted`,
Services with endpoints, PDB and HPA accepted, and `helm uninstall` leaving nothing behind."""

from __future__ import annotations

from functools import partial

import pytest

from tests.cluster.checks import assert_release_healthy, leftovers
from tests.cluster.conftest import PROFILE_SECRETS, Kube, install, wait_until

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("tier", ["small", "medium", "large"])
@pytest.mark.parametrize("profile", ["local", "eks"])
def test_install_runs_under_restricted_and_uninstall_leaves_nothing(
    kube: Kube, profile: str, tier: str
) -> None:
    ns = kube.namespace()
    install(kube, ns, profile=profile, tier=tier)
    seen = assert_release_healthy(kube, ns)
    assert seen["pods"] >= 2

    pdbs = kube.items("poddisruptionbudgets", ns)
    hpas = kube.items("horizontalpodautoscalers", ns)
    if profile == "eks":  # values-eks.yaml turns both on
        assert pdbs
        assert hpas
    for pdb in pdbs:  # accepted and counted by the disruption controller
        wait_until(partial(_expected_pods, kube, ns, pdb["metadata"]["name"]), what="PDB status")
    for hpa in hpas:
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    apps = kube.items("sparkapplications", ns)
    assert len(apps) == 1, "the streaming pipeline's SparkApplication"
    assert kube.items("cronjobs", ns), "the daily batch CronJob"
    if profile == "eks":  # the monitoring objects validate against the prometheus-operator CRDs
        assert kube.items("prometheusrules", ns)
        assert kube.items("servicemonitors", ns)

    kube.helm("uninstall", "coattail", "-n", ns, "--wait", "--timeout=120s")
    keep = {("Secret", name) for name in PROFILE_SECRETS.get(profile, {})}
    left: list[str] = []

    def empty() -> bool:
        left[:] = leftovers(kube, ns, keep)
        return not left

    try:  # owned objects (the driver pod, its ConfigMap and Service) go with the garbage collector
        wait_until(empty, what="an empty namespace", timeout=90, every=2)
    except AssertionError:
        pytest.fail(f"helm uninstall left behind: {left}")


def _expected_pods(kube: Kube, ns: str, name: str) -> object:
    return kube.get("pdb", name, "-n", ns).get("status", {}).get("expectedPods")
