"""Batch mode: the same quality rules and detector code over a bounded dataset (``coattail detect``).

Reprocessing and backtests reuse :func:`detect`: it reads TradeEvent (and OnchainEvent, for the modules
that read on-chain events) JSONL or Parquet, applies the quality checks and de-duplication, runs each
detector's ``process`` on the batch DataFrame and its ``finish`` on the result — exactly what the
streaming micro-batches do, with every window closed.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from coattail.contracts import Alert
from coattail.contracts.onchain import BLOCKCHAINS, OnchainEvent
from coattail.contracts.spark import spark_schema
from coattail.contracts.types import from_epoch_us
from coattail.settings import Settings
from jobs import onchain_quality, quality
from jobs.framework.detector import ONCHAIN, TRADES, BaseDetector, DetectorResult
from jobs.framework.registry import ModuleRegistry
from jobs.onchain_logic import trim

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


def clean_onchain(raw: DataFrame, settings: Settings) -> DataFrame:
    """OnchainEvents that pass the on-chain quality rules, one per event id."""
    return onchain_quality.passed(onchain_quality.classify(raw, settings)).dropDuplicates(["event_id"])


def no_onchain(spark: SparkSession) -> DataFrame:
    """An empty frame of OnchainEvent columns (on-chain modules active, no ``--onchain`` given)."""
    return spark.createDataFrame([], spark_schema(OnchainEvent))


def landed_rows(events: DataFrame) -> list[dict[str, Any]]:
    """The clean events as rows of the landing module's table (times as UTC datetimes, exactly)."""
    from pyspark.sql import functions as F

    times = {"block_timestamp", "ingestion_timestamp"}
    selected = events.select(
        *[F.unix_micros(c).alias(c) if c in times else F.col(c) for c in events.columns]
    ).orderBy("block_timestamp", "blockchain", "block_number", "log_index")

    def plain(name: str, value: Any) -> Any:  # decimal(38,18) pads 18 zeros: the number as it was sent
        if name in times:
            return from_epoch_us(value)
        return trim(value) if isinstance(value, Decimal) else value

    return [{k: plain(k, v) for k, v in r.asDict().items()} for r in selected.collect()]


def value_onchain(spark: SparkSession, events: DataFrame, trades: DataFrame) -> DataFrame:
    """``events`` with a null ``usd_value`` valued from the trades' prices at their block time
    (``coattail.chains.valuation``: the token's reference instrument, the latest price at or before the
    block, none when stale); events that already carry a value keep it. Shipped token registries."""
    from pyspark.sql import functions as F

    from coattail.chains.tokens import load_registry
    from coattail.chains.valuation import DOLLAR_QUOTES, PriceBook, usd_value

    if events.where(F.col("usd_value").isNull()).isEmpty():
        return events
    registries = {chain: load_registry(chain) for chain in BLOCKCHAINS}
    refs = {
        t.price_ref
        for r in registries.values()
        for t in (r.native, *r.tokens.values())
        if t.price_ref and t.price_ref != "usd"
    }
    bases = sorted({ref.partition(":")[2].partition("-")[0] for ref in refs})
    quotes = F.split("symbol", "-")
    prices = (
        trades.where(quotes[0].isin(*bases) & quotes[1].isin(*DOLLAR_QUOTES))
        .select(
            "exchange",
            "symbol",
            F.col("price").cast("string").alias("price"),
            F.unix_micros("timestamp").alias("us"),
        )
        .orderBy("us")
        .collect()
    )
    book, fed, rows = PriceBook(), 0, []
    for row in landed_rows(events):  # block time order: the book holds the prices known at each block
        at = row["block_timestamp"]
        while fed < len(prices) and from_epoch_us(prices[fed]["us"]) <= at:
            p = prices[fed]
            book.update(p["exchange"], p["symbol"], Decimal(p["price"]), from_epoch_us(p["us"]))
            fed += 1
        if row["usd_value"] is None:
            # (quality passed it; a row the contract still refuses stays unpriced)
            with contextlib.suppress(ValueError):
                event = OnchainEvent.model_validate(row)
                row["usd_value"] = usd_value(event, registries[row["blockchain"]], book)
        rows.append(row)
    schema = spark_schema(OnchainEvent)
    return spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)


def run_detector(detector: BaseDetector, events: DataFrame) -> DetectorResult:
    result = detector.finish([r.asDict() for r in detector.process(events).collect()])
    if detector.lands_input:  # its table is its clean input (MOD-008: onchain_events)
        result.records = landed_rows(events)
    elif (rows := detector.batch_table()) is not None:  # its table is not made of its input (MOD-005)
        result.records = rows
    return result


def detect(
    spark: SparkSession,
    settings: Settings,
    trades: DataFrame,
    detectors: list[BaseDetector] | None = None,
    onchain: DataFrame | None = None,
) -> dict[str, DetectorResult]:
    """Results per module id for clean ``trades`` (a batch DataFrame of TradeEvent columns) and, for the
    modules that read on-chain events, clean ``onchain`` (OnchainEvent columns; none: empty)."""
    chosen = detectors if detectors is not None else ModuleRegistry(settings).detectors()
    if onchain is None and any(d.reads == ONCHAIN for d in chosen):
        onchain = no_onchain(spark)
    inputs = {TRADES: trades.persist()}
    if onchain is not None:
        inputs[ONCHAIN] = onchain.persist()
    results: dict[str, DetectorResult] = {}
    try:
        for d in chosen:  # config order: a module sees the results of those before it (MOD-010, MOD-011)
            d.see_results(results, inputs)
            results[d.module_id] = (
                run_detector(d, inputs[d.reads]) if d.streams else d.follow(results, inputs)
            )
        return results
    finally:
        for frame in inputs.values():
            frame.unpersist()


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
