"""A hot-store outage delays alerts, it does not stop the pipeline (issue 18 item 5).

The streaming pipeline runs on the session's Kafka broker and on a DynamoDB Local of this test's own
(with a data folder, so a restart keeps the table and its items). The pipeline starts while that
store is still down and waits for it; mid-stream the store is stopped for 20 s while trades with
whales keep arriving, then started again on the same port. The pipeline never exits and every
whale is alerted exactly once. The last tests check the one-line failures when a dependency stays
down longer than the configured wait.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from coattail.contracts import alert_id
from coattail.devservices import dynamodb
from coattail.devservices.process import free_port, spawn, stop
from coattail.settings import Settings
from jobs.framework.runner import PipelineRunner
from tests.api.helpers import free_socket
from tests.pipeline.helpers import line, trade
from tests.pipeline.streamkit import create_topic, dynamo_alerts, iceberg_rows, produce, stream_settings

pytestmark = [pytest.mark.spark, pytest.mark.services]
OUTAGE_SECONDS = 20


class LocalDynamo:
    """A DynamoDB Local that this test stops and starts; its data folder outlives the process."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.pid: int | None = None

    def start(self) -> None:
        argv = dynamodb.server_argv(self.home, self.port, in_memory=False)
        self.pid = spawn(argv, self.home / "dynamodb.log", self.home / "dynamodb.pid")
        deadline = time.monotonic() + 120
        while not dynamodb.answers(self.endpoint):
            assert time.monotonic() < deadline, "DynamoDB Local did not start"
            time.sleep(0.3)

    def stop(self) -> None:
        if self.pid is not None:
            stop(self.pid)
            self.pid = None
        assert not dynamodb.answers(self.endpoint, timeout=0.5)


@pytest.fixture
def own_dynamo(tmp_path: Path) -> Iterator[LocalDynamo]:
    store = LocalDynamo(tmp_path / "own-dynamodb")
    try:
        yield store
    finally:
        store.stop()


def _whales(first: int, count: int, at: float) -> tuple[list[str], list[str]]:
    """``count`` background trades and one whale among them; (lines, expected alert ids)."""
    lines = [line(trade(at=at + i, quote_volume=1000 + i, price=60_000)) for i in range(count)]
    whale = trade(at=at + count, quote_volume=200_000 + first, price=60_000, trade_id=f"whale-{first}")
    return [*lines, line(whale)], [alert_id("MOD-002", whale.event_id)]


def _wait_for(check: Callable[[], bool], timeout: float, what: str, runner: PipelineRunner) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        runner.check()
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.5)


def _hot_ids(settings: Settings, module_id: str | None = "MOD-002") -> list[str]:
    try:
        alerts = dynamo_alerts(settings)
    except Exception:  # the store is down or the table not there yet
        return []
    return [a.alert_id for a in alerts if module_id in (None, a.module_id)]


def _retries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Retried writes (the start-up wait logs ``create_table`` retries, not these)."""
    return [r for r in caplog.records if ": writing " in r.getMessage() and "; retry " in r.getMessage()]


def test_pipeline_waits_out_a_store_outage_and_alerts_once(
    spark: Any,
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    unique_name: str,
    aws_local_env: None,
    own_dynamo: LocalDynamo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="coattail.hotstore.dynamodb")
    create_topic(kafka_bootstrap, unique_name)
    settings = stream_settings(
        make_settings, kafka_bootstrap, own_dynamo.endpoint, unique_name, **{"hot_store.retry_seconds": 150}
    )
    expected: list[str] = []

    # Start: the store is not up yet. The runner (its hot store) waits for it rather than failing.
    built: list[PipelineRunner] = []
    starting = threading.Thread(target=lambda: built.append(PipelineRunner(spark, settings)))
    starting.start()
    time.sleep(3)
    assert starting.is_alive(), "the pipeline did not wait for its store"
    own_dynamo.start()
    starting.join(60)
    assert built, "the pipeline did not start once its store was up"
    runner = built[0]
    runner.start()
    try:
        before, ids = _whales(0, 20, at=0)
        expected += ids
        produce(kafka_bootstrap, unique_name, before)
        _wait_for(lambda: set(expected) <= set(_hot_ids(settings)), 180, "first whale alerted", runner)

        own_dynamo.stop()
        down_at = time.monotonic()
        for n in range(1, 4):  # trades keep arriving during the outage
            lines, ids = _whales(n, 10, at=100 * n)
            expected += ids
            produce(kafka_bootstrap, unique_name, lines)
            time.sleep(5)
            runner.check()
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        # On a busy machine a micro-batch may not have reached the store yet: stay down until one has.
        _wait_for(lambda: bool(_retries(caplog)), 60, "a write retried while the store was down", runner)
        assert all(q.isActive for q in runner.queries), "a query stopped during the outage"
        retries = _retries(caplog)
        assert all("\n" not in r.getMessage() for r in retries)
        assert own_dynamo.endpoint in retries[0].getMessage()

        own_dynamo.start()  # same port, same data folder
        after, ids = _whales(9, 10, at=1000)
        expected += ids
        produce(kafka_bootstrap, unique_name, after)
        _wait_for(lambda: set(expected) <= set(_hot_ids(settings)), 180, "every whale alerted", runner)
        runner.drain()
        runner.check()
        assert all(q.isActive for q in runner.queries), "the pipeline exited"
    finally:
        runner.stop()

    # Each whale once (a key holds one item), no other whale; the lake agrees, without duplicates
    # (MOD-001 may also flag the whales' windows: those are checked for duplicates, not counted).
    assert sorted(_hot_ids(settings)) == sorted(expected)
    lake = [r["alert_id"] for r in iceberg_rows(spark, settings, "anomaly_alerts")]
    assert len(lake) == len(set(lake))
    assert sorted(lake) == sorted(_hot_ids(settings, None))


def _pipeline_run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    aliases = ("KAFKA_BOOTSTRAP_SERVERS", "DYNAMODB_ENDPOINT")  # would compete with the test's settings
    outer = {k: v for k, v in os.environ.items() if k not in aliases}
    return subprocess.run(
        [sys.executable, "-m", "coattail", "pipeline", "run", "--max-seconds", "1", *args],
        env={**outer, "COATTAIL_PIPELINE__METRICS_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_broker_that_stays_down_fails_the_start_in_one_line(tmp_path: Path) -> None:
    with free_socket() as closed:  # bound, never listening: connections are refused
        broker = f"127.0.0.1:{closed.getsockname()[1]}"
        started = time.monotonic()
        done = _pipeline_run(
            {"COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS": broker, "COATTAIL_STATE_DIR": str(tmp_path)},
            "--wait-seconds",
            "2",
        )
    assert done.returncode == 1
    assert time.monotonic() - started >= 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: Kafka broker at {broker}: connect still failing after 2 s")
    assert "ConnectionRefusedError" in last
    assert "Traceback" not in done.stderr


def test_a_store_that_stays_down_fails_the_start_in_one_line(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    with free_socket() as closed:
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
        done = _pipeline_run(
            {
                "COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
                "COATTAIL_HOT_STORE__ENDPOINT_URL": endpoint,
                "COATTAIL_HOT_STORE__TABLE": f"alerts-{unique_name}",
                "COATTAIL_HOT_STORE__RETRY_SECONDS": "2",
                "COATTAIL_STATE_DIR": str(tmp_path),
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
            }
        )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: hot store DynamoDB table 'alerts-{unique_name}' at {endpoint}: ")
    assert "still failing after 2 s" in last
    assert "EndpointConnectionError" in last
    assert "Traceback" not in done.stderr
