"""Data quality (DESIGN.md "Data quality", seed §4.3) as Spark column expressions.

schema → nulls → ranges → dedup → timeliness → consistency. :func:`classify` parses the raw value with
the TradeEvent schema and adds ``dq_reason`` (NULL = passed; the first failing rule otherwise),
``dq_late`` and ``dq_inconsistent`` (warnings: still processed). De-duplication is stateful and is
applied by the runner (``dropDuplicatesWithinWatermark``) on ``dq_key``: the event id of a passed
record, the stream position of a failed one (failed records are never "duplicates", each is
dead-lettered with its reason).

Timeliness has a hard side too: a trade timed more than ``quality.max_future_seconds`` after its
arrival on the stream, or before ``quality.min_timestamp``, is dead-lettered. Arrival is the broker's
record time (``source_ts``: the same on every replay, unlike ``current_timestamp()``), capped at the
clock so a producer's bogus record time cannot widen the window. Without this one trade dated 2100
would move every stateful detector's event-time watermark a century ahead (all later windows "late"),
and one dated past 2262 would crash the Arrow/pandas conversion on every restart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coattail.contracts import TradeEvent
from coattail.contracts.spark import spark_schema
from coattail.contracts.types import format_utc
from coattail.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

TRADE_COLUMNS = [name for name in TradeEvent.model_fields]
CORRUPT = "_corrupt_record"
# Raw stream columns every source yields (Kafka and Kinesis alike).
RAW_COLUMNS = ("value", "source_ts", "source_pos")
TIME_FIELDS = ("timestamp", "ingestion_timestamp")
# format_utc's form in Spark's pattern language (the pipeline's session time zone is UTC).
ISO_UTC = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"


def arrival() -> Column:
    """When the record reached the stream: its broker time, never later than now (null: now)."""
    from pyspark.sql import functions as F

    now = F.current_timestamp()
    return F.least(F.coalesce(F.col("source_ts"), now), now)


def sent(name: str) -> Column:
    """A time field as sent (JSON text, first 40 characters), for reasons; null when not JSON."""
    from pyspark.sql import functions as F

    return F.substring(F.get_json_object("value", f"$.{name}"), 1, 40)


def time_format_checks(fields: tuple[str, ...] = TIME_FIELDS) -> list[tuple[Column, Column]]:
    """Times Spark would misread or could not read: before the generic "malformed" rule, to say why."""
    from pyspark.sql import functions as F

    t, checks = F.col("t"), []
    for name in fields:
        # Spark's JSON reader takes a number as epoch seconds (and silently wraps past 2^63 µs);
        # the contract wants ISO-8601 text.
        number = F.col("value").rlike(rf'"{name}"\s*:\s*[-+0-9.]') & sent(name).isNotNull()
        unreadable = t[CORRUPT].isNotNull() & t[name].isNull() & sent(name).isNotNull()
        checks += [
            (number, F.lit(f"invalid: {name} is a number, not an ISO-8601 timestamp")),
            (
                unreadable,
                F.concat(F.lit(f"malformed: {name} "), sent(name), F.lit(" is not an ISO-8601 timestamp")),
            ),
        ]
    return checks


def time_window_checks(
    settings: Settings, fields: tuple[str, ...] = TIME_FIELDS
) -> list[tuple[Column, Column]]:
    """The timestamp window for the time fields: not too far after arrival, not before the floor."""
    from pyspark.sql import functions as F

    q, t = settings.quality, F.col("t")
    floor = format_utc(q.min_timestamp)
    checks: list[tuple[Column, Column]] = []
    for name in fields:
        ahead = F.unix_micros(t[name]) - F.unix_micros(arrival())  # longs: no overflow past year 9999
        checks += [
            (
                ahead > F.lit(q.max_future_seconds * 1_000_000),
                F.concat(
                    F.lit(f"invalid: {name} "),
                    sent(name),
                    F.lit(f" is more than {q.max_future_seconds}s in the future of arrival "),
                    F.date_format(arrival(), ISO_UTC),
                ),
            ),
            (
                t[name] < F.lit(q.min_timestamp),
                F.concat(F.lit(f"invalid: {name} "), sent(name), F.lit(f" is before {floor}")),
            ),
        ]
    return checks


def _reason(settings: Settings) -> Column:
    from pyspark.sql import functions as F

    q = settings.quality
    t = F.col("t")
    missing = F.concat_ws(", ", *[F.when(t[f].isNull(), F.lit(f)) for f in q.required_fields])
    checks: list[tuple[Column, Column]] = [
        *time_format_checks(),
        (t.isNull() | t[CORRUPT].isNotNull(), F.lit("malformed: not a TradeEvent JSON object")),
        (missing != "", F.concat(F.lit("incomplete: missing "), missing)),
        (t.price <= F.lit(q.price_min_exclusive), F.lit(f"invalid: price <= {q.price_min_exclusive:g}")),
        (
            t.quantity <= F.lit(q.quantity_min_exclusive),
            F.lit(f"invalid: quantity <= {q.quantity_min_exclusive:g}"),
        ),
        (t.side.isNotNull() & ~t.side.isin("buy", "sell"), F.lit("invalid: side is not buy|sell")),
        *time_window_checks(settings),
    ]
    if q.restrict_to_configured_symbols:
        known = sorted(f"{ex}:{s}" for ex, symbols in settings.instruments.items() for s in symbols)
        instrument = F.concat_ws(":", t.exchange, t.symbol)
        checks.append(
            (
                ~F.coalesce(instrument.isin(known), F.lit(False)),
                F.concat(F.lit("invalid: unconfigured instrument "), instrument),
            )
        )
    reason = F.lit(None).cast("string")
    for condition, text in reversed(checks):  # first failing rule wins
        reason = F.when(F.coalesce(condition, F.lit(False)), text).otherwise(reason)
    return reason


def classify(raw: DataFrame, settings: Settings) -> DataFrame:
    """Raw stream (``value``, ``source_ts``, ``source_pos``) → TradeEvent columns + dq_* columns."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    q = settings.quality
    schema = T.StructType([*spark_schema(TradeEvent).fields, T.StructField(CORRUPT, T.StringType())])
    parsed = raw.select(
        *RAW_COLUMNS,
        F.from_json("value", schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}).alias("t"),
    )
    reason = _reason(settings)
    expected = F.col("price").cast("double") * F.col("quantity").cast("double")
    quote = F.col("quote_volume").cast("double")
    return parsed.select(
        *RAW_COLUMNS,
        *[F.col(f"t.{c}").alias(c) for c in TRADE_COLUMNS],
        reason.alias("dq_reason"),
    ).select(
        "*",
        F.coalesce(
            F.col("dq_reason").isNull()
            & (
                F.col("timestamp")
                < F.current_timestamp() - F.expr(f"INTERVAL {q.late_after_seconds} SECONDS")
            ),
            F.lit(False),
        ).alias("dq_late"),
        F.coalesce(
            F.col("dq_reason").isNull()
            & (F.abs(quote - expected) > F.abs(expected) * (q.consistency_tolerance_pct / 100)),
            F.lit(False),
        ).alias("dq_inconsistent"),
        F.when(F.col("dq_reason").isNull(), F.col("event_id"))
        .otherwise(F.concat(F.lit("dl|"), F.col("source_pos")))
        .alias("dq_key"),
    )


