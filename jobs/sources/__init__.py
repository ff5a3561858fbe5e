"""One stream source abstraction (``stream.backend``): Kafka or Kinesis, the same raw columns out.

Every source yields ``value`` (the payload as text), ``source_ts`` (broker append / arrival time) and
``source_pos`` (``topic/partition/offset`` or ``stream/shard/sequence``) so that quality, dedup and the
dead-letter path never care which backend is behind them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from coattail.settings import Settings
from coattail.settings.endpoints import kafka_bootstrap

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def raw_stream(
    spark: SparkSession, settings: Settings, *, lake: bool = False, onchain: bool = False
) -> DataFrame:
    """The trade stream (``onchain``: the OnchainEvent topic/stream instead); ``lake``: the lake path's
    reader (may wait for bigger batches)."""
    if settings.stream.backend == "kinesis":
        return kinesis_stream(spark, settings, lake=lake, onchain=onchain)
    return kafka_stream(spark, settings, lake=lake, onchain=onchain)


def kafka_stream(
    spark: SparkSession, settings: Settings, *, lake: bool = False, onchain: bool = False
) -> DataFrame:
    from pyspark.sql import functions as F

    p, k = settings.pipeline, settings.stream.kafka
    # The on-chain topic is created by the chain connector, which may start after the pipeline (the
    # medium tier reads it for MOD-004/005): a pattern of exactly its name reads nothing until it
    # exists, then from its start, where `subscribe` would fail the query.
    subscription = ("subscribePattern", re.escape(k.onchain_topic)) if onchain else ("subscribe", k.topic)
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", kafka_bootstrap(settings))
        .option(*subscription)
        .option("startingOffsets", p.starting_offsets)
        .option("maxOffsetsPerTrigger", str(max_per_trigger(settings, lake)))
    )
    if lake and p.lake_min_offsets_per_trigger:  # fewer, bigger Iceberg commits, bounded delay
        reader = reader.option("minOffsetsPerTrigger", str(p.lake_min_offsets_per_trigger)).option(
            "maxTriggerDelay", f"{p.lake_max_trigger_delay_seconds:g}s"
        )
    raw = reader.load()
    return raw.select(
        F.col("value").cast("string").alias("value"),
        F.col("timestamp").alias("source_ts"),
        F.concat_ws("/", "topic", "partition", "offset").alias("source_pos"),
    )


def max_per_trigger(settings: Settings, lake: bool) -> int:
    """Records one micro-batch may read: the lake path, on a slower trigger, gets its own larger bound."""
    p = settings.pipeline
    return p.lake_max_offsets_per_trigger if lake else p.max_offsets_per_trigger


def kinesis_stream(
    spark: SparkSession, settings: Settings, *, lake: bool = False, onchain: bool = False
) -> DataFrame:
    from pyspark.sql import functions as F

    from jobs.sources.kinesis import FORMAT, KinesisDataSource

    spark.dataSource.register(KinesisDataSource)
    k, p = settings.stream.kinesis, settings.pipeline
    name = k.onchain_stream_name if onchain else k.stream_name
    raw = (
        spark.readStream.format(FORMAT)
        .option("streamName", name)
        .option("region", k.region)
        .option("endpointUrl", k.endpoint_url)
        .option("startingPosition", "TRIM_HORIZON" if p.starting_offsets == "earliest" else "LATEST")
        .option("maxRecordsPerTrigger", str(max_per_trigger(settings, lake)))
        .load()
    )
    return raw.select(
        F.col("data").alias("value"),
        F.col("arrival").alias("source_ts"),
        F.concat_ws("/", F.lit(name), "shard", "sequence").alias("source_pos"),
    )
