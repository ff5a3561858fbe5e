"""The daily workflow's Spark steps as SparkApplications through the real API server and operator,
as the batch service account: the first attempt's driver fails, the workflow retries the step under a
new application and goes on (the Step Functions Retry the seed asks for)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from coattail.settings import load_settings
from jobs.batch.backfill import backfill
from jobs.batch.workflow import DailyWorkflow
from tests.batch.fakes import FakeBinance, make_trades, serve_binance
from tests.cluster.conftest import Release
from tests.cluster.drivers import DriverPlayer, api_as_batch, on_cluster_overrides

pytestmark = pytest.mark.cluster
DAY = datetime(2026, 1, 5, tzinfo=UTC)


def test_the_workflow_retries_a_failed_application_and_goes_on(
    release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(state))
    start_ms = int(DAY.timestamp() * 1000)
    with serve_binance(FakeBinance({"BTCUSDT": make_trades(start_ms, start_ms + 600_000, 300)})) as url:
        settings = load_settings(
            "small",
            env={"COATTAIL_STATE_DIR": str(state)},
            overrides={
                **on_cluster_overrides(release),
                "connectors.binance.rest_url": url,
                "batch.retry_backoff_seconds": 0,
                "batch.spark_application.poll_seconds": 1,
                "batch.spark_application.timeout_seconds": 240,
            },
        )
        # Raw trades in the lake, so the reprocess step has a snapshot to pin.
        backfill(settings, ["BTC-USDT"], DAY, DAY.replace(hour=1), interactive=False)
    workflow = DailyWorkflow(settings, DAY.date(), kube_api=api_as_batch(release))
    player = DriverPlayer(release, workflow.run_id, exit_code_of=lambda n: 1 if n == 0 else 0)
    player.start()
    try:
        result = workflow.run(("reprocess", "maintain"))
    finally:
        player.finish()
    assert player.error is None, player.error
    assert result.succeeded, result.error
    assert result.attempts == {"reprocess": 2, "maintain": 1}

    apps = release.kube.items("sparkapplications", release.namespace, f"coattail.io/run-id={workflow.run_id}")
    apps.sort(key=lambda a: a["metadata"]["creationTimestamp"])
    try:
        # The failed attempt, its retry under a new name, then maintain: as the operator left them.
        assert [a["metadata"]["name"] for a in apps] == player.ended
        states = [a["status"]["applicationState"]["state"] for a in apps]
        assert states == ["FAILED", "COMPLETED", "COMPLETED"]
        snapshot = str(result.outputs["reprocess"]["snapshot_id"])
        for retried in apps[:2]:
            assert retried["spec"]["arguments"][:3] == ["reprocess", "--as-of-snapshot", snapshot]
            assert "--swap" in retried["spec"]["arguments"]
        assert apps[2]["spec"]["arguments"] == ["maintain"]
    finally:
        if names := [a["metadata"]["name"] for a in apps]:
            release.kube.kubectl(
                "-n", release.namespace, "delete", "sparkapplication", *names, "--ignore-not-found"
            )
