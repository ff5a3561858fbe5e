"""Playing the Spark driver on kwok's nodes, which run no containers: once the operator's driver pod
is Running, its status is patched to the container's exit, and the operator turns that into the
application's state as it would on a real node. Also the batch runner's API client, impersonated."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, config

from tests.cluster.conftest import Release, wait_until

START, END = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"
IMAGE = "registry.local/coattail/spark:dev"


def api_as_batch(release: Release) -> Any:
    api_client = config.new_client_from_config(str(release.kube.cluster.kubeconfig))
    # Impersonated: the Role the chart gives the batch runner is what these calls get.
    api_client.set_default_header(
        "Impersonate-User", f"system:serviceaccount:{release.namespace}:coattail-batch"
    )
    return client.CustomObjectsApi(api_client)


def on_cluster_overrides(release: Release) -> dict[str, Any]:
    """Settings that send the batch steps to this release's namespace as SparkApplications."""
    return {
        "batch.reprocess_runner": "spark-operator",
        "batch.spark_application.image": IMAGE,
        "batch.spark_application.namespace": release.namespace,
        "batch.spark_application.service_account": "coattail-spark",
        "batch.spark_application.env_config_map": f"{release.name}-env",
    }


def end_driver(release: Release, app: str, exit_code: int) -> None:
    """Once ``app``'s driver pod runs, make its container exit with ``exit_code``."""
    kube, ns = release.kube, release.namespace
    pod = f"{app}-driver"
    wait_until(
        lambda: kube.kubectl("-n", ns, "get", "pod", pod, check=False).returncode == 0,
        what=f"driver pod {pod}",
        timeout=180,
        every=1,
    )
    wait_until(
        lambda: kube.get("pod", pod, "-n", ns)["status"].get("phase") == "Running", what=f"{pod} Running"
    )
    phase, reason = ("Succeeded", "Completed") if exit_code == 0 else ("Failed", "Error")
    ended = {"exitCode": exit_code, "reason": reason, "startedAt": START, "finishedAt": END}
    status = {
        "phase": phase,
        "containerStatuses": [
            {
                "name": "spark-kubernetes-driver", "ready": False, "restartCount": 0,
                "image": IMAGE, "imageID": "", "state": {"terminated": ended},
            }
        ],
    }  # fmt: skip
    patch = json.dumps({"status": status})
    kube.kubectl("-n", ns, "patch", "pod", pod, "--subresource=status", "--type=merge", "-p", patch)


class DriverPlayer(threading.Thread):
    """Ends the driver of each SparkApplication labelled with ``run_id``, in the order they appear,
    with the exit code ``exit_code_of(n)`` gives the n-th (0-based); what went wrong is kept."""

    def __init__(self, release: Release, run_id: str, exit_code_of: Callable[[int], int]) -> None:
        super().__init__(daemon=True)
        self.release, self.run_id, self.exit_code_of = release, run_id, exit_code_of
        self.ended: list[str] = []
        self.error: BaseException | None = None
        self._done = threading.Event()  # not _stop: Thread has a method of that name

    def run(self) -> None:
        try:
            while not self._done.is_set():
                apps = self.release.kube.items(
                    "sparkapplications", self.release.namespace, f"coattail.io/run-id={self.run_id}"
                )
                for app in sorted(apps, key=lambda a: a["metadata"]["creationTimestamp"]):
                    name = app["metadata"]["name"]
                    if name not in self.ended:
                        end_driver(self.release, name, self.exit_code_of(len(self.ended)))
                        self.ended.append(name)
                self._done.wait(1)
        except BaseException as exc:  # surfaced by the test through .error
            self.error = exc

    def finish(self) -> None:
        self._done.set()
        self.join(60)
