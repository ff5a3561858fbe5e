"""AlertRouter: every detector's alerts go to the DynamoDB hot store and Iceberg ``anomaly_alerts``."""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING, Any

import orjson

from coattail.contracts import Alert
from coattail.errors import CoattailError
from coattail.hotstore import StoreUnavailableError
from coattail.settings import Settings
from jobs import metrics
from jobs.framework.detector import BaseDetector
from jobs.sinks.hot import HotStore
from jobs.sinks.iceberg import ALERT_KEYS, alert_columns, append_once, insert_new, qualified, rows_frame

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from jobs.outbound.publisher import AlertPublisher


def alert_row(alert: Alert) -> dict[str, Any]:
    row = alert.model_dump()  # the contract serialises times as text: hand Spark the datetime
    row["detected_at"] = alert.detected_at
    row["details"] = orjson.dumps(alert.details).decode()
    return row


class AlertRouter:
    """Idempotent on both sides: DynamoDB overwrites (alert_id, detected_at); Iceberg appends once per
    micro-batch tag (streaming) or skips known keys (``route``: batch rewrites)."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        hot: HotStore | None,
        publisher: AlertPublisher | None = None,
    ) -> None:
        self.spark = spark
        self.table = qualified(settings, "anomaly_alerts")
        self.hot = hot
        self.publisher = publisher  # the `alerts` topic/stream (alerts_out): each alert once
        # Spark reports a failed foreachBatch as a Py4J wrapper; the CLI prints this one line instead.
        self.failure: CoattailError | None = None

    def route(self, alerts: list[Alert]) -> int:
        """Both stores, merging into the lake on the alert keys (batch reprocessing rewrites)."""
        self.to_hot(alerts)
        if alerts:
            frame = rows_frame(self.spark, [alert_row(a) for a in alerts], alert_columns())
            insert_new(frame, self.table, ALERT_KEYS)
            self._count(alerts)
        return len(alerts)

    def to_hot(self, alerts: list[Alert]) -> None:
        """DynamoDB first, before any lake write: it is what users and the API watch (latency); then the
        ``alerts`` topic for subscribers (a failure there fails the micro-batch, which is replayed)."""
        if alerts and self.hot is not None:
            try:
                self.hot.write(alerts)  # waits out a short outage (hot_store.retry_seconds)
                for module_id, n in Tally(a.module_id for a in alerts).items():
                    metrics.HOT_WRITES.labels(module_id).inc(n)
                if self.publisher is not None:
                    self.publisher.publish(alerts)  # once per alert_id, even across replays
            except CoattailError as exc:
                self.failure = exc
                raise

    def retract(self, alerts: list[Alert]) -> None:
        """Remove early warnings their closed window did not confirm (rare: see jobs.logic.early_spikes)."""
        if alerts and self.hot is not None:
            try:
                self.hot.delete(alerts)
            except StoreUnavailableError as exc:
                self.failure = exc
                raise

    def points_to_hot(self, detector: BaseDetector, records: list[dict[str, Any]]) -> None:
        """Every window row's chart points (flagged or not) into the recent-windows store."""
        points = [p for r in records for p in detector.window_points(r)]
        if points and self.hot is not None:
            try:
                self.hot.write_points(points)
            except StoreUnavailableError as exc:
                self.failure = exc
                raise

    def records_to_hot(self, detector: BaseDetector, records: list[dict[str, Any]]) -> None:
        """The module's own hot-store rows (:meth:`BaseDetector.publish`), after its alerts."""
        if records and self.hot is not None:
            try:
                detector.publish(self.hot, records)
            except StoreUnavailableError as exc:
                self.failure = exc
                raise

    def to_lake(self, alerts: list[Alert], batch_key: str, *, check: bool = True) -> int:
        """Append a micro-batch's alerts once (tag ``batch_key``): no MERGE on the streaming path."""
        if not alerts:
            return 0
        frame = rows_frame(self.spark, [alert_row(a) for a in alerts], alert_columns())
        if append_once(frame, self.table, f"{batch_key}:alerts", check=check):
            self._count(alerts)
        return len(alerts)

    @staticmethod
    def _count(alerts: list[Alert]) -> None:
        for (module_id, alert_type), n in Tally((a.module_id, a.alert_type) for a in alerts).items():
            metrics.ALERTS.labels(module_id, alert_type).inc(n)
