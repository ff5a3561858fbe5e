"""Catalog upkeep (seed §5.1 UpdateCatalog): compact, expire old snapshots, remove orphan files.

Iceberg's Spark procedures do the work, for every table of the active tier that exists: the core
tables, the active modules' tables and the batch flow's own. Compaction runs first so that the
expiry right after it can delete the small files it replaced (once they are older than retention).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from coattail.settings import Settings
from jobs.batch import lake
from jobs.session import CATALOG
from jobs.sinks.iceberg import COMMIT_LOCK, CORE_TABLES, qualified

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("jobs.batch")
ORPHAN_MIN_AGE = timedelta(days=1)  # never touch files young enough to belong to a commit in flight


@dataclass
class TableUpkeep:
    table: str
    data_files_before: int
    data_files_after: int
    rewritten_files: int
    added_files: int
    expired_snapshots: int
    deleted_files: int
    orphans_removed: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tier_tables(settings: Settings) -> list[str]:
    modules = [settings.modules[m].output_table for m in settings.active_modules]
    return list(dict.fromkeys([*CORE_TABLES, *modules, *lake.BATCH_TABLES]))


def _ts(value: datetime) -> str:
    return f"TIMESTAMP '{value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}'"


def _data_files(spark: SparkSession, table: str) -> int:
    return int(spark.sql(f"SELECT count(*) AS n FROM {table}.files").collect()[0]["n"])  # noqa: S608


def _first(rows: list[Any], *names: str) -> int:
    if not rows:
        return 0
    row = rows[0].asDict()
    return int(sum(int(row.get(n) or 0) for n in names))


def maintain_table(
    spark: SparkSession, settings: Settings, table: str, *, expire_before: datetime, orphans_before: datetime
) -> TableUpkeep:
    name = qualified(settings, table)
    ident = f"{settings.lake.namespace}.{table}"
    proc = f"{CATALOG}.system"
    before = _data_files(spark, name)
    with COMMIT_LOCK:
        rewrite = spark.sql(
            f"CALL {proc}.rewrite_data_files(table => '{ident}', "
            f"options => map('min-input-files', '2', 'partial-progress.enabled', 'true'))"
        ).collect()
        expire = spark.sql(
            f"CALL {proc}.expire_snapshots(table => '{ident}', "
            f"older_than => {_ts(expire_before)}, retain_last => 1)"
        ).collect()
        orphans = spark.sql(
            f"CALL {proc}.remove_orphan_files(table => '{ident}', older_than => {_ts(orphans_before)})"
        ).collect()
    result = TableUpkeep(
        table=table,
        data_files_before=before,
        data_files_after=_data_files(spark, name),
        rewritten_files=_first(rewrite, "rewritten_data_files_count"),
        added_files=_first(rewrite, "added_data_files_count"),
        expired_snapshots=_first(expire, "deleted_manifest_lists_count"),
        deleted_files=_first(expire, "deleted_data_files_count", "deleted_position_delete_files_count"),
        orphans_removed=len(orphans),
    )
    log.info("upkeep %s: %s", table, result.to_json())
    return result


def maintain(
    spark: SparkSession,
    settings: Settings,
    *,
    older_than: datetime | None = None,
    now: datetime | None = None,
) -> list[TableUpkeep]:
    """Upkeep of every existing table of the tier; ``older_than`` defaults to now - retention."""
    now = now or datetime.now(UTC)
    expire_before = older_than or now - timedelta(days=settings.batch.snapshot_retention_days)
    orphans_before = min(expire_before, now - ORPHAN_MIN_AGE)
    cat = lake.catalog(settings)
    out = []
    for table in tier_tables(settings):
        if not cat.table_exists(lake.identifier(settings, table)):
            continue
        out.append(
            maintain_table(spark, settings, table, expire_before=expire_before, orphans_before=orphans_before)
        )
    return out
