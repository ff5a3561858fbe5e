"""Reprocessing (seed §5.3): the detectors over ``raw_trades`` as of a snapshot, compared and swapped.

``raw_trades`` is read with Iceberg time travel (a snapshot id, or the snapshot current at a time),
the *same* detector code runs in batch mode (``jobs.batch.detect``, the pipeline's), the alerts land in
``anomalies_reprocessed`` tagged with a reprocess id, and the diff against ``anomaly_alerts`` is
reported per alert type. ``swap`` replaces the range in ``anomaly_alerts`` with one MERGE: a single
Iceberg commit, so readers see either the old or the new alerts of the range, never a mix.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from coattail.contracts import Alert
from coattail.errors import CoattailError
from coattail.settings import Settings
from jobs.batch import lake
from jobs.batch.diff import AlertDiff, diff_alerts
from jobs.detectors.common import from_us
from jobs.framework.router import alert_row
from jobs.quality import TRADE_COLUMNS
from jobs.sinks.iceberg import COMMIT_LOCK, alert_columns, column_names, qualified, rows_frame

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("jobs.batch")


class ReprocessError(CoattailError, ValueError):
    """The requested snapshot/time cannot be read; says which and what exists."""


@dataclass
class ReprocessResult:
    reprocess_id: str
    snapshot_id: int
    start: datetime
    end: datetime
    trades_read: int
    alerts: list[Alert]
    diff: AlertDiff
    swapped: bool
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "reprocess_id": self.reprocess_id,
            "snapshot_id": self.snapshot_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "trades_read": self.trades_read,
            "alerts": len(self.alerts),
            "diff": self.diff.counts(),
            "swapped": self.swapped,
            "seconds": round(self.seconds, 2),
        }


def resolve_snapshot(settings: Settings, snapshot_id: int | None, as_of: datetime | None) -> int:
    """raw_trades snapshot to read: the given id (checked), the one current at ``as_of``, or the latest."""
    table = lake.ensure_table(settings, "raw_trades")
    if snapshot_id is not None:
        if table.snapshot_by_id(snapshot_id) is None:
            known = ", ".join(str(s.snapshot_id) for s in table.snapshots()[-5:]) or "none"
            raise ReprocessError(f"raw_trades has no snapshot {snapshot_id}; latest snapshots: {known}")
        return snapshot_id
    if as_of is not None:
        found = table.snapshot_as_of_timestamp(int(as_of.timestamp() * 1000))
        if found is None:
            raise ReprocessError(f"raw_trades has no snapshot at or before {as_of.isoformat()}")
        return int(found.snapshot_id)
    current = table.current_snapshot()
    if current is None:
        raise ReprocessError("raw_trades is empty; run `coattail batch backfill` first")
    return int(current.snapshot_id)


def context_window(settings: Settings) -> tuple[timedelta, timedelta]:
    """(warm-up, look-ahead) of the active detectors: baselines need history before ``start`` and
    the last windows need their trades after it, so results inside the range match the stream's."""
    warmup, lookahead = timedelta(0), timedelta(0)
    for module_id in settings.active_modules:
        params = settings.modules[module_id].params
        window = timedelta(seconds=float(params.get("window_seconds", 0)))
        baseline = timedelta(minutes=float(params.get("baseline_minutes", 0)))
        warmup, lookahead = max(warmup, baseline + window), max(lookahead, window)
    return warmup, lookahead


def _ts(value: datetime) -> str:
    return f"TIMESTAMP '{value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def current_alerts(
    spark: SparkSession, settings: Settings, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    lake.ensure_table(settings, "anomaly_alerts")
    types = ", ".join(f"'{t}'" for t in settings.alert_types())
    # Times leave Spark as epoch microseconds: collect() would hand back naive local-time datetimes.
    # Table names come from config and times are formatted by _ts: no user text reaches the SQL.
    table = qualified(settings, "anomaly_alerts")
    frame = spark.sql(
        f"SELECT *, unix_micros(detected_at) AS _detected_us FROM {table} "  # noqa: S608
        f"WHERE detected_at >= {_ts(start)} AND detected_at < {_ts(end)} AND alert_type IN ({types})"
    )
    rows = [r.asDict() for r in frame.collect()]
    for row in rows:
        row["detected_at"] = from_us(row.pop("_detected_us"))
    return rows


def reprocess(
    spark: SparkSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    snapshot_id: int | None = None,
    as_of: datetime | None = None,
    swap: bool = False,
) -> ReprocessResult:
    from pyspark.sql import functions as F

    from jobs.batchmode import detect, sorted_alerts

    if end <= start:
        raise ReprocessError(f"--end ({end.isoformat()}) must be after --start ({start.isoformat()})")
    started = time.monotonic()
    sid = resolve_snapshot(settings, snapshot_id, as_of)
    warmup, lookahead = context_window(settings)
    trades = (
        spark.read.option("versionAsOf", str(sid))
        .table(qualified(settings, "raw_trades"))
        .where((F.col("timestamp") >= F.lit(start - warmup)) & (F.col("timestamp") < F.lit(end + lookahead)))
        .select(*TRADE_COLUMNS)
        .dropDuplicates(["event_id"])
    )
    read = trades.count()
    results = detect(spark, settings, trades)
    alerts = [a for a in sorted_alerts(results) if start <= a.detected_at < end]
    rows = [alert_row(a) for a in alerts]
    reprocess_id = f"rp-{sid}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    _write_reprocessed(spark, settings, rows, reprocess_id)
    diff = diff_alerts(current_alerts(spark, settings, start, end), rows)
    if swap:
        swap_range(spark, settings, rows, start, end)
    log.info("reprocessed %s..%s at snapshot %d: %d trades, %d alerts", start, end, sid, read, len(alerts))
    return ReprocessResult(
        reprocess_id, sid, start, end, read, alerts, diff, swap, time.monotonic() - started
    )


def _write_reprocessed(spark: SparkSession, settings: Settings, rows: list[dict[str, Any]], rid: str) -> None:
    columns, _ = lake.table_definition("anomalies_reprocessed")
    lake.ensure_table(settings, "anomalies_reprocessed")
    if not rows:
        return
    frame = rows_frame(spark, [{**r, "reprocess_id": rid} for r in rows], columns)
    with COMMIT_LOCK:
        frame.writeTo(qualified(settings, "anomalies_reprocessed")).append()


def swap_range(
    spark: SparkSession, settings: Settings, rows: list[dict[str, Any]], start: datetime, end: datetime
) -> None:
    """Make ``anomaly_alerts`` hold exactly ``rows`` for [start, end) and the active alert types."""
    lake.ensure_table(settings, "anomaly_alerts")
    columns = alert_columns()
    view = "coattail_reprocessed_swap"
    rows_frame(spark, rows, columns).createOrReplaceTempView(view)
    target = qualified(settings, "anomaly_alerts")
    types = ", ".join(f"'{t}'" for t in settings.alert_types())
    sets = ", ".join(f"t.{c} = s.{c}" for c in column_names(columns))
    in_range = f"t.detected_at >= {_ts(start)} AND t.detected_at < {_ts(end)} AND t.alert_type IN ({types})"
    with COMMIT_LOCK:
        spark.sql(
            f"MERGE INTO {target} t USING {view} s "
            f"ON t.alert_id = s.alert_id AND t.detected_at = s.detected_at "
            f"WHEN MATCHED THEN UPDATE SET {sets} "
            f"WHEN NOT MATCHED THEN INSERT * "
            f"WHEN NOT MATCHED BY SOURCE AND {in_range} THEN DELETE"
        )
    spark.catalog.dropTempView(view)
