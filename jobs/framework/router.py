"""AlertRouter: every detector's alerts go to the DynamoDB hot store and Iceberg ``anomaly_alerts``."""

from __future__ import annotations

from collections import Counter as Tally
from typing import TYPE_CHECKING, Any

import orjson

from coattail.contracts import Alert
from coattail.hotstore import StoreUnavailableError
from coattail.settings import Settings
from jobs import metrics
from jobs.framework.detector import BaseDetector
from jobs.sinks.hot import HotStore
from jobs.sinks.iceberg import ALERT_KEYS, alert_columns, insert_new, qualified, rows_frame

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def alert_row(alert: Alert) -> dict[str, Any]:
    row = alert.model_dump()  # the contract serialises times as text: hand Spark the datetime
    row["detected_at"] = alert.detected_at
    row["details"] = orjson.dumps(alert.details).decode()
    return row


class AlertRouter:
    """Idempotent on both sides: DynamoDB overwrites (alert_id, detected_at); Iceberg skips known keys."""

    def __init__(self, spark: SparkSession, settings: Settings, hot: HotStore | None) -> None:
        self.spark = spark
        self.table = qualified(settings, "anomaly_alerts")
        self.hot = hot
        # Spark reports a failed foreachBatch as a Py4J wrapper; the CLI prints this one line instead.
        self.failure: StoreUnavailableError | None = None

    def route(self, alerts: list[Alert]) -> int:
        self.to_hot(alerts)
        return self.to_lake(alerts)

    def to_hot(self, alerts: list[Alert]) -> None:
        """DynamoDB first, before any lake write: it is what users and the API watch (latency)."""
        if alerts and self.hot is not None:
            try:
                self.hot.write(alerts)  # waits out a short outage (hot_store.retry_seconds)
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

    def to_lake(self, alerts: list[Alert]) -> int:
        if not alerts:
            return 0
        insert_new(
            rows_frame(self.spark, [alert_row(a) for a in alerts], alert_columns()), self.table, ALERT_KEYS
        )
        for (module_id, alert_type), n in Tally((a.module_id, a.alert_type) for a in alerts).items():
            metrics.ALERTS.labels(module_id, alert_type).inc(n)
        return len(alerts)
