"""The batch runner's SparkApplication submit-and-wait (jobs/batch/sparkapp.py) against the real API
server and operator, as the batch service account: success, failure and timeout-with-delete, the
test playing the driver's container (tests/cluster/drivers.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kubernetes import client

from coattail.settings import load_settings
from jobs.batch.sparkapp import (
    GROUP,
    PLURAL,
    VERSION,
    SparkApplicationError,
    batch_application,
    submit_and_wait,
)
from tests.cluster.conftest import Release, wait_until
from tests.cluster.drivers import api_as_batch, end_driver, on_cluster_overrides

pytestmark = pytest.mark.cluster


def _manifest(release: Release, name: str) -> dict[str, Any]:
    settings = load_settings("small", overrides=on_cluster_overrides(release))
    return batch_application(settings, name=name, arguments=["maintain"], run_id=name)


def _run(
    release: Release, name: str, exit_code: int | None, timeout: float, *, keep: bool = False
) -> tuple[str | None, Exception | None]:
    result: dict[str, Any] = {}

    def wait() -> None:
        try:
            result["state"] = submit_and_wait(
                api_as_batch(release), _manifest(release, name), timeout_seconds=timeout, poll_seconds=1
            )
        except Exception as exc:
            result["error"] = exc

    waiter = threading.Thread(target=wait)
    waiter.start()
    if exit_code is not None:
        end_driver(release, name, exit_code)
    waiter.join(timeout + 60)
    assert not waiter.is_alive(), "submit_and_wait did not return"
    if not keep:
        _delete(release, name)
    return result.get("state"), result.get("error")


def _delete(release: Release, name: str) -> None:
    # The shared release's namespace stays as the chart made it (the driver pod goes with its owner).
    release.kube.kubectl("-n", release.namespace, "delete", "sparkapplication", name, "--ignore-not-found")


def test_a_completed_application_succeeds_and_a_retry_reuses_it(release: Release) -> None:
    state, error = _run(release, "batch-ok", exit_code=0, timeout=240, keep=True)
    assert error is None
    assert state == "COMPLETED"
    # A retried step finds its own application already there (HTTP 409) and reads its state.
    manifest = _manifest(release, "batch-ok")
    again = submit_and_wait(api_as_batch(release), manifest, timeout_seconds=30, poll_seconds=1)
    assert again == "COMPLETED"
    _delete(release, "batch-ok")


def test_a_failed_driver_fails_the_step(release: Release) -> None:
    state, error = _run(release, "batch-fails", exit_code=1, timeout=240)
    assert isinstance(error, SparkApplicationError), (state, error)
    assert "ended FAILED" in str(error)


def test_a_timeout_deletes_the_application_and_its_driver(release: Release) -> None:
    state, error = _run(release, "batch-stuck", exit_code=None, timeout=20)
    assert isinstance(error, SparkApplicationError), (state, error)
    assert "deleted it" in str(error)
    api = api_as_batch(release)
    with pytest.raises(client.exceptions.ApiException) as gone:
        api.get_namespaced_custom_object(GROUP, VERSION, release.namespace, PLURAL, "batch-stuck")
    assert gone.value.status == 404
    kube = release.kube
    wait_until(
        lambda: (
            kube.kubectl("-n", release.namespace, "get", "pod", "batch-stuck-driver", check=False).returncode
            != 0
        ),
        what="the driver pod garbage-collected",
    )
