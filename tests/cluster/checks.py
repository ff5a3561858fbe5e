"""What a healthy release looks like on the API server, and what "nothing left behind" means."""

from __future__ import annotations

from functools import partial
from typing import Any

from tests.cluster.conftest import Kube, wait_until

# Objects a namespace has before any release and keeps after one (made by the control plane itself).
BASELINE = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
IGNORED_KINDS = {"events", "events.events.k8s.io"}


def namespaced_kinds(kube: Kube) -> list[str]:
    names = kube.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").stdout.split()
    return sorted(n for n in names if n not in IGNORED_KINDS)


def leftovers(kube: Kube, namespace: str, keep: set[tuple[str, str]]) -> list[str]:
    """Every object in ``namespace`` that is neither baseline nor in ``keep`` (kind, name)."""
    found = kube.get(",".join(namespaced_kinds(kube)), "-n", namespace)["items"]
    allowed = BASELINE | keep
    return sorted(
        f"{o['kind']}/{o['metadata']['name']}"
        for o in found
        if (o["kind"], o["metadata"]["name"]) not in allowed
    )


def assert_release_healthy(kube: Kube, namespace: str) -> dict[str, int]:
    """Deployments available, their pods admitted and Running, Services with ready endpoints."""
    assert kube.items("deployments", namespace), "the release made no Deployment"

    def available() -> list[dict[str, Any]] | None:
        # helm's --wait reads the ReplicaSets; the Deployment's own status can trail it by a sync.
        found = kube.items("deployments", namespace)
        return (
            found
            if all(d["status"].get("availableReplicas", 0) == d["spec"]["replicas"] for d in found)
            else None
        )

    deployments = wait_until(available, what="every Deployment available", timeout=60)
    pods = kube.items("pods", namespace)
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    expected = sum(d["spec"]["replicas"] for d in deployments)
    assert len([p for p in running if _owner_kind(p) == "ReplicaSet"]) == expected
    # A pod PodSecurity refused never exists: its ReplicaSet records FailedCreate instead.
    refused = [
        e["message"] for e in kube.items("events", namespace)
        if e.get("reason") == "FailedCreate" and "PodSecurity" in e.get("message", "")
    ]  # fmt: skip
    assert not refused, refused
    # The release's Services (Spark makes its own per driver: not ours to check).
    for svc in kube.items("services", namespace, "app.kubernetes.io/managed-by=Helm"):
        if not svc["spec"].get("selector"):
            continue
        name = svc["metadata"]["name"]
        wait_until(
            partial(_ready_endpoints, kube, namespace, name), what=f"endpoints of Service {name}", timeout=60
        )
    return {"deployments": len(deployments), "pods": len(running)}


def _owner_kind(obj: dict[str, Any]) -> str:
    owners = obj["metadata"].get("ownerReferences") or [{}]
    return str(owners[0].get("kind", ""))


def _ready_endpoints(kube: Kube, namespace: str, service: str) -> int:
    slices = kube.items("endpointslices", namespace, f"kubernetes.io/service-name={service}")
    return sum(
        1 for s in slices for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")
    )
