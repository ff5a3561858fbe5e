"""The namespaces the tier installs into really enforce Pod Security `restricted` (the API server's
own admission): otherwise "every pod admitted" in test_install would prove nothing."""

from __future__ import annotations

import json

import pytest

from tests.cluster.conftest import Kube

pytestmark = pytest.mark.cluster


def _pod(security: dict[str, object]) -> str:
    container = {"name": "c", "image": "registry.local/x:1", "securityContext": security}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe"},
        "spec": {"containers": [container]},
    }
    return json.dumps(pod)


RESTRICTED_OK = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_a_pod_without_run_as_non_root_is_refused(kube: Kube) -> None:
    ns = kube.namespace()
    refused = kube.kubectl(
        "-n",
        ns,
        "create",
        "--dry-run=server",
        "-f",
        "-",
        stdin=_pod({**RESTRICTED_OK, "runAsNonRoot": False}),
        check=False,
    )
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr
    admitted = kube.kubectl(
        "-n", ns, "create", "--dry-run=server", "-f", "-", stdin=_pod(RESTRICTED_OK), check=False
    )
    assert admitted.returncode == 0, admitted.stderr
