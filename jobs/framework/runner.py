"""PipelineRunner: one Spark application — source → data quality → every active detector → AlertRouter.

Alerts first, lake second (DESIGN.md). Queries, all in this one application:

* ``coattail-alerts`` (``pipeline.alert_trigger_seconds``, 1 s): quality and every *stateless* detector
  (MOD-002) → hot store. No Iceberg work and no state (a duplicate trade rewrites its alert's item), so
  a whale alert never waits for a commit;
* one query per *stateful* detector (``pipeline.window_trigger_seconds``, 2 s; its own watermark and
  state): a window the watermark closes → hot store (alerts, early warnings, chart points), then its rows
  and alerts appended to the lake;
* ``coattail-ingest``, the lake path (``pipeline.trigger_interval_seconds``, ≥ 10 s): quality metrics,
  ``raw_trades``, ``dead_letters`` and the stateless detectors' table rows and alerts (the same pure
  functions over the same de-duplicated trades, so the same alerts) in few, bigger commits.

On-chain events (their own topic/stream, ``stream.kafka.onchain_topic``) are read only when an active
module ``reads`` them, with the same three cadences: ``coattail-onchain-alerts`` (on-chain quality and
the stateless on-chain detectors, MOD-008 → hot store), one query per stateful on-chain detector
(MOD-009, watermark on ``block_timestamp``), and ``coattail-onchain-ingest`` (the clean events into
the table of the module that lands them, ``onchain_events``; dead letters; the stateless detectors'
alerts into the lake) — ``jobs.onchain_quality`` in front of each.

Lake writes are appends tagged ``<query id>:<batch id>`` (``jobs.sinks.iceberg.append_once``) — no MERGE
on the streaming path — and hot-store writes are puts of deterministic ids: a restart that replays a
micro-batch, wherever the kill fell (before, between or after the hot and the lake write), rewrites the
same items and skips the lake commits it finds. The alert queries' jobs run in a FAIR pool ahead of the
lake path's (``jobs.session.scheduler_conf``).
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
from jobs import metrics, onchain_quality, quality
from jobs.framework.detector import ONCHAIN, TRADES, BaseDetector, DetectorResult, Rejected, convertible
from jobs.framework.registry import ModuleRegistry
from jobs.framework.router import AlertRouter
from jobs.session import ALERT_POOL, LAKE_POOL
from jobs.sinks.hot import HotStore
from jobs.sinks.iceberg import (
    RAW_TRADES_COLUMNS,
    append_once,
    column_names,
    ensure_core_tables,
    ensure_table,
    qualified,
    rows_frame,
)
from jobs.sources import raw_stream

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from jobs.outbound.publisher import AlertPublisher

log = logging.getLogger("jobs.pipeline")
ONCHAIN_INGEST_QUERY = metrics.ONCHAIN_INGEST_QUERY  # the on-chain lake path: onchain_events, dead letters
ONCHAIN_ALERTS_QUERY = "coattail-onchain-alerts"  # stateless on-chain detectors -> hot store
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
        raw_onchain: DataFrame | None = None,
        hot: HotStore | None = None,
        use_hot_store: bool = True,
        publisher: AlertPublisher | None = None,
    ) -> None:
        self.spark = spark
        self.settings = settings
        chosen = detectors if detectors is not None else ModuleRegistry(settings).detectors()
        self.detectors = [d for d in chosen if d.streams]  # MOD-011 runs as a batch step, not here
        self._raw = raw  # tests inject a file stream; otherwise stream.backend decides
        self._raw_onchain = raw_onchain
        self.hot = hot if hot is not None or not use_hot_store else HotStore(settings)
        self.router = AlertRouter(spark, settings, self.hot, publisher)
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
        p, q = self.settings.pipeline, self.settings.quality
        root = checkpoint_root(self.settings)

        def deduplicated(classified: DataFrame) -> DataFrame:
            dedup = f"{q.dedup_window_minutes} minutes"
            return classified.withWatermark("source_ts", dedup).dropDuplicatesWithinWatermark(["dq_key"])

        lake_in = quality.classify(self._source(lake=True), self.settings).observe("dq_in", _count())
        self._start(
            quality.quality_metrics(deduplicated(lake_in), "dq_out"),
            metrics.INGEST_QUERY,
            root,
            p.trigger_interval_seconds,
            self._ingest,
        )
        if any(not d.stateful for d in self._reading(TRADES)):
            # No de-duplication state here: a per-trade alert's id comes from the trade's event id, so a
            # duplicate trade rewrites the same item. (The state store's commit would cost every batch.)
            alerts_in = quality.classify(self._source(), self.settings)
            self._start(alerts_in, metrics.ALERTS_QUERY, root, p.alert_trigger_seconds, self._alerts)
        if self._reading(ONCHAIN):  # the on-chain path: only when an active module reads it
            chain_in = onchain_quality.classify(self._source(lake=True, onchain=True), self.settings)
            self._start(
                onchain_quality.quality_metrics(deduplicated(chain_in.observe("dq_in", _count())), "dq_out"),
                ONCHAIN_INGEST_QUERY,
                root,
                p.trigger_interval_seconds,
                self._onchain_ingest,
            )
            if any(not d.stateful for d in self._reading(ONCHAIN)):  # (event-id alert ids: no dedup state)
                chain_alerts = onchain_quality.classify(self._source(onchain=True), self.settings)
                self._start(
                    chain_alerts, ONCHAIN_ALERTS_QUERY, root, p.alert_trigger_seconds, self._onchain_alerts
                )
        for d in self.detectors:
            if not d.stateful:
                continue
            self._start(
                d.process(self._watermarked(d)),
                d.module_id,
                root,
                p.window_trigger_seconds,
                self._detector_sink(d),
            )
        self._started.set()
        return self.queries

    def _reading(self, source: str) -> list[BaseDetector]:
        return [d for d in self.detectors if d.reads == source]

    def _watermarked(self, detector: BaseDetector) -> DataFrame:
        """A stateful detector's clean, de-duplicated input with its event-time watermark (a time no
        converter takes never sets a watermark: ``convertible`` first)."""
        delay = f"{detector.watermark_seconds()} seconds"
        if detector.reads == ONCHAIN:
            raw = self._source(onchain=True)
            events = convertible(
                onchain_quality.passed(onchain_quality.classify(raw, self.settings)), "block_timestamp"
            )
            return events.withWatermark("block_timestamp", delay).dropDuplicatesWithinWatermark(["event_id"])
        trades = convertible(quality.passed(quality.classify(self._source(), self.settings)))
        return trades.withWatermark("timestamp", delay).dropDuplicatesWithinWatermark(["event_id"])

    def _source(self, *, lake: bool = False, onchain: bool = False) -> DataFrame:
        if onchain and self._raw_onchain is not None:  # tests inject file streams
            return self._raw_onchain
        if not onchain and self._raw is not None:
            return self._raw
        return raw_stream(self.spark, self.settings, lake=lake, onchain=onchain)

    def _start(self, df: DataFrame, name: str, root: str, seconds: float, sink: Any) -> None:
        query = (
            df.writeStream.queryName(name)
            .outputMode("append")
            .option("checkpointLocation", str(Path(root) / name) if "://" not in root else f"{root}/{name}")
            .trigger(processingTime=f"{seconds:g} seconds")
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
    def _alerts(self, df: DataFrame, batch_id: int) -> None:
        """The per-trade alert path: stateless detectors → hot store, nothing else."""
        from pyspark.sql import functions as F

        self._pool(ALERT_POOL)
        good = df.where(F.col("dq_reason").isNull()).select(*column_names(RAW_TRADES_COLUMNS))
        self._stateless_to_hot(self._reading(TRADES), good)

    def _onchain_alerts(self, df: DataFrame, batch_id: int) -> None:
        """The per-event on-chain alert path (MOD-008) → hot store, nothing else."""
        self._pool(ALERT_POOL)
        self._stateless_to_hot(self._reading(ONCHAIN), onchain_quality.passed(df))

    def _stateless_to_hot(self, detectors: list[BaseDetector], good: DataFrame) -> None:
        for d in detectors:
            if not d.stateful:
                # Rows finish() cannot handle are dead-lettered by the lake path (same rows there).
                t0 = time.monotonic()
                result, _ = d.finish_guarded([r.asDict() for r in d.process(good).collect()])
                t1 = time.monotonic()
                self.router.to_hot(result.alerts)
                log.debug(
                    "alert batch %s: detect %.2fs, %d alert(s) to the hot store %.2fs",
                    d.module_id, t1 - t0, len(result.alerts), time.monotonic() - t1,
                )  # fmt: skip

    def _ingest(self, df: DataFrame, batch_id: int) -> None:
        """The lake path: raw_trades, dead letters, the stateless detectors' rows and alerts."""
        from pyspark.sql import functions as F

        self._pool(LAKE_POOL)
        key, check = self._batch_key(metrics.INGEST_QUERY, batch_id)
        df.persist()
        try:
            if df.isEmpty():  # no-data batches only move the dedup watermark
                return
            t0 = time.monotonic()
            good = df.where(F.col("dq_reason").isNull()).select(*column_names(RAW_TRADES_COLUMNS))
            bad = quality.dead_letters(df)
            append_once(good, qualified(self.settings, "raw_trades"), key, check=check)
            if not bad.isEmpty():
                append_once(bad, qualified(self.settings, "dead_letters"), key, check=check)
            t1 = time.monotonic()
            for d in self._reading(TRADES):
                if not d.stateful:
                    result = self._detect(d, d.process(good), metrics.INGEST_QUERY, batch_id)
                    self._to_lake(d, result, key, check)
            log.debug(
                "lake batch %d: raw/dead-letter %.2fs, module+alert rows %.2fs",
                batch_id, t1 - t0, time.monotonic() - t1,
            )  # fmt: skip
        finally:
            df.unpersist()

    def _onchain_ingest(self, df: DataFrame, batch_id: int) -> None:
        """The on-chain lake path: the clean events into the landing module's table (``onchain_events``),
        dead letters, and the stateless on-chain detectors' alerts — each append tagged once."""
        self._pool(LAKE_POOL)
        key, check = self._batch_key(ONCHAIN_INGEST_QUERY, batch_id)
        df.persist()
        try:
            if df.isEmpty():
                return
            good = onchain_quality.passed(df)
            bad = quality.dead_letters(df)
            for d in self._reading(ONCHAIN):
                if d.lands_input:
                    table = qualified(self.settings, d.output_table())
                    append_once(good, table, f"{key}:{d.module_id}:events", check=check)
            if not bad.isEmpty():
                append_once(bad, qualified(self.settings, "dead_letters"), f"{key}:onchain", check=check)
            for d in self._reading(ONCHAIN):
                if not d.stateful:
                    self._to_lake(
                        d, self._detect(d, d.process(good), ONCHAIN_INGEST_QUERY, batch_id), key, check
                    )
        finally:
            df.unpersist()

    def _pool(self, pool: str) -> None:
        """Jobs this thread submits from now on run in ``pool`` (FAIR scheduling, jobs.session)."""
        if self.settings.pipeline.fair_scheduler:
            self.spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool)

    def _detector_sink(self, detector: BaseDetector) -> Any:
        def sink(df: DataFrame, batch_id: int) -> None:
            self._emit(detector, df, batch_id)

        return sink

    def _emit(self, detector: BaseDetector, output: DataFrame, batch_id: int) -> DetectorResult:
        self._pool(ALERT_POOL)
        key, check = self._batch_key(detector.module_id, batch_id)
        t0 = time.monotonic()
        result = self._detect(detector, output, detector.module_id, batch_id)
        t1 = time.monotonic()
        self.router.to_hot([*result.early, *result.alerts])  # a final alert replaces its early one
        self.router.retract(result.retracted)
        self.router.points_to_hot(detector, result.records)  # the dashboard's charts: every window
        self.router.records_to_hot(detector, result.records)  # e.g. MOD-004's wallet store
        t2 = time.monotonic()
        self._to_lake(detector, result, key, check)
        log.debug(
            "window batch %s %d: detect %.2fs, hot %.2fs (%d alert(s), %d early), lake %.2fs (%d row(s))",
            detector.module_id, batch_id, t1 - t0, t2 - t1, len(result.alerts), len(result.early),
            time.monotonic() - t2, len(result.records),
        )  # fmt: skip
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

    def _to_lake(self, detector: BaseDetector, result: DetectorResult, key: str, check: bool) -> None:
        """Appends tagged with the micro-batch (one tag per table): a replay skips what it committed."""
        if result.records:
            frame = rows_frame(self.spark, result.records, detector.table_columns())
            table = qualified(self.settings, detector.output_table())
            append_once(frame, table, f"{key}:{detector.module_id}", check=check)
        self.router.to_lake(result.alerts, f"{key}:{detector.module_id}", check=check)

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
