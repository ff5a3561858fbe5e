"""Iceberg tables of the lake (seed §3.4) and idempotent writes to them.

* :func:`append_once` — every streaming write (``raw_trades``, ``dead_letters``, module tables, alerts):
  a plain append tagged with the snapshot property ``coattail.batch = <query id>:<batch id>[:<part>]``; a
  replayed micro-batch (restart after a crash mid-batch) finds its tag and skips. Cheap: no read of the
  table, only of its snapshot list, and only on a restart's first batch.
* :func:`insert_new` — batch rewrites (reprocessing a day): ``MERGE INTO … WHEN NOT MATCHED INSERT`` on
  the record keys, so rewriting what is already there is a no-op. Never on the streaming path: a MERGE
  scans the target table, which grows with every micro-batch.

Commits to one table go through one lock per process: all streaming queries share the driver, and
two of them committing to the same table (``anomaly_alerts``) would only burn optimistic retries.
Different tables commit concurrently.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any

from coattail.contracts import Alert
from coattail.contracts.spark import ddl_columns
from coattail.settings import Settings
from jobs.session import CATALOG

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

BATCH_PROPERTY = "coattail.batch"
# Process-wide lock for table maintenance and batch rewrites (jobs/batch imports it); the streaming
# writes below use one lock per table so different tables commit concurrently.
COMMIT_LOCK = threading.RLock()
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def commit_lock(table: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(table, threading.Lock())


RAW_TRADES_COLUMNS = (
    "event_id string, exchange string, symbol string, price decimal(38,18), quantity decimal(38,18), "
    "quote_volume decimal(38,18), side string, timestamp timestamp, ingestion_timestamp timestamp, "
    "dq_late boolean, dq_inconsistent boolean"
)
ALERT_KEYS = ("alert_id", "detected_at")
# table -> (columns, hidden partitioning); module tables come from their detectors.
CORE_TABLES = {
    "raw_trades": (RAW_TRADES_COLUMNS, "days(timestamp), symbol"),
    "anomaly_alerts": ("", "days(detected_at), alert_type"),  # columns derived from the Alert contract
    "dead_letters": (
        "reason string, raw string, source_pos string, received_at timestamp",
        "days(received_at)",
    ),
}


def qualified(settings: Settings, table: str) -> str:
    return f"{CATALOG}.{settings.lake.namespace}.{table}"


def alert_columns() -> str:
    return ddl_columns(Alert)


def ensure_table(
    spark: SparkSession, settings: Settings, table: str, columns: str, partitioning: str
) -> None:
    """Create the table if missing, with ``lake.table_properties``; bring an older table's up to date."""
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{settings.lake.namespace}")
    name = qualified(settings, table)
    partitioned = f"PARTITIONED BY ({partitioning}) " if partitioning.strip() else ""  # "": unpartitioned
    spark.sql(
        f"CREATE TABLE IF NOT EXISTS {name} ({columns}) USING iceberg {partitioned}"
        f"TBLPROPERTIES ({_properties({'format-version': '2', **settings.lake.table_properties})})"
    )
    current = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {name}").collect()}
    stale = {k: v for k, v in settings.lake.table_properties.items() if current.get(k) != v}
    if stale:  # (an ALTER is a metadata commit: only when something differs)
        spark.sql(f"ALTER TABLE {name} SET TBLPROPERTIES ({_properties(stale)})")


def _properties(props: dict[str, str]) -> str:
    return ", ".join(f"'{k}'='{v}'" for k, v in props.items())


def ensure_core_tables(spark: SparkSession, settings: Settings) -> None:
    for table, (columns, partitioning) in CORE_TABLES.items():
        ensure_table(spark, settings, table, columns or alert_columns(), partitioning)


def _already_written(spark: SparkSession, table: str, key: str) -> bool:
    rows = spark.sql(
        f"SELECT 1 FROM {table}.snapshots WHERE summary['{BATCH_PROPERTY}'] = '{key}' LIMIT 1"  # noqa: S608 - our own ids
    ).collect()
    return bool(rows)


def append_once(df: DataFrame, table: str, batch_key: str, *, check: bool = True) -> bool:
    """Append ``df`` unless a snapshot tagged ``batch_key`` exists. True when it wrote."""
    with commit_lock(table):
        if check and _already_written(df.sparkSession, table, batch_key):
            return False
        df.writeTo(table).option(f"snapshot-property.{BATCH_PROPERTY}", batch_key).append()
        return True


def insert_new(df: DataFrame, table: str, keys: tuple[str, ...]) -> None:
    """Insert the rows of ``df`` whose ``keys`` are not in ``table`` yet (idempotent rewrite)."""
    view = f"coattail_src_{threading.get_ident()}"
    df.createOrReplaceTempView(view)
    on = " AND ".join(f"t.{k} <=> s.{k}" for k in keys)
    with commit_lock(table):
        df.sparkSession.sql(f"MERGE INTO {table} t USING {view} s ON {on} WHEN NOT MATCHED THEN INSERT *")
    df.sparkSession.catalog.dropTempView(view)


def lake_tables(spark: SparkSession, settings: Settings) -> set[str]:
    """The tables of the lake namespace (none when it does not exist yet).

    ``SHOW TABLES``, not ``catalog.tableExists``: asked about a missing table, the Iceberg JDBC catalog
    without view support raises instead of answering False.
    """
    try:
        rows = spark.sql(f"SHOW TABLES IN {CATALOG}.{settings.lake.namespace}").collect()
    except Exception:  # no namespace yet: no tables
        return set()
    return {str(r["tableName"]) for r in rows}


def column_names(columns: str) -> list[str]:
    """Names in a Spark SQL column list (commas inside ``decimal(38,18)`` are not separators)."""
    return [c.strip().split()[0] for c in re.split(r",(?![^()]*\))", columns)]


def rows_frame(spark: SparkSession, rows: list[dict[str, Any]], columns: str) -> DataFrame:
    """DataFrame of plain dict rows in the table's column order and types."""
    names = column_names(columns)
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], columns)