def passed(classified: DataFrame) -> DataFrame:
    """Records that passed (TradeEvent columns + warnings), before de-duplication."""
    from pyspark.sql import functions as F

    return classified.where(F.col("dq_reason").isNull()).select(*TRADE_COLUMNS, "dq_late", "dq_inconsistent")


def dead_letters(classified: DataFrame) -> DataFrame:
    """Dead-letter rows: reason, the raw payload and where it came from."""
    from pyspark.sql import functions as F

    return classified.where(F.col("dq_reason").isNotNull()).select(
        F.col("dq_reason").alias("reason"),
        F.col("value").alias("raw"),
        "source_pos",
        F.coalesce("source_ts", F.current_timestamp()).alias("received_at"),
    )


DEAD_LETTER_COLUMNS = "reason string, raw string, source_pos string, received_at timestamp"


def quality_metrics(classified: DataFrame, name: str) -> DataFrame:
    """``observe`` the per-batch counts under ``name`` (read back by the StreamingQueryListener)."""
    from pyspark.sql import functions as F

    ok = F.col("dq_reason").isNull()
    return classified.observe(
        name,
        F.count(F.lit(1)).alias("records"),
        F.sum(F.when(ok, 1).otherwise(0)).alias("passed"),
        F.sum(F.when(~ok, 1).otherwise(0)).alias("failed"),
        F.sum(F.when(F.col("dq_late"), 1).otherwise(0)).alias("late"),
        F.sum(F.when(F.col("dq_inconsistent"), 1).otherwise(0)).alias("inconsistent"),
    )
