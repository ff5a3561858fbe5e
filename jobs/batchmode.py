"""Batch mode: the same quality rules and detector code over a bounded dataset (``coattail detect``).

Reprocessing and backtests reuse :func:`detect`: it reads TradeEvent JSONL or Parquet, applies the
quality checks and de-duplication, runs each detector's ``process`` on the batch DataFrame and its
``finish`` on the result — exactly what the streaming micro-batches do, with every window closed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from coattail.contracts import Alert
from coattail.settings import Settings
from jobs import quality
from jobs.framework.detector import BaseDetector, DetectorResult
from jobs.framework.registry import ModuleRegistry

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def read_events(spark: SparkSession, path: Path) -> DataFrame:
    """Raw columns (``value``, ``source_ts``, ``source_pos``) from a JSONL or Parquet file/folder."""
    from pyspark.sql import functions as F

    suffix = path.suffix.lower() if path.is_file() else ""
    is_parquet = suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet")))
    if is_parquet:  # typed columns back to the wire form, so one set of quality rules applies
        frame = spark.read.parquet(str(path))
        # Spark's default JSON time format stops at milliseconds: write the contract's µs form.
        value = F.to_json(F.struct(*[F.col(c) for c in frame.columns]), {"timestampFormat": quality.ISO_UTC})
    else:
        frame = spark.read.text(str(path))
        value = F.col("value")
    return frame.select(
        value.alias("value"),
        F.current_timestamp().alias("source_ts"),
        F.concat(F.lit(f"{path.name}#"), F.monotonically_increasing_id().cast("string")).alias("source_pos"),
    )


def clean_trades(raw: DataFrame, settings: Settings) -> DataFrame:
    return quality.passed(quality.classify(raw, settings)).dropDuplicates(["event_id"])


def run_detector(detector: BaseDetector, trades: DataFrame) -> DetectorResult:
    return detector.finish([r.asDict() for r in detector.process(trades).collect()])


def detect(
    spark: SparkSession, settings: Settings, trades: DataFrame, detectors: list[BaseDetector] | None = None
) -> dict[str, DetectorResult]:
    """Results per module id for clean ``trades`` (a batch DataFrame of TradeEvent columns)."""
    chosen = detectors if detectors is not None else ModuleRegistry(settings).detectors()
    trades = trades.persist()
    try:
        return {d.module_id: run_detector(d, trades) for d in chosen}
    finally:
        trades.unpersist()


def sorted_alerts(results: dict[str, DetectorResult]) -> list[Alert]:
    alerts = [a for r in results.values() for a in r.alerts]
    return sorted(alerts, key=lambda a: (a.detected_at, a.module_id, a.alert_id))


def table_rows(detector: BaseDetector, records: list[dict[str, Any]]) -> list[bytes]:
    """One JSON line per row of the module's table, through its row model when it declares one."""
    model = detector.row_model
    if model is not None:
        return [orjson.dumps(model.model_validate(r).model_dump(mode="json")) + b"\n" for r in records]
    return [orjson.dumps(r, default=str) + b"\n" for r in records]


def write_tables(
    folder: Path, detectors: list[BaseDetector], results: dict[str, DetectorResult]
) -> dict[str, int]:
    """``<output_table>.jsonl`` per active module in ``folder`` (rows in the module's own order)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    for detector in detectors:
        records = results[detector.module_id].records
        (folder / f"{detector.output_table()}.jsonl").write_bytes(b"".join(table_rows(detector, records)))
        written[detector.output_table()] = len(records)
    return written
