"""The one SparkSession builder: Kafka + Iceberg jars, the lake catalog, RocksDB state, frugal defaults."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from coattail.devservices.jars import jar_dir
from coattail.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

KAFKA_PROVIDER = "org.apache.spark.sql.kafka010.KafkaSourceProvider"
CATALOG = "lake"  # the Spark catalog name the lake tables live under: lake.<namespace>.<table>


# Spark's own metrics for Prometheus (the chart turns this on with `pipeline run --spark-ui`): driver
# metrics at <ui>/metrics/prometheus, executors at <ui>/metrics/executors/prometheus, and per-query
# streaming metrics (input rate, batch duration, state rows) through metricsEnabled.
PROMETHEUS_CONF = {
    "spark.ui.enabled": "true",
    "spark.ui.prometheus.enabled": "true",
    "spark.metrics.conf.*.sink.prometheusServlet.class": "org.apache.spark.metrics.sink.PrometheusServlet",
    "spark.metrics.conf.*.sink.prometheusServlet.path": "/metrics/prometheus",
    "spark.sql.streaming.metricsEnabled": "true",
}


# FAIR scheduling between the streaming queries of the one application: jobs of the alert path (the
# per-trade and the windowed detectors) run in a pool that gets 4 shares of the cores for the lake
# path's 1, and at least one core when it has work, so a long Iceberg commit or a raw_trades append
# never holds a whale alert behind it. Each query's sink sets its pool (jobs.framework.runner).
ALERT_POOL, LAKE_POOL = "alerts", "lake"
FAIR_POOLS = f"""<?xml version="1.0"?>
<allocations>
  <pool name="{ALERT_POOL}">
    <schedulingMode>FAIR</schedulingMode><weight>4</weight><minShare>1</minShare>
  </pool>
  <pool name="{LAKE_POOL}">
    <schedulingMode>FIFO</schedulingMode><weight>1</weight><minShare>0</minShare>
  </pool>
</allocations>
"""


def scheduler_conf(settings: Settings) -> dict[str, str]:
    """``spark.scheduler.mode=FAIR`` and the pools file (written under the state folder)."""
    if not settings.pipeline.fair_scheduler:
        return {}
    path = settings.state_path("spark", "fairscheduler.xml")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != FAIR_POOLS:
        path.write_text(FAIR_POOLS)
    return {"spark.scheduler.mode": "FAIR", "spark.scheduler.allocation.file": path.as_uri()}


def catalog_conf(settings: Settings) -> dict[str, str]:
    """Spark conf of the Iceberg catalog named ``lake`` (sql -> JDBC on sqlite locally, glue, rest)."""
    cat = settings.lake.catalog
    prefix = f"spark.sql.catalog.{CATALOG}"
    conf = {prefix: "org.apache.iceberg.spark.SparkCatalog", f"{prefix}.warehouse": warehouse(settings)}
    if cat.type == "sql":
        conf[f"{prefix}.type"] = "jdbc"
        conf[f"{prefix}.uri"] = jdbc_uri(settings)
    elif cat.type == "glue":
        conf[f"{prefix}.type"] = "glue"
        conf[f"{prefix}.io-impl"] = "org.apache.iceberg.aws.s3.S3FileIO"
    else:
        conf[f"{prefix}.type"] = "rest"
        conf[f"{prefix}.uri"] = cat.uri
    return conf


def warehouse(settings: Settings) -> str:
    explicit = settings.lake.catalog.warehouse
    if explicit:
        return explicit
    path = settings.state_path("iceberg", "warehouse")
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def sqlite_path(settings: Settings) -> Path:
    """The sqlite file of the local SQL catalog (shared by Spark's JdbcCatalog and pyiceberg)."""
    uri = settings.lake.catalog.uri
    if uri:
        return Path(uri.removeprefix("jdbc:").removeprefix("sqlite:").removeprefix("///"))
    path = settings.state_path("iceberg", "catalog.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def jdbc_uri(settings: Settings) -> str:
    uri = settings.lake.catalog.uri
    if uri.startswith("jdbc:"):
        return uri
    return f"jdbc:sqlite:{sqlite_path(settings)}"


def build_session(
    settings: Settings,
    *,
    app_name: str = "coattail-pipeline",
    master: str | None = None,
    shuffle_partitions: int | None = None,
    spark_ui: bool = False,
    extra: dict[str, str] | None = None,
) -> SparkSession:
    """SparkSession for the pipeline and its tests. ``master`` None keeps what spark-submit chose."""
    # Local mode only: workers use this interpreter (the venv) and everything binds to loopback,
    # which avoids DNS surprises on laptops/CI. In cluster mode executors must reach the driver pod.
    local = bool(master and master.startswith("local")) or (master is None and settings.profile == "embedded")
    if local:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    jars = ",".join(str(p) for p in sorted(jar_dir("spark").glob("*.jar")))
    builder = SparkSession.builder.appName(app_name)
    if master or settings.profile == "embedded":
        builder = builder.master(master or "local[2]")
    conf = {
        "spark.jars": jars,
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions or 4),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # RocksDB keeps large dedup/volume state off the JVM heap; changelog checkpoints are cheap.
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # Spark 4.1.1's V2 Kafka stream NPEs in metrics() when a restart re-runs an uncommitted batch
        # (KafkaMicroBatchStream wraps a null latestPartitionOffsets in Some): exactly crash recovery.
        # The V1 Kafka source has the same offsets/checkpoint semantics without that bug.
        "spark.sql.streaming.disabledV2MicroBatchReaders": KAFKA_PROVIDER,
        "spark.sql.adaptive.enabled": "false",
        "spark.python.worker.reuse": "true",
        **({"spark.driver.bindAddress": "127.0.0.1", "spark.default.parallelism": "2"} if local else {}),
        **catalog_conf(settings),
        **(PROMETHEUS_CONF if spark_ui else {}),
        **scheduler_conf(settings),
        **settings.pipeline.spark_conf,
        **(extra or {}),
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark
