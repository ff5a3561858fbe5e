"""Objects `coattail dev cluster up` applies once the API server answers."""

from __future__ import annotations

import base64
import json
from typing import Any

from coattail.devservices.cluster.pki import Pki

OPERATOR_NAMESPACE = "spark-operator"
WEBHOOK_SERVICE = "spark-webhook"
WEBHOOK_SECRET = "spark-operator-webhook-certs"  # noqa: S105 - a Secret's name, not a password
WEBHOOK_CONFIG = "spark-operator-webhook"
WEBHOOK_DNS = f"{WEBHOOK_SERVICE}.{OPERATOR_NAMESPACE}.svc"
FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
_RESTRICTED = "restricted"


def restricted_namespace(name: str) -> dict[str, Any]:
    """A namespace whose pods the API server's PodSecurity admission holds to ``restricted``."""
    labels = {f"pod-security.kubernetes.io/{mode}": _RESTRICTED for mode in ("enforce", "audit", "warn")}
    labels["pod-security.kubernetes.io/enforce-version"] = "latest"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def fake_node(name: str) -> dict[str, Any]:
    """A node kwok keeps Ready; pods scheduled on it go Running without containers."""
    capacity = {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "type": "kwok",
            },
        },
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def webhook_secret(pki: Pki) -> dict[str, Any]:
    """The spark-operator webhook's certificates, ours instead of ones it would generate itself."""
    files = {
        "ca-cert.pem": "ca.crt",
        "ca-key.pem": "ca.key",
        "server-cert.pem": "webhook.crt",
        "server-key.pem": "webhook.key",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": WEBHOOK_SECRET, "namespace": OPERATOR_NAMESPACE},
        "type": "Opaque",
        "data": {key: _b64(pki.path(name).read_bytes()) for key, name in files.items()},
    }


def _hook(name: str, url: str, ca: str, rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        # The webhook server runs on this machine, not in a pod: the API server calls it by URL.
        "clientConfig": {"url": url, "caBundle": ca},
        "sideEffects": "NoneOnDryRun",
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "rules": [rules],
        **extra,
    }


def webhook_configurations(pki: Pki, port: int) -> list[dict[str, Any]]:
    """The operator's mutating and validating webhooks (as its chart declares them) pointed at 127.0.0.1."""
    ca = _b64(pki.ca_cert.read_bytes())
    base = f"https://127.0.0.1:{port}"
    group = {
        "apiGroups": ["sparkoperator.k8s.io"],
        "apiVersions": ["v1beta2"],
        "operations": ["CREATE", "UPDATE"],
    }
    mutating = [
        _hook(
            "mutate--v1-pod.sparkoperator.k8s.io",
            f"{base}/mutate--v1-pod",
            ca,
            {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"]},
            objectSelector={"matchLabels": {"sparkoperator.k8s.io/launched-by-spark-operator": "true"}},
        ),
        *(
            _hook(
                f"mutate-sparkoperator-k8s-io-v1beta2-{kind}.sparkoperator.k8s.io",
                f"{base}/mutate-sparkoperator-k8s-io-v1beta2-{kind}",
                ca,
                {**group, "resources": [f"{kind}s"]},
            )
            for kind in ("sparkapplication", "scheduledsparkapplication")
        ),
    ]
    validating = [
        _hook(
            f"validate-sparkoperator-k8s-io-v1beta2-{kind}.sparkoperator.k8s.io",
            f"{base}/validate-sparkoperator-k8s-io-v1beta2-{kind}",
            ca,
            {**group, "resources": [f"{kind}s"]},
        )
        for kind in ("sparkapplication", "scheduledsparkapplication")
    ]
    meta = {"name": WEBHOOK_CONFIG}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": meta,
            "webhooks": mutating,
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": meta,
            "webhooks": validating,
        },
    ]


def as_list(objects: list[dict[str, Any]]) -> str:
    """One ``kubectl apply -f -`` document (JSON is YAML)."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
