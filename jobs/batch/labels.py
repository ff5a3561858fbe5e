"""The daily label refresh: ``labeled_wallets`` = the label files (+ the scorer's smart_money labels).

Desired rows are the shipped dataset and MOD-005's operator files merged on top of the ``smart_money``
labels passed in (a curated label wins over a computed one). They are compared with the table by
(blockchain, address) on label, entity_type and source: a row that did not change keeps its
``updated_at``, and when nothing differs the table is not written at all (no commit), so running the
refresh twice changes nothing the second time. Otherwise the table is replaced in one commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from coattail.chains.labels import LabelBook, WalletLabel, label_rows, load_labels
from coattail.contracts.spark import ddl_columns
from coattail.settings import Settings
from jobs.label_source import label_config, read_table_labels
from jobs.sinks.iceberg import COMMIT_LOCK, ensure_table, qualified, rows_frame

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("jobs.batch")


@dataclass
class LabelRefreshReport:
    added: int
    changed: int
    removed: int
    problems: list[str] = field(default_factory=list)  # one line per skipped file entry
    rows: list[WalletLabel] = field(default_factory=list)  # the table after the refresh
    removed_keys: list[tuple[str, str]] = field(default_factory=list)  # (blockchain, address) dropped

    @property
    def wrote(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "rows": len(self.rows),
            "problems": self.problems,
        }


def refresh_labels(
    spark: SparkSession, settings: Settings, now: datetime, smart_money: Sequence[WalletLabel] = ()
) -> LabelRefreshReport:
    """Bring ``labeled_wallets`` to the files (+ ``smart_money``); write only when something differs."""
    config = label_config(settings)
    loaded = load_labels(config.files, default_updated_at=now)
    desired = LabelBook(smart_money).merged(loaded.book.rows()).rows()
    ensure_table(spark, settings, config.table, ddl_columns(WalletLabel), "")
    current = {label.key: label for label in read_table_labels(spark, settings, config.table) or []}
    rows: list[WalletLabel] = []
    added = changed = 0
    for label in desired:
        before = current.get(label.key)
        if before is not None and before.same_content(label):
            rows.append(before)  # unchanged: keeps the time it was last changed
            continue
        added, changed = (added + 1, changed) if before is None else (added, changed + 1)
        rows.append(label)
    gone = sorted(current.keys() - {label.key for label in desired})
    removed = len(gone)
    report = LabelRefreshReport(added, changed, removed, loaded.problems, rows, gone)
    if report.wrote:
        from pyspark.sql import functions as F

        frame = rows_frame(spark, label_rows(rows), ddl_columns(WalletLabel))
        with COMMIT_LOCK:  # one commit replaces the table (an empty desired set empties it)
            frame.writeTo(qualified(settings, config.table)).overwrite(F.lit(True))
    log.info(
        "labels refreshed: %d added, %d changed, %d removed, %d rows, %d problem(s)",
        added, changed, removed, len(rows), len(loaded.problems),
    )  # fmt: skip
    return report
