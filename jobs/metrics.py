"""Pipeline metrics (seed §4.3/§8.3) for Prometheus, fed by a StreamingQueryListener.

The ingest query ``observe``s two metric sets per micro-batch: ``dq_in`` (records read) before
de-duplication and ``dq_out`` (passed / failed / late / inconsistent) after it. The listener turns
them into counters, so records in = passed + dead-lettered (failed) + duplicates, and the gauge
``QualityScore`` = passed / processed × 100 of the latest non-empty batch.

Late data is visible too: every query's progress reports the rows its stateful operators dropped behind
the event-time watermark (``numRowsDroppedByWatermark``); the listener counts them per query, logs a
warning and exports the watermark itself, so a watermark pushed far ahead shows up instead of silently
turning every later window "late".

Spark's own metrics (batch durations, state rows, input rates) come from its PrometheusServlet: see
:data:`jobs.session.PROMETHEUS_CONF` (the chart turns it on and scrapes ``/metrics/prometheus``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from pyspark.sql.streaming import StreamingQueryListener

log = logging.getLogger("jobs.pipeline")

INGEST_QUERY = "coattail-ingest"  # the lake path: quality, raw_trades, dead letters, per-trade rows
ONCHAIN_INGEST_QUERY = "coattail-onchain-ingest"  # the on-chain lake path: its own quality counters
ALERTS_QUERY = "coattail-alerts"  # the per-trade alert path: stateless detectors -> hot store
REGISTRY = CollectorRegistry()
_NS = "coattail_pipeline"
PROCESSED = Counter(f"{_NS}_records_processed", "RecordsProcessed: records read", registry=REGISTRY)
PASSED = Counter(f"{_NS}_records_passed", "RecordsPassed: valid, first seen", registry=REGISTRY)
FAILED = Counter(f"{_NS}_records_failed", "RecordsFailed: dead-lettered with a reason", registry=REGISTRY)
LATE = Counter(
    f"{_NS}_records_late", "RecordsLate: passed but older than the lateness bound", registry=REGISTRY
)
DUPLICATE = Counter(f"{_NS}_records_duplicate", "RecordsDuplicate: dropped repeats", registry=REGISTRY)
INCONSISTENT = Counter(
    f"{_NS}_records_inconsistent", "quote_volume off price × quantity beyond tolerance", registry=REGISTRY
)
COUNTERS = {
    "processed": PROCESSED,
    "passed": PASSED,
    "failed": FAILED,
    "late": LATE,
    "inconsistent": INCONSISTENT,
    "duplicate": DUPLICATE,
}
QUALITY_SCORE = Gauge(f"{_NS}_quality_score", "QualityScore: passed / processed × 100", registry=REGISTRY)
# The on-chain stream's quality (DESIGN.md: on-chain events get the same treatment), apart from the trades'.
_ONCHAIN = f"{_NS}_onchain"
ONCHAIN_COUNTERS = {
    name: Counter(f"{_ONCHAIN}_records_{name}", f"On-chain events {name}", registry=REGISTRY)
    for name in ("processed", "passed", "failed", "late", "inconsistent", "duplicate")
}
ONCHAIN_QUALITY_SCORE = Gauge(
    f"{_ONCHAIN}_quality_score", "On-chain QualityScore: passed / processed × 100", registry=REGISTRY
)
ALERTS = Counter(f"{_NS}_alerts", "Alerts routed", ["module_id", "alert_type"], registry=REGISTRY)
BATCHES = Counter(f"{_NS}_batches", "Micro-batches completed", ["query"], registry=REGISTRY)
DROPPED_LATE = Counter(
    f"{_NS}_rows_dropped_by_watermark",
    "Rows a query's stateful operators dropped as late (behind its event-time watermark)",
    ["query"],
    registry=REGISTRY,
)
WATERMARK = Gauge(
    f"{_NS}_watermark_seconds", "Event-time watermark per query (epoch seconds)", ["query"], registry=REGISTRY
)
# Seed §8.1/§8.2 "consumer lag": how far behind the wall clock the newest event a query's batch saw
# is (Spark reports each batch's event-time max); the stream-lag alarm fires on it.
STREAM_LAG = Gauge(
    f"{_NS}_stream_lag_seconds",
    "Seconds between now and the newest event time of a query's last batch",
    ["query"],
    registry=REGISTRY,
)
HOT_WRITES = Counter(
    f"{_NS}_hot_store_writes", "Alerts written to the hot store (DynamoDB)", ["module_id"], registry=REGISTRY
)
REJECTED = Counter(
    f"{_NS}_detector_rows_rejected",
    "Detector output rows that could not be finished (dead-lettered)",
    ["module_id"],
    registry=REGISTRY,
)


def serve(host: str, port: int) -> Any:
    """Serve /metrics; returns the server (port 0 picks a free port: ``server.server_port``)."""
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server


# Totals per streaming query id (stable across restarts from one checkpoint), for tests and benchmarks.
BY_QUERY: dict[str, dict[str, int]] = {}
DROPPED_BY_QUERY: dict[str, int] = {}  # rows dropped behind the watermark, per query id


def record_batch(observed: dict[str, Any], query_id: str = "", *, onchain: bool = False) -> None:
    """Update the counters (the trades' or, ``onchain``, the on-chain stream's) from one ingest batch."""
    seen, out = observed.get("dq_in"), observed.get("dq_out")
    if seen is None or out is None:
        return
    processed = int(seen["records"] or 0)
    counts = {
        "processed": processed,
        "passed": int(out["passed"] or 0),
        "failed": int(out["failed"] or 0),
        "late": int(out["late"] or 0),
        "inconsistent": int(out["inconsistent"] or 0),
        "duplicate": processed - int(out["records"] or 0),
    }
    for name, counter in (ONCHAIN_COUNTERS if onchain else COUNTERS).items():
        counter.inc(counts[name])
    mine = BY_QUERY.setdefault(query_id, dict.fromkeys(counts, 0))
    for name, value in counts.items():
        mine[name] += value
    if processed:
        (ONCHAIN_QUALITY_SCORE if onchain else QUALITY_SCORE).set(counts["passed"] / processed * 100)


def record_lag(query: str, newest_event: str | None, now: float) -> None:
    """Export how far ``query``'s newest event is behind ``now`` (no event time in the batch: unchanged)."""
    if newest_event:
        newest = datetime.fromisoformat(newest_event.replace("Z", "+00:00")).timestamp()
        STREAM_LAG.labels(query).set(max(0.0, now - newest))


