"""The MOD-011 back-test over the lake: ``anomaly_alerts`` against ``raw_trades`` at one snapshot.

``run_backtest(start, end)`` reads the alerts detected in [start, end) and the trades of [start −
price age, end + longest horizon] with Iceberg time travel (the given snapshot, else the current one),
so a back-test is reproducible: the same inputs give the same run id, the same rows and the same
alerts. Outcomes are known as of ``as_of`` (default: the newest trade read, never later than now); an
alert whose horizon has not elapsed then is *pending*, counted as such and never as a miss.

Idempotency: ``backtest_results`` rows are keyed by (backtest_date, module_id, symbol, horizon) with
backtest_date the day the alerts were detected, and written with MERGE (update or insert), so a rerun
rewrites the same rows and a later run over the same day replaces them with more resolved outcomes.
The daily step (:func:`backtest_step`) therefore runs over the previous day *and* the day itself: the
previous day's 4 h and 24 h outcomes, pending at its first run, resolve in the second and update its
rows. Alerts go through the AlertRouter (hot store overwrite, lake MERGE on the alert keys); their ids
are deterministic (run id; module and day for a degradation), so a rerun raises nothing new. The
trailing days of the degradation rule are the earlier rows of ``backtest_results``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coattail.errors import CoattailError
from coattail.settings import Settings
from jobs.backtest_logic import BACKTESTED_TYPES, AlertLike, PriceIndex
from jobs.batch import lake
from jobs.detectors.backtester import (
    BacktesterDetector,
    BacktestRun,
    backtest_run,
    lake_alert,
    net_flows,
    price_rows,
    run_id_of,
    with_flows,
)
from jobs.detectors.common import from_us
from jobs.sinks.iceberg import commit_lock, ensure_table, qualified, rows_frame

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("jobs.batch")
BACKTESTER = "MOD-011"
ALERTS_TABLE, TRADES_TABLE, SCORES_TABLE = "anomaly_alerts", "raw_trades", "predictive_scores"


class BacktestError(CoattailError, ValueError):
    """The back-test cannot run as asked (bad range, unknown snapshot, missing tables); says why."""


@dataclass
class BacktestReport:
    run: BacktestRun
    rows_written: int
    alerts_routed: int
    published: int | None  # backtest rows put in the hot store (None: no analytics store)
    report_path: Path | None = None
    calibration: list[dict[str, Any]] = field(default_factory=list)  # MOD-010: p_1h bins vs realized
    seconds: float = 0.0

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.run.rows

    def summary(self) -> dict[str, Any]:
        return {
            **self.run.summary(),
            "rows_written": self.rows_written,
            "alerts": [a.alert_type for a in self.run.alerts],
            "published": self.published,
            "report": str(self.report_path) if self.report_path else None,
            "seconds": round(self.seconds, 2),
        }


def backtester(settings: Settings) -> BacktesterDetector:
    if BACKTESTER not in settings.modules:
        raise BacktestError(f"{BACKTESTER} (backtester) is not in config/features.yaml `modules`")
    detector = BacktesterDetector()
    detector.configure(settings)
    return detector


def resolve_snapshot(settings: Settings, snapshot_id: int | None) -> int:
    """The raw_trades snapshot to read: the given id (checked), else the current one."""
    table = lake.existing_table(settings, TRADES_TABLE)
    if table is None:
        raise BacktestError(
            f"{TRADES_TABLE} does not exist yet; run the pipeline or `coattail batch backfill`"
        )
    if snapshot_id is not None:
        if table.snapshot_by_id(snapshot_id) is None:
            known = ", ".join(str(s.snapshot_id) for s in table.snapshots()[-5:]) or "none"
            raise BacktestError(f"{TRADES_TABLE} has no snapshot {snapshot_id}; latest snapshots: {known}")
        return snapshot_id
    current = table.current_snapshot()
    if current is None:
        raise BacktestError(f"{TRADES_TABLE} is empty; nothing to price the alerts with")
    return int(current.snapshot_id)


def check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise BacktestError(f"--end {end.isoformat()} must be after --start {start.isoformat()}")
    return start, end


def run_backtest(
    spark: SparkSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    snapshot_id: int | None = None,
    as_of: datetime | None = None,
    report_dir: Path | None = None,
) -> BacktestReport:
    """Back-test the alerts detected in [start, end); write backtest_results, route the run's alerts,
    publish the run to the hot store and (``report_dir``) write the HTML report."""
    from pyspark.sql import functions as F

    started = time.monotonic()
    start, end = check_range(start, end)
    detector = backtester(settings)
    params = detector.params
    sid = resolve_snapshot(settings, snapshot_id)
    if lake.existing_table(settings, ALERTS_TABLE) is None:
        raise BacktestError(f"{ALERTS_TABLE} does not exist yet; no alerts to back-test")

    alerts_table = qualified(settings, ALERTS_TABLE)
    spark.sql(f"REFRESH TABLE {alerts_table}")
    alert_rows = (
        spark.table(alerts_table)
        .where((F.col("detected_at") >= F.lit(start)) & (F.col("detected_at") < F.lit(end)))
        .where(F.col("module_id") != BACKTESTER)
        .where(F.col("alert_type").isin(sorted(BACKTESTED_TYPES)))
        .select(
            "alert_id",
            "module_id",
            "alert_type",
            "symbol",
            "exchange",
            "details",
            F.unix_micros("detected_at").alias("detected_us"),
        )
        .dropDuplicates(["alert_id"])
        .collect()
    )
    alerts: list[AlertLike] = sorted(
        (lake_alert(r.asDict()) for r in alert_rows), key=lambda a: (a.detected_at, a.alert_id)
    )

    trades = (
        spark.read.option("versionAsOf", str(sid))
        .table(qualified(settings, TRADES_TABLE))
        .where(
            (F.col("timestamp") >= F.lit(start - params.max_age))
            & (F.col("timestamp") <= F.lit(end + params.longest))
        )
        .dropDuplicates(["event_id"])
    ).persist()
    try:
        prices = PriceIndex(price_rows(trades, params.price_bucket_seconds), params.max_age)
        if prices.last_time is None:
            raise BacktestError(
                f"{TRADES_TABLE} (snapshot {sid}) has no trades between {start.isoformat()} and "
                f"{(end + params.longest).isoformat()}; nothing to price the alerts with"
            )
        alerts = with_flows(alerts, net_flows(alerts, trades))
    finally:
        trades.unpersist()
    known = min(datetime.now(UTC), prices.last_time)
    as_of = min(_utc(as_of), known) if as_of is not None else known
    run_id = run_id_of(start, end, sid, as_of)
    earlier = read_results(
        spark, settings, start.date() - timedelta(days=params.degradation.trailing_days), start
    )
    run = backtest_run(
        alerts, prices, as_of, params, window_start=start, window_end=end, run_id=run_id, snapshot_id=sid,
        earlier_rows=earlier, ttl=detector.alert_ttl(),
    )  # fmt: skip
    written = write_results(spark, settings, detector, run.rows)
    calibration = mod010_calibration(spark, settings, start, end, prices, as_of, params.move_pct)

    report_path = None
    if report_dir is not None:
        from jobs.batch.backtest_report import write_report

        report_path = write_report(Path(report_dir), run, calibration)

    from jobs.framework.router import AlertRouter
    from jobs.sinks.hot import HotStore

    hot = HotStore(settings)
    try:
        routed = AlertRouter(spark, settings, hot).route(run.alerts)
        published = None
        analytics = getattr(hot, "analytics", None)
        if analytics is not None:
            summary = {**run.summary(), "report": str(report_path) if report_path else None}
            published = int(analytics.put_backtest(summary, [_json_row(r) for r in run.rows]))
    finally:
        hot.close()
    log.info(
        "back-tested %d alerts of [%s, %s) at snapshot %d as of %s: %d rows, %d alerts",
        run.alerts_evaluated, start, end, sid, as_of, len(run.rows), len(run.alerts),
    )  # fmt: skip
    return BacktestReport(
        run, written, routed, published, report_path, calibration, time.monotonic() - started
    )


def backtest_step(spark: SparkSession, settings: Settings, day: date) -> dict[str, Any]:
    """The daily step: the alerts of ``day`` and of the day before (whose longer horizons have elapsed
    since its own run), written under their detection days; skipped when MOD-011 is not in the tier."""
    from jobs.batch.wallets import skipped

    if (skip := skipped(settings, BACKTESTER)) is not None:
        return skip
    end = datetime.combine(day + timedelta(days=1), dtime(0), tzinfo=UTC)
    start = end - timedelta(days=2)
    report = run_backtest(spark, settings, start, end, report_dir=settings.state_path("reports"))
    return report.summary()


def read_results(
    spark: SparkSession, settings: Settings, first: date, before: datetime
) -> list[dict[str, Any]]:
    """backtest_results rows of the days [first, before's day) (the degradation rule's trailing days)."""
    from pyspark.sql import functions as F

    detector = backtester(settings)
    if lake.existing_table(settings, detector.output_table()) is None:
        return []
    table = qualified(settings, detector.output_table())
    spark.sql(f"REFRESH TABLE {table}")
    frame = spark.table(table).where(
        (F.col("backtest_date") >= F.lit(first)) & (F.col("backtest_date") < F.lit(before.date()))
    )
    return [
        r.asDict()
        for r in frame.select("backtest_date", "module_id", "symbol", "horizon", "n", "hits").collect()
    ]


def latest_results(spark: SparkSession, settings: Settings, day: date) -> list[dict[str, Any]]:
    """The backtest_results rows of one backtest_date (as written, times exact UTC)."""
    from pyspark.sql import functions as F

    detector = backtester(settings)
    if lake.existing_table(settings, detector.output_table()) is None:
        return []
    table = qualified(settings, detector.output_table())
    spark.sql(f"REFRESH TABLE {table}")
    times = ("window_start", "window_end", "as_of")
    frame = spark.table(table).where(F.col("backtest_date") == F.lit(day))
    frame = frame.select(*(F.unix_micros(c).alias(c) if c in times else F.col(c) for c in frame.columns))
    rows = [r.asDict() for r in frame.collect()]
    for row in rows:
        for c in times:
            row[c] = from_us(row[c])
    return sorted(rows, key=lambda r: (r["module_id"], r["symbol"], r["horizon"]))


def write_results(
    spark: SparkSession, settings: Settings, detector: BacktesterDetector, rows: list[dict[str, Any]]
) -> int:
    """MERGE the rows on the record keys: matched rows are updated (a later run knows more), new ones
    inserted. A rerun with the same inputs rewrites identical values."""
    columns = detector.table_columns()
    ensure_table(spark, settings, detector.output_table(), columns, detector.partitioning())
    if not rows:
        return 0
    table = qualified(settings, detector.output_table())
    frame = rows_frame(spark, rows, columns)
    view = "coattail_backtest_rows"
    frame.createOrReplaceTempView(view)
    on = " AND ".join(f"t.{k} <=> s.{k}" for k in detector.record_keys())
    with commit_lock(table):
        spark.sql(
            f"MERGE INTO {table} t USING {view} s ON {on} "
            "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        )
    spark.catalog.dropTempView(view)
    return len(rows)


def mod010_calibration(
    spark: SparkSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    prices: PriceIndex,
    as_of: datetime,
    move_pct: float,
) -> list[dict[str, Any]]:
    """MOD-010's p_1h against what happened (a > move_pct % move within 1 h), from predictive_scores
    rows scored in [start, end); empty when the table does not exist or nothing has resolved."""
    from pyspark.sql import functions as F

    from jobs.backtest_logic import big_move, calibration

    if lake.existing_table(settings, SCORES_TABLE) is None:
        return []
    table = qualified(settings, SCORES_TABLE)
    spark.sql(f"REFRESH TABLE {table}")
    rows = (
        spark.table(table)
        .where((F.col("scored_at") >= F.lit(start)) & (F.col("scored_at") < F.lit(end)))
        .select("symbol", F.unix_micros("scored_at").alias("us"), F.col("p_1h").cast("double").alias("p"))
        .collect()
    )
    points = []
    for r in rows:
        if r["p"] is None:
            continue
        happened = big_move(prices, r["symbol"], from_us(r["us"]), "1h", as_of, move_pct)
        if happened is not None:
            points.append((float(r["p"]), happened))
    return calibration(points)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    from jobs.detectors.backtester import BacktestRow

    return BacktestRow.model_validate(row).model_dump(mode="json")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
