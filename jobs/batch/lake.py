"""The lake through pyiceberg: the same catalog (name, sqlite file, warehouse) as the Spark session.

Table definitions are not repeated here: the Spark SQL column lists and hidden partitioning of
``jobs.sinks.iceberg`` are translated to a pyiceberg schema, so a table created by the loader (before
the pipeline ever ran) is the table the pipeline would have created.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from coattail.retry import Backoff, retry
from coattail.settings import Settings
from jobs.session import CATALOG, sqlite_path, warehouse
from jobs.sinks.iceberg import CORE_TABLES, alert_columns, column_names

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

T = TypeVar("T")

# Tables the batch flow owns (the pipeline owns CORE_TABLES and the module tables).
RUNS_COLUMNS = (
    "run_id string, workflow string, run_date string, step string, status string, attempts int, "
    "started_at timestamp, finished_at timestamp, message string"
)
BATCH_TABLES: dict[str, tuple[str, str]] = {
    "anomalies_reprocessed": ("", "days(detected_at), alert_type"),  # alert columns + reprocess_id
    "batch_runs": (RUNS_COLUMNS, "run_date"),
}
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_TRANSFORM = re.compile(r"^(\w+)\((\w+)\)$")


def catalog(settings: Settings) -> Catalog:
    """pyiceberg catalog named like Spark's (``lake``), so both see the same tables."""
    cat = settings.lake.catalog
    if cat.type == "sql":
        from pyiceberg.catalog.sql import SqlCatalog

        return SqlCatalog(CATALOG, uri=f"sqlite:///{sqlite_path(settings)}", warehouse=warehouse(settings))
    from pyiceberg.catalog import load_catalog

    props: dict[str, str] = {"type": cat.type, "warehouse": warehouse(settings)}
    if cat.uri:
        props["uri"] = cat.uri
    return load_catalog(CATALOG, **props)


def identifier(settings: Settings, table: str) -> tuple[str, str]:
    return (settings.lake.namespace, table)


def table_definition(table: str) -> tuple[str, str]:
    """(Spark SQL columns, partitioning) of a core or batch table."""
    columns, partitioning = {**CORE_TABLES, **BATCH_TABLES}[table]
    if not columns:  # alert-shaped tables derive their columns from the Alert contract
        columns = alert_columns()
        if table == "anomalies_reprocessed":
            columns += ", reprocess_id string"
    return columns, partitioning


def _iceberg_type(spark_type: str) -> Any:
    from pyiceberg import types as it

    simple: dict[str, Any] = {
        "string": it.StringType(),
        "boolean": it.BooleanType(),
        "int": it.IntegerType(),
        "bigint": it.LongType(),
        "long": it.LongType(),
        "double": it.DoubleType(),
        "timestamp": it.TimestamptzType(),  # Spark's timestamp is an instant: Iceberg timestamptz
    }
    if spark_type in simple:
        return simple[spark_type]
    match = _DECIMAL.match(spark_type)
    if match:
        return it.DecimalType(int(match.group(1)), int(match.group(2)))
    raise ValueError(f"no Iceberg type for Spark type {spark_type!r}")


def schema_of(columns: str) -> Schema:
    from pyiceberg.schema import Schema
    from pyiceberg.types import NestedField

    fields = []
    names = column_names(columns)
    for i, (name, decl) in enumerate(zip(names, re.split(r",(?![^()]*\))", columns), strict=True), 1):
        spark_type = decl.strip()[len(name) :].strip().lower()
        fields.append(NestedField(i, name, _iceberg_type(spark_type), required=False))
    return Schema(*fields)


def spec_of(schema: Schema, partitioning: str) -> PartitionSpec:
    """``days(ts), symbol`` -> a PartitionSpec with Spark's partition field names."""
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.transforms import DayTransform, IdentityTransform

    fields = []
    for i, part in enumerate(p.strip() for p in partitioning.split(",")):
        match = _TRANSFORM.match(part)
        if match and match.group(1) == "days":
            source, transform, name = match.group(2), DayTransform(), f"{match.group(2)}_day"
        elif match:
            raise ValueError(f"unsupported partition transform {part!r}")
        else:
            source, transform, name = part, IdentityTransform(), part
        fields.append(PartitionField(schema.find_field(source).field_id, 1000 + i, transform, name))
    return PartitionSpec(*fields)


def existing_table(settings: Settings, table: str) -> Table | None:
    cat = catalog(settings)
    ident = identifier(settings, table)
    return cat.load_table(ident) if cat.table_exists(ident) else None


def ensure_table(settings: Settings, table: str, cat: Catalog | None = None) -> Table:
    """Load ``table``, creating it (and the namespace) from its definition when missing."""
    cat = cat or catalog(settings)
    ident = identifier(settings, table)
    if cat.table_exists(ident):
        return cat.load_table(ident)
    columns, partitioning = table_definition(table)
    schema = schema_of(columns)
    cat.create_namespace_if_not_exists(settings.lake.namespace)
    return cat.create_table_if_not_exists(
        ident, schema, partition_spec=spec_of(schema, partitioning), properties={"format-version": "2"}
    )


def with_commit_retry(action: Callable[[], T], attempts: int = 5) -> T:
    """Retry an optimistic commit that lost a race (the streaming pipeline commits to the same tables).

    ``action`` must refresh the table first, or the retry would repeat the stale commit.
    """
    from pyiceberg.exceptions import CommitFailedException

    return retry(
        action,
        what="Iceberg commit",
        deadline_seconds=math.inf,
        max_attempts=attempts,
        retryable=lambda exc: isinstance(exc, CommitFailedException),
        backoff=Backoff(initial=0.2, factor=2, maximum=5, jitter=0.25),
        reraise=True,
    )
