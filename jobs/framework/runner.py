"""PipelineRunner: one Spark application — source → data quality → every active detector → AlertRouter.

Queries (all in this one application, sharing the driver and executors):

* ``coattail-ingest``: quality, de-duplication (event id within ``quality.dedup_window_minutes`` of
  arrival), ``raw_trades``, ``dead_letters``, the quality metrics, and every *stateless* detector
  (MOD-002) on the same micro-batch, so the stream is read once for all of them;
* one query per *stateful* detector (MOD-001, MOD-003): its own event-time watermark and state.

Each query has its own checkpoint under ``pipeline.checkpoint_location``; every sink write is
idempotent (see ``jobs.sinks``), so a restart that replays the last micro-batch writes nothing twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coattail.errors import CoattailError
from coattail.settings import Settings
from jobs import metrics, quality
from jobs.framework.detector import BaseDetector, DetectorResult, Rejected, convertible
from jobs.framework.registry import ModuleRegistry
from jobs.framework.router import AlertRouter
from jobs.sinks.hot import HotStore
from jobs.sinks.iceberg import (
    RAW_TRADES_COLUMNS,
    append_once,
    column_names,
    ensure_core_tables,
    ensure_table,
    insert_new,
    qualified,
    rows_frame,
)
from jobs.sources import raw_stream

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger("jobs.pipeline")
_LISTENING: set[int] = set()  # Spark sessions that already have our listener


class PipelineError(CoattailError):
    """A streaming query failed; the message is its first line."""


def checkpoint_root(settings: Settings) -> str:
    return settings.pipeline.checkpoint_location or str(settings.state_path("checkpoints", "pipeline"))


class PipelineRunner:
    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        *,
        detectors: list[BaseDetector] | None = None,
        raw: DataFrame | None = None,
        hot: HotStore | None = None,
        use_hot_store: bool = True,
    ) -> None:
        self.spark = spark
        self.settings = settings
        self.detectors = detectors if detectors is not None else ModuleRegistry(settings).detectors()
        self._raw = raw  # tests inject a file stream; otherwise stream.backend decides
        self.hot = hot if hot is not None or not use_hot_store else HotStore(settings)
        self.router = AlertRouter(spark, settings, self.hot)
        self.queries: list[StreamingQuery] = []
        self._ids: dict[str, str] = {}
        self._started = threading.Event()
        self._checked: set[str] = set()

    # -- set-up -------------------------------------------------------------------------------------
    def ensure_tables(self) -> None:
        """Core tables always; a module's table only when the module is active (seed §3.4)."""
        ensure_core_tables(self.spark, self.settings)
        for d in self.detectors:
            ensure_table(self.spark, self.settings, d.output_table(), d.table_columns(), d.partitioning())

    def start(self) -> list[StreamingQuery]:
        self.ensure_tables()
        if id(self.spark) not in _LISTENING:
            self.spark.streams.addListener(metrics.QualityListener())
            _LISTENING.add(id(self.spark))
        raw = self._raw if self._raw is not None else raw_stream(self.spark, self.settings)
        classified = quality.classify(raw, self.settings)
        p, q = self.settings.pipeline, self.settings.quality
        root = checkpoint_root(self.settings)
        trigger = f"{p.trigger_interval_seconds:g} seconds"

        ingest = (
            classified.observe("dq_in", _count())
            .withWatermark("source_ts", f"{q.dedup_window_minutes} minutes")
            .dropDuplicatesWithinWatermark(["dq_key"])
        )
        self._start(
            quality.quality_metrics(ingest, "dq_out"), metrics.INGEST_QUERY, root, trigger, self._ingest
        )
        for d in self.detectors:
            if not d.stateful:
                continue
            trades = (
                convertible(quality.passed(classified))  # a time no converter takes never sets a watermark
                .withWatermark("timestamp", f"{d.watermark_seconds()} seconds")
                .dropDuplicatesWithinWatermark(["event_id"])
            )
            self._start(d.process(trades), d.module_id, root, trigger, self._detector_sink(d))
        self._started.set()
        return self.queries

    def _start(self, df: DataFrame, name: str, root: str, trigger: str, sink: Any) -> None:
        query = (
            df.writeStream.queryName(name)
            .outputMode("append")
            .option("checkpointLocation", str(Path(root) / name) if "://" not in root else f"{root}/{name}")
            .trigger(processingTime=trigger)
            .foreachBatch(sink)
            .start()
        )
        self._ids[name] = str(query.id)  # stable across restarts from the same checkpoint
        self.queries.append(query)

    def _batch_key(self, name: str, batch_id: int) -> tuple[str, bool]:
        """Tag of a micro-batch, and whether to look for it: only a restart's first batch can be a replay."""
        self._started.wait(60)
        check = name not in self._checked
        self._checked.add(name)
        return f"{self._ids[name]}:{batch_id}", check

    # -- micro-batches ------------------------------------------------------------------------------
    def _ingest(self, df: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        key, check = self._batch_key(metrics.INGEST_QUERY, batch_id)
        df.persist()
        try:
            if df.isEmpty():  # no-data batches only move the dedup watermark
                return
            t0 = time.monotonic()
            good = df.where(F.col("dq_reason").isNull()).select(*column_names(RAW_TRADES_COLUMNS))
            bad = quality.dead_letters(df)
            stateless = [
                (d, self._detect(d, d.process(good), metrics.INGEST_QUERY, batch_id))
                for d in self.detectors
                if not d.stateful
            ]
            for _, result in stateless:  # alerts reach the hot store before the slower lake writes
                self.router.to_hot(result.alerts)
            t1 = time.monotonic()
            append_once(good, qualified(self.settings, "raw_trades"), key, check=check)
            if not bad.isEmpty():
                append_once(bad, qualified(self.settings, "dead_letters"), key, check=check)
            t2 = time.monotonic()
            for d, result in stateless:
                self._to_lake(d, result)
            log.debug(
                "ingest batch %d: detect+hot %.2fs, raw/dead-letter %.2fs, module+alert lake %.2fs",
                batch_id, t1 - t0, t2 - t1, time.monotonic() - t2,
            )  # fmt: skip
        finally:
            df.unpersist()

    def _detector_sink(self, detector: BaseDetector) -> Any:
        def sink(df: DataFrame, batch_id: int) -> None:
            self._emit(detector, df, batch_id)

        return sink

    def _emit(self, detector: BaseDetector, output: DataFrame, batch_id: int) -> DetectorResult:
        result = self._detect(detector, output, detector.module_id, batch_id)
        self.router.to_hot(result.alerts)
        self.router.points_to_hot(detector, result.records)  # the dashboard's charts: every window
        self._to_lake(detector, result)
        return result

    def _detect(self, detector: BaseDetector, output: DataFrame, query: str, batch_id: int) -> DetectorResult:
        result, rejected = detector.finish_guarded([r.asDict() for r in output.collect()])
        if rejected:  # dead-lettered, not retried: a replay of this batch would fail the same way
            self._dead_letter_rejected(detector, rejected, query, batch_id)
        return result

    def _dead_letter_rejected(
        self, detector: BaseDetector, rejected: list[Rejected], query: str, batch_id: int
    ) -> None:
        from datetime import UTC, datetime

        metrics.REJECTED.labels(detector.module_id).inc(len(rejected))
        log.error(
            "%s set aside %d output row(s) it could not finish, first: %s",
            detector.module_id, len(rejected), rejected[0].reason,
        )  # fmt: skip
        now = datetime.now(UTC)
        rows = [
            {
                "reason": f"{detector.module_id}: {r.reason}"[:500],
                "raw": json.dumps(r.row, default=str, sort_keys=True),
                "source_pos": f"{query}/{batch_id}",
                "received_at": now,
            }
            for r in rejected
        ]
        self._started.wait(60)  # query ids are known once every query has started
        key = f"{self._ids[query]}:{batch_id}:{detector.module_id}"  # a replayed batch writes them once
        frame = rows_frame(self.spark, rows, quality.DEAD_LETTER_COLUMNS)
        append_once(frame, qualified(self.settings, "dead_letters"), key)

    def _to_lake(self, detector: BaseDetector, result: DetectorResult) -> None:
        if result.records:
            frame = rows_frame(self.spark, result.records, detector.table_columns())
            insert_new(frame, qualified(self.settings, detector.output_table()), detector.record_keys())
        self.router.to_lake(result.alerts)

    # -- running ------------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise the first failed query's error as one line: the store's own when the router kept it
        (Spark would only show its Py4J wrapper), else the query's first line."""
        for query in self.queries:
            if not query.isActive and query.exception() is not None:
                if self.router.failure is not None:
                    raise self.router.failure
                first = str(query.exception()).strip().splitlines()[0]
                raise PipelineError(f"streaming query {query.name} failed: {first}")

    def drain(self, max_rounds: int = 10) -> None:
        """Process everything available, including the no-data batches that close windows."""
        for _ in range(max_rounds):
            before = [q.lastProgress["batchId"] if q.lastProgress else -1 for q in self.queries]
            for query in self.queries:
                query.processAllAvailable()
            time.sleep(self.settings.pipeline.trigger_interval_seconds)
            for query in self.queries:
                query.processAllAvailable()
            self.check()
            after = [q.lastProgress["batchId"] if q.lastProgress else -1 for q in self.queries]
            if after == before:
                return

    def run(self, *, max_seconds: float | None = None, stop: threading.Event | None = None) -> None:
        """Block until ``stop`` is set, ``max_seconds`` pass or a query fails."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        stop = stop or threading.Event()
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            self.check()
            stop.wait(1.0)

    def stop(self, grace_seconds: float = 30) -> None:
        """Let running micro-batches finish (up to ``grace_seconds``), then stop every query."""
        deadline = time.monotonic() + grace_seconds
        for query in self.queries:
            while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
                time.sleep(0.2)
            query.stop()
        self.queries = []


def _count() -> Any:
    from pyspark.sql import functions as F

    return F.count(F.lit(1)).alias("records")
