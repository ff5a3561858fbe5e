"""The SparkApplication the workflow creates, valid against the CRD. Submitting it, waiting on it and
the workflow's retry of a failed one run against a real API server in tests/cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from jobs.batch.sparkapp import SparkApplicationError, application_name, batch_application
from tests.batch.conftest import LoadSettings

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
