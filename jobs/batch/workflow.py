"""The daily workflow (seed §5.1, ADR-004): backfill → reprocess → quality → wallets → labels → backtest →
upkeep.

``wallets`` scores every wallet as of the day's end (MOD-004) and ``labels`` refreshes the label
registry (MOD-005, with the fresh top wallets as smart money when configured); ``backtest`` back-tests
the day's alerts against the prices after them (MOD-011, ``jobs.batch.backtest``). Each is skipped when
its module is not in the tier (``jobs.batch.wallets.skipped``).

Each step is retried with exponential backoff (``batch.step_attempts``, ``batch.retry_backoff_seconds``)
unless its error cannot heal by waiting (bad config or arguments, an IP ban). A step that still fails,
or a quality report below the threshold (the seed's CheckQualityPassed = no), takes the failure
branch: notification (SendAlert), failure metric (PublishFailure), exit non-zero. Otherwise the
success metric is published. Every step is recorded in ``batch_runs``.

With ``batch.reprocess_runner: spark-operator`` the Spark steps run as their own SparkApplications
and the workflow waits on their status (the ``.sync`` pattern); the snapshot is pinned first, so the
cluster job reprocesses exactly what the backfill committed.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from coattail.errors import CoattailError
from coattail.retry import Backoff, retry
from coattail.settings import ConfigError, Settings
from connectors.rest import BannedError
from jobs.batch import metrics, runs
from jobs.batch.notify import NotifyError, notify
from jobs.batch.quality import QualityReport, check_day, day_bounds

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("jobs.batch")
STEPS = ("backfill", "reprocess", "quality", "wallets", "labels", "backtest", "maintain")
PERMANENT = (ConfigError, ValueError, BannedError)  # waiting does not fix these


class QualityFailedError(CoattailError, RuntimeError):
    def __init__(self, report: QualityReport) -> None:
        super().__init__(
            f"quality below {report.threshold_pct:g}% on {report.date}: {', '.join(report.failures())}"
        )
        self.report = report


@dataclass
class WorkflowResult:
    run_id: str
    day: date
    succeeded: bool
    failed_step: str | None = None
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notified: str | None = None
    metrics_to: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "date": self.day.isoformat(),
            "succeeded": self.succeeded,
            "failed_step": self.failed_step,
            "error": self.error,
            "attempts": self.attempts,
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
            "notified": self.notified,
            "metrics": self.metrics_to,
            "outputs": self.outputs,
        }


class DailyWorkflow:
    def __init__(
        self,
        settings: Settings,
        day: date,
        *,
        spark_factory: Callable[[], SparkSession] | None = None,
        kube_api: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
        interactive: bool | None = False,
    ) -> None:
        self.settings = settings
        self.day = day
        self.start, self.end = day_bounds(day)
        self.run_id = f"daily-{day:%Y%m%d}-{uuid.uuid4().hex[:8]}"
        self._spark_factory = spark_factory
        self._spark: SparkSession | None = None
        self._kube_api = kube_api
        self.sleep = sleep
        self.interactive = interactive
        self.records: list[runs.StepRecord] = []
        self._attempt_no = 1
        self._scores: list[dict[str, Any]] | None = None  # this run's wallet scores, for the labels step

    # -- the steps ------------------------------------------------------------------------------
    def spark(self) -> SparkSession:
        if self._spark is None:
            from jobs.batch.spark import batch_session

            self._spark = self._spark_factory() if self._spark_factory else batch_session(self.settings)
        return self._spark

    def step_backfill(self) -> Any:
        from jobs.batch.backfill import backfill

        exchange = self.settings.batch.backfill_exchange
        symbols = self.settings.instruments.get(exchange, [])
        results = backfill(self.settings, symbols, self.start, self.end, interactive=self.interactive)
        return {r.symbol: {"added": r.added, "done": r.done, "requests": r.requests} for r in results}

    def step_reprocess(self) -> Any:
        from jobs.batch.reprocess import reprocess, resolve_snapshot

        if self.settings.batch.reprocess_runner == "spark-operator":
            snapshot = resolve_snapshot(self.settings, None, None)
            args = ["--as-of-snapshot", str(snapshot), "--start", self.start.isoformat()]
            args += ["--end", self.end.isoformat(), "--swap"]
            return self._on_cluster("reprocess", args) | {"snapshot_id": snapshot}
        return reprocess(self.spark(), self.settings, self.start, self.end, swap=True).summary()

    def step_quality(self) -> Any:
        report = check_day(self.settings, self.day)
        if not report.passed:
            raise QualityFailedError(report)
        return {"score_pct": report.score_pct, "rows": report.rows}

    def step_wallets(self) -> Any:
        from jobs.batch.wallets import SCORER, score_step, skipped

        if (skip := skipped(self.settings, SCORER)) is not None:
            return skip
        if self.settings.batch.reprocess_runner == "spark-operator":
            return self._on_cluster("score-wallets", ["--as-of", self.end.isoformat()])
        output, self._scores = score_step(self.spark(), self.settings, self.end)
        return output

    def step_labels(self) -> Any:
        from jobs.batch.wallets import LABELS, labels_step, skipped

        if (skip := skipped(self.settings, LABELS)) is not None:
            return skip
        if self.settings.batch.reprocess_runner == "spark-operator":
            return self._on_cluster("refresh-labels", [])
        return labels_step(self.spark(), self.settings, datetime.now(UTC), self._scores)

    def step_backtest(self) -> Any:
        from jobs.batch.backtest import BACKTESTER, backtest_step
        from jobs.batch.wallets import skipped

        if (skip := skipped(self.settings, BACKTESTER)) is not None:
            return skip
        if self.settings.batch.reprocess_runner == "spark-operator":
            return self._on_cluster("backtest", ["--date", self.day.isoformat()])
        return backtest_step(self.spark(), self.settings, self.day)

    def step_maintain(self) -> Any:
        from jobs.batch.maintain import maintain

        if self.settings.batch.reprocess_runner == "spark-operator":
            return self._on_cluster("maintain", [])
        return [t.to_json() for t in maintain(self.spark(), self.settings)]

    def _on_cluster(self, command: str, args: list[str]) -> dict[str, Any]:
        from jobs.batch.sparkapp import (
            application_name,
            batch_application,
            custom_objects_api,
            submit_and_wait,
        )

        app = self.settings.batch.spark_application
        # One application per attempt: a retry must not find (and re-report) the failed one.
        name = application_name(f"{self.run_id}-{command}-{self._attempt_no}", self.start, command)
        manifest = batch_application(self.settings, name=name, arguments=[command, *args], run_id=self.run_id)
        api = self._kube_api or custom_objects_api()
        state = submit_and_wait(
            api,
            manifest,
            timeout_seconds=app.timeout_seconds,
            poll_seconds=app.poll_seconds,
            sleep=self.sleep,
        )
        return {"application": name, "state": state}

    # -- orchestration --------------------------------------------------------------------------
    def _attempt(self, name: str, action: Callable[[], Any], result: WorkflowResult) -> Any:
        b = self.settings.batch
        started_at, t0 = datetime.now(UTC), time.monotonic()
        attempt = 0

        def once() -> Any:
            nonlocal attempt
            attempt += 1
            self._attempt_no = attempt
            return action()

        try:
            output = retry(
                once,
                what=f"step {name}",
                deadline_seconds=math.inf,  # bounded by attempts, like Step Functions' Retry
                max_attempts=b.step_attempts,
                # A quality failure or a permanent error will not pass by waiting; anything else may.
                retryable=lambda exc: not isinstance(exc, (QualityFailedError, *PERMANENT)),
                backoff=Backoff(
                    initial=max(b.retry_backoff_seconds, 1e-3), factor=2, maximum=math.inf, jitter=0
                ),
                reraise=True,
                logger=log,
                sleep=self.sleep,
            )
            self._record(name, "succeeded", attempt, started_at, "")
            return output
        except Exception as exc:
            self._record(name, "failed", attempt, started_at, str(exc)[:1000])
            raise
        finally:
            result.attempts[name] = attempt
            result.seconds[name] = time.monotonic() - t0

    def _record(self, step: str, status: str, attempts: int, started_at: datetime, message: str) -> None:
        self.records.append(
            runs.StepRecord(
                self.run_id,
                "daily",
                self.day.isoformat(),
                step,
                status,
                attempts,
                started_at,
                datetime.now(UTC),
                message,
            )
        )

    def run(self, steps: tuple[str, ...] = STEPS) -> WorkflowResult:
        result = WorkflowResult(self.run_id, self.day, succeeded=False)
        actions = {
            "backfill": self.step_backfill,
            "reprocess": self.step_reprocess,
            "quality": self.step_quality,
            "wallets": self.step_wallets,
            "labels": self.step_labels,
            "maintain": self.step_maintain,
        }
        quality_score: float | None = None
        try:
            for name in steps:
                log.info("daily %s: step %s", self.day, name)
                result.outputs[name] = self._attempt(name, actions[name], result)
                if name == "quality":
                    quality_score = result.outputs[name]["score_pct"]
            result.succeeded = True
        except Exception as exc:
            result.failed_step = next(s for s in steps if s not in result.outputs)
            result.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if isinstance(exc, QualityFailedError):
                result.outputs["quality"] = exc.report.to_json()
                quality_score = exc.report.score_pct
            self._failure_branch(result)
        finally:
            if self._spark is not None and self._spark_factory is None:
                self._spark.stop()
        result.metrics_to = metrics.publish(
            self.settings,
            "daily",
            succeeded=result.succeeded,
            step_seconds=result.seconds,
            step_attempts=result.attempts,
            quality_score=quality_score,
        )
        runs.record(self.settings, self.records)
        return result

    def _failure_branch(self, result: WorkflowResult) -> None:
        subject = f"coattail batch daily {self.day} failed at {result.failed_step}"
        text = f"run {self.run_id}: {result.error}"
        try:
            result.notified = notify(self.settings, subject, text)
        except NotifyError as exc:  # a broken channel must not hide the original failure
            log.error("notification failed: %s", exc)
            result.notified = f"failed: {exc}"


def yesterday() -> date:
    return (datetime.now(UTC) - timedelta(days=1)).date()
