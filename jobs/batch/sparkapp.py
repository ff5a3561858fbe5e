"""The Spark steps (reprocess, upkeep) as SparkApplications, submitted and waited on (``.sync``).

The workflow pins the raw_trades snapshot, creates a ``sparkoperator.k8s.io/v1beta2`` SparkApplication
whose driver runs ``coattail batch reprocess --as-of-snapshot …`` (the same code as the local mode),
then polls ``status.applicationState.state`` until COMPLETED, FAILED/SUBMISSION_FAILED or the timeout
(then it deletes the application, so a stuck job stops costing cluster time).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from coattail.errors import CoattailError
from coattail.settings import Settings

log = logging.getLogger("jobs.batch")

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
SUCCEEDED = {"COMPLETED"}
FAILED = {"FAILED", "SUBMISSION_FAILED"}


class SparkApplicationError(CoattailError, RuntimeError):
    """The SparkApplication failed, timed out or could not be created; says which."""


def application_name(run_id: str, day: datetime, command: str) -> str:
    digest = hashlib.sha1(run_id.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"coattail-{command}-{day:%Y%m%d}-{digest}"  # DNS-1123, well under 63 characters


def _pod(settings: Settings, cores: int, memory: str, role: str) -> dict[str, Any]:
    app = settings.batch.spark_application
    pod: dict[str, Any] = {
        "cores": cores,
        "coreLimit": str(cores),
        "memory": memory,
        "labels": {"app.kubernetes.io/name": "coattail", "app.kubernetes.io/component": "batch"},
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": app.run_as_user,
            "runAsGroup": app.run_as_user,
            "fsGroup": app.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "spark-work", "mountPath": "/opt/spark/work-dir"},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a pod-private emptyDir
        ],
    }
    if app.service_account:
        pod["serviceAccount"] = app.service_account
    env_from: list[dict[str, Any]] = []
    if app.env_config_map:
        env_from.append({"configMapRef": {"name": app.env_config_map}})
    if app.env_secret:
        env_from.append({"secretRef": {"name": app.env_secret}})
    if env_from:
        pod["envFrom"] = env_from
    pod["labels"]["coattail.io/spark-role"] = role
    return pod


def batch_application(settings: Settings, *, name: str, arguments: list[str], run_id: str) -> dict[str, Any]:
    """SparkApplication whose driver runs ``coattail batch <arguments>`` (validated against the CRD)."""
    app = settings.batch.spark_application
    if not app.image:
        raise SparkApplicationError(
            "batch.spark_application.image is empty; set COATTAIL_BATCH__SPARK_APPLICATION__IMAGE "
            "to the Spark image (images/spark) or use batch.reprocess_runner=local"
        )
    size = settings.spark
    executor = _pod(settings, size.executor.cores, size.executor.memory, "executor")
    executor["instances"] = size.executor.instances
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SparkApplication",
        "metadata": {
            "name": name,
            "namespace": app.namespace,
            "labels": {
                "app.kubernetes.io/name": "coattail",
                "app.kubernetes.io/component": "batch",
                "coattail.io/batch-step": arguments[0],
                "coattail.io/run-id": run_id[:63],
            },
        },
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": app.image,
            "mainApplicationFile": app.main_application_file,
            "arguments": arguments,
            "sparkVersion": app.spark_version,
            "restartPolicy": {"type": "Never"},  # retries belong to the workflow, which counts them
            "timeToLiveSeconds": 86_400,
            "sparkConf": {"spark.sql.session.timeZone": "UTC", "spark.ui.enabled": "false"},
            "volumes": [{"name": "spark-work", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
            "driver": _pod(settings, size.driver.cores, size.driver.memory, "driver"),
            "executor": executor,
        },
    }


def custom_objects_api(api_client: Any | None = None) -> Any:
    """CustomObjectsApi from the in-cluster service account, else ~/.kube/config."""
    from kubernetes import client, config

    if api_client is None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
    return client.CustomObjectsApi(api_client)


def submit_and_wait(
    api: Any,
    manifest: dict[str, Any],
    *,
    timeout_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Create the application and wait for a terminal state; returns it or raises SparkApplicationError."""
    from kubernetes.client.exceptions import ApiException

    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    except ApiException as exc:
        if exc.status != 409:  # 409: a retried step finds its own application already there
            raise SparkApplicationError(
                f"cannot create SparkApplication {name}: HTTP {exc.status} {exc.reason}"
            ) from None
    deadline = clock() + timeout_seconds
    state = ""
    while True:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        app_state = (obj.get("status") or {}).get("applicationState") or {}
        state = str(app_state.get("state") or "")
        if state in SUCCEEDED:
            log.info("SparkApplication %s completed", name)
            return state
        if state in FAILED:
            why = app_state.get("errorMessage") or "see the driver log"
            raise SparkApplicationError(f"SparkApplication {name} ended {state}: {why}")
        if clock() >= deadline:
            waited = f"SparkApplication {name} still {state or 'pending'} after {timeout_seconds:.0f} s"
            try:
                api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            except ApiException as exc:  # e.g. a Role without `delete`: say so, and that it still runs
                raise SparkApplicationError(
                    f"{waited}; could not delete it (HTTP {exc.status} {exc.reason}): it is still running"
                ) from None
            raise SparkApplicationError(f"{waited}; deleted it")
        sleep(poll_seconds)
