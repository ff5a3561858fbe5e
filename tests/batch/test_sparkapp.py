"""The SparkApplication the workflow creates: valid against the CRD, and the workflow's retry of a
failed application through the real kubernetes client against a local fake of the CustomObjects API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kubernetes import client

from jobs.batch.sparkapp import SparkApplicationError, application_name, batch_application
from tests.batch.conftest import LoadSettings
from tests.batch.fakes import FakeKube, serve_kube

pytestmark = [pytest.mark.unit, pytest.mark.services]

CRD_SCHEMA = (
    Path(__file__).resolve().parents[2] / ".cache" / "crds" / "schemas" / "sparkapplication_v1beta2.json"
)
DAY = datetime(2026, 1, 5, tzinfo=UTC)
ON_CLUSTER = {
    "batch.reprocess_runner": "spark-operator",
    "batch.spark_application.image": "registry.local/coattail/spark:dev",
    "batch.spark_application.namespace": "coattail",
    "batch.spark_application.service_account": "coattail-spark",
    "batch.spark_application.env_config_map": "coattail-env",
}


def _manifest(make_settings: LoadSettings) -> dict[str, Any]:
    settings = make_settings(**ON_CLUSTER)
    args = [
        "reprocess",
        "--as-of-snapshot",
        "42",
        "--start",
        DAY.isoformat(),
        "--end",
        DAY.isoformat(),
        "--swap",
    ]
    name = application_name("daily-20260105-abc", DAY, "reprocess")
    return batch_application(settings, name=name, arguments=args, run_id="daily-20260105-abc")


def _api(url: str) -> Any:
    config = client.Configuration(host=url)
    config.api_key = {"authorization": "Bearer token"}  # what the in-cluster config sets up
    return client.CustomObjectsApi(client.ApiClient(config))


def test_manifest_validates_against_the_crd_schema(make_settings: LoadSettings) -> None:
    if not CRD_SCHEMA.is_file():
        pytest.fail("SparkApplication CRD schema missing: run `scripts/setup.sh crds`")
    manifest = _manifest(make_settings)
    jsonschema.validate(manifest["spec"], json.loads(CRD_SCHEMA.read_text())["properties"]["spec"])
    jsonschema.validate(manifest, json.loads(CRD_SCHEMA.read_text()))
    spec = manifest["spec"]
    assert spec["arguments"][:3] == ["reprocess", "--as-of-snapshot", "42"]
    assert spec["restartPolicy"] == {"type": "Never"}
    assert spec["driver"]["envFrom"] == [{"configMapRef": {"name": "coattail-env"}}]
    assert spec["driver"]["securityContext"]["readOnlyRootFilesystem"] is True
    assert len(manifest["metadata"]["name"]) <= 63


def test_manifest_needs_an_image(make_settings: LoadSettings) -> None:
    settings = make_settings(**{"batch.reprocess_runner": "spark-operator"})
    with pytest.raises(SparkApplicationError, match="image is empty"):
        batch_application(settings, name="x", arguments=["maintain"], run_id="r")


# submit_and_wait's success, failure, timeout-with-delete and retry paths run against a real API
# server and the real spark-operator in tests/cluster/test_batch_runner.py. The workflow test below
# keeps the fake: it scripts a failed first attempt, which the real operator cannot be told to do.


def test_workflow_runs_the_spark_steps_as_applications_and_retries_a_failure(
    make_settings: LoadSettings,
) -> None:
    from jobs.batch.backfill import backfill
    from jobs.batch.workflow import DailyWorkflow
    from tests.batch.fakes import FakeBinance, make_trades, serve_binance

    start_ms = int(DAY.timestamp() * 1000)
    fake = FakeKube(states=["RUNNING", "FAILED", "SUBMITTED", "COMPLETED", "COMPLETED"])
    with serve_binance(FakeBinance({"BTCUSDT": make_trades(start_ms, start_ms + 600_000, 300)})) as url:
        settings = make_settings(
            **ON_CLUSTER, **{"connectors.binance.rest_url": url, "batch.retry_backoff_seconds": 0}
        )
        backfill(settings, ["BTC-USDT"], DAY, DAY.replace(hour=1), interactive=False)
        with serve_kube(fake) as kube:
            workflow = DailyWorkflow(settings, DAY.date(), kube_api=_api(kube), sleep=lambda s: None)
            result = workflow.run(("reprocess", "maintain"))
    assert result.succeeded, result.error
    assert result.attempts == {"reprocess": 2, "maintain": 1}
    apps = list(fake.objects.values())
    assert len(apps) == 3  # the failed attempt, its retry under a new name, then maintain
    snapshot = str(result.outputs["reprocess"]["snapshot_id"])
    assert apps[1]["spec"]["arguments"][:3] == ["reprocess", "--as-of-snapshot", snapshot]
    assert "--swap" in apps[1]["spec"]["arguments"]
    assert apps[2]["spec"]["arguments"] == ["maintain"]