def record_late(query: str, query_id: str, dropped: int, watermark: str | None) -> None:
    """Count (and log) the rows one batch of ``query`` dropped behind its watermark; export the watermark."""
    if watermark:
        WATERMARK.labels(query).set(datetime.fromisoformat(watermark.replace("Z", "+00:00")).timestamp())
    if dropped <= 0:
        return
    DROPPED_LATE.labels(query).inc(dropped)
    DROPPED_BY_QUERY[query_id] = DROPPED_BY_QUERY.get(query_id, 0) + dropped
    log.warning(
        "query %s dropped %d late row(s) behind its event-time watermark %s",
        query,
        dropped,
        watermark,
    )


def totals() -> dict[str, float]:
    """Current counter values (tests and the benchmark read these)."""
    names = ["processed", "passed", "failed", "late", "duplicate", "inconsistent"]
    out = {n: REGISTRY.get_sample_value(f"{_NS}_records_{n}_total") or 0.0 for n in names}
    out["quality_score"] = REGISTRY.get_sample_value(f"{_NS}_quality_score") or 0.0
    return out


class QualityListener(StreamingQueryListener):  # type: ignore[misc]
    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 - Spark's API names
        log.info("query %s started (id %s)", event.name, event.id)

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802
        progress = event.progress
        BATCHES.labels(progress.name or "unnamed").inc()
        if progress.name in (INGEST_QUERY, ONCHAIN_INGEST_QUERY):
            observed = {k: v.asDict() for k, v in progress.observedMetrics.items()}
            record_batch(observed, str(progress.id), onchain=progress.name == ONCHAIN_INGEST_QUERY)
        event_time = progress.eventTime or {}
        record_lag(progress.name or "unnamed", event_time.get("max"), time.time())
        watermark = event_time.get("watermark")
        record_late(
            progress.name or "unnamed",
            str(progress.id),
            sum(int(op.numRowsDroppedByWatermark or 0) for op in progress.stateOperators or []),
            watermark,
        )

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
        if event.exception:
            log.error("query %s failed: %s", event.id, event.exception.splitlines()[0])
