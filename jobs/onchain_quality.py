"""Data quality of the on-chain topic (DESIGN.md "Data quality": on-chain events get the same treatment).

schema → nulls → known chain → ranges (amounts ≥ 0) → the fields an event's kind needs → timestamp
window; de-duplication on ``event_id`` (a block read twice, a reorg re-read, a connector restart) is
applied by the runner on ``dq_key`` exactly as for trades. :func:`classify` parses the raw value with
the OnchainEvent schema (derived from the contract) and adds ``dq_reason`` (NULL = passed, else the
first failing rule), ``dq_late`` (a warning) and ``dq_key``. Failed records go to ``dead_letters``
with their reason (:func:`jobs.quality.dead_letters` takes these columns as they are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coattail.contracts.onchain import BLOCKCHAINS, LIQUIDITY_EVENTS, PROTOCOL_PATTERN, OnchainEvent
from coattail.contracts.spark import spark_schema
from coattail.settings import Settings
from jobs.quality import CORRUPT, RAW_COLUMNS, sent, time_format_checks, time_window_checks

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

ONCHAIN_COLUMNS = list(OnchainEvent.model_fields)
TIME_FIELDS = ("block_timestamp", "ingestion_timestamp")
REQUIRED = (
    "event_id", "blockchain", "block_number", "block_hash", "block_timestamp", "tx_hash", "log_index",
    "event_type", "ingestion_timestamp",
)  # fmt: skip
AMOUNTS = (
    "amount", "amount_in", "amount_out", "reserve_in", "reserve_out", "price_before", "price_after",
    "usd_value",
)  # fmt: skip
EVENT_TYPES = ("transfer", "swap", *LIQUIDITY_EVENTS)
# What each kind of event needs beyond the common fields (the contract's own rule, OnchainEvent).
TRANSFER_FIELDS = ("token", "amount")
POOL_FIELDS = ("token_in", "amount_in", "token_out", "amount_out", "protocol", "pool")


def _missing(fields: tuple[str, ...]) -> Column:
    from pyspark.sql import functions as F

    t = F.col("t")
    return F.concat_ws(", ", *[F.when(t[f].isNull(), F.lit(f)) for f in fields])


def _checks(settings: Settings) -> list[tuple[Column, Column]]:
    from pyspark.sql import functions as F

    t = F.col("t")
    checks: list[tuple[Column, Column]] = []
    checks += time_format_checks(TIME_FIELDS)  # a time Spark would misread (a number) or cannot read
    for name in AMOUNTS:  # beyond decimal(38,18) or not a number: Spark leaves it null
        checks.append(
            (
                t[CORRUPT].isNotNull() & t[name].isNull() & sent(name).isNotNull(),
                F.concat(F.lit(f"malformed: {name} "), sent(name), F.lit(" is not a decimal(38,18)")),
            )
        )
    missing = _missing(REQUIRED)
    transfer_missing, pool_missing = _missing(TRANSFER_FIELDS), _missing(POOL_FIELDS)
    checks += [
        (t.isNull() | t[CORRUPT].isNotNull(), F.lit("malformed: not an OnchainEvent JSON object")),
        (missing != "", F.concat(F.lit("incomplete: missing "), missing)),
        (
            ~t.blockchain.isin(*BLOCKCHAINS),
            F.concat(
                F.lit("invalid: unknown chain "),
                F.substring(t.blockchain, 1, 40),
                F.lit(f" (known: {', '.join(BLOCKCHAINS)})"),
            ),
        ),
        (
            ~t.event_type.isin(*EVENT_TYPES),
            F.concat(
                F.lit("invalid: event_type "),
                F.substring(t.event_type, 1, 40),
                F.lit(f" is not {'|'.join(EVENT_TYPES)}"),
            ),
        ),
        (t.block_number < 0, F.lit("invalid: block_number < 0")),
        (t.log_index < -1, F.lit("invalid: log_index < -1")),
        *[(t[name] < 0, F.lit(f"invalid: {name} < 0")) for name in AMOUNTS],
        (
            (t.event_type == "transfer") & (transfer_missing != ""),
            F.concat(F.lit("incomplete: a transfer needs "), transfer_missing),
        ),
        (
            (t.event_type != "transfer") & (pool_missing != ""),
            F.concat(F.lit("incomplete: a "), t.event_type, F.lit(" needs "), pool_missing),
        ),
        (
            t.protocol.isNotNull() & ~t.protocol.rlike(PROTOCOL_PATTERN),
            F.concat(
                F.lit("invalid: protocol "), F.substring(t.protocol, 1, 40), F.lit(" is not a protocol name")
            ),
        ),
    ]
    checks += time_window_checks(settings, TIME_FIELDS)  # one far-future block would move every watermark
    return checks


def _reason(settings: Settings) -> Column:
    from pyspark.sql import functions as F

    reason = F.lit(None).cast("string")
    for condition, text in reversed(_checks(settings)):  # first failing rule wins
        reason = F.when(F.coalesce(condition, F.lit(False)), text).otherwise(reason)
    return reason


def classify(raw: DataFrame, settings: Settings) -> DataFrame:
    """Raw stream (``value``, ``source_ts``, ``source_pos``) → OnchainEvent columns + dq_* columns."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    q = settings.quality
    schema = T.StructType([*spark_schema(OnchainEvent).fields, T.StructField(CORRUPT, T.StringType())])
    parsed = raw.select(
        *RAW_COLUMNS,
        F.from_json("value", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}).alias("t"),
    )
    late_before = F.current_timestamp() - F.expr(f"INTERVAL {q.late_after_seconds} SECONDS")
    return parsed.select(
        *RAW_COLUMNS,
        *[F.col(f"t.{c}").alias(c) for c in ONCHAIN_COLUMNS],
        _reason(settings).alias("dq_reason"),
    ).select(
        "*",
        F.coalesce(
            F.col("dq_reason").isNull() & (F.col("block_timestamp") < late_before), F.lit(False)
        ).alias("dq_late"),
        F.when(F.col("dq_reason").isNull(), F.col("event_id"))
        .otherwise(F.concat(F.lit("dl|"), F.col("source_pos")))
        .alias("dq_key"),
    )


def passed(classified: DataFrame) -> DataFrame:
    """Records that passed (OnchainEvent columns), before de-duplication."""
    from pyspark.sql import functions as F

    return classified.where(F.col("dq_reason").isNull()).select(*ONCHAIN_COLUMNS)


def quality_metrics(classified: DataFrame, name: str) -> DataFrame:
    """``observe`` the per-batch counts under ``name`` (the same shape as the trades' counts)."""
    from pyspark.sql import functions as F

    ok = F.col("dq_reason").isNull()
    return classified.observe(
        name,
        F.count(F.lit(1)).alias("records"),
        F.sum(F.when(ok, 1).otherwise(0)).alias("passed"),
        F.sum(F.when(~ok, 1).otherwise(0)).alias("failed"),
        F.sum(F.when(F.col("dq_late"), 1).otherwise(0)).alias("late"),
        F.lit(0).alias("inconsistent"),
    )
