"""The label book the on-chain detectors look wallets up in (MOD-005 alerts, MOD-008 enrichment).

Files first (the shipped dataset plus MOD-005's ``label_files``), then the lake table
``labeled_wallets`` on top when it exists: the daily refresh writes it from the same files plus the
scorer's ``smart_money`` write-backs, so it is the newer word. The stream re-reads the table at most
every ``reload_seconds``, so refreshes reach a running pipeline without a restart; without a Spark
session (unit tests, a finish() on its own) the book is the files'.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from coattail.chains.labels import LabelBook, WalletLabel, load_labels
from coattail.contracts.types import from_epoch_us
from coattail.settings import Settings
from jobs.sinks.iceberg import lake_tables, qualified

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("jobs.labels")
LABELS_MODULE = "MOD-005"
LABELS_TABLE = "labeled_wallets"
DEFAULT_RELOAD_SECONDS = 300.0


@dataclass(frozen=True)
class LabelConfig:
    files: tuple[str, ...]
    reload_seconds: float
    table: str


def label_config(settings: Settings) -> LabelConfig:
    """MOD-005's label files, reload interval and table (defaults when the module has no params)."""
    entry = settings.modules.get(LABELS_MODULE)
    params: dict[str, Any] = dict(entry.params) if entry is not None else {}
    return LabelConfig(
        files=tuple(str(f) for f in params.get("label_files") or ()),
        reload_seconds=float(params.get("reload_seconds", DEFAULT_RELOAD_SECONDS)),
        table=entry.output_table if entry is not None and entry.output_table else LABELS_TABLE,
    )


def read_table_labels(
    spark: SparkSession, settings: Settings, table: str = LABELS_TABLE
) -> list[WalletLabel] | None:
    """The rows of the labels table (None when it does not exist); rows that fail the model are skipped."""
    from pyspark.sql import functions as F

    name = qualified(settings, table)
    if table not in lake_tables(spark, settings):  # (catalog.tableExists raises on the JDBC catalog)
        return None
    rows = (
        spark.table(name)
        .select(
            "address", "blockchain", "label", "entity_type", "source", F.unix_micros("updated_at").alias("us")
        )
        .collect()
    )
    labels: list[WalletLabel] = []
    for row in rows:
        values = row.asDict()
        us = values.pop("us")
        try:
            labels.append(
                WalletLabel.model_validate(
                    {**values, "updated_at": None if us is None else from_epoch_us(us)}
                )
            )
        except ValidationError as exc:
            log.warning("%s: skipped a row that is not a label (%s)", table, exc.errors()[0]["msg"])
    return labels


class LabelSource:
    """The current :class:`LabelBook`: files, with the lake table on top once a session has read it."""

    def __init__(
        self,
        settings: Settings,
        config: LabelConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.config = config or label_config(settings)
        loaded = load_labels(self.config.files)
        for problem in loaded.problems:
            log.warning("label skipped: %s", problem)
        self.problems: Sequence[str] = loaded.problems
        self.files = loaded.book
        self.book = self.files
        self._clock = clock
        self._next_read = -math.inf

    def refresh(self, spark: SparkSession | None) -> LabelBook:
        """Re-read the table when ``reload_seconds`` have passed since the last read (never fails)."""
        now = self._clock()
        if spark is None or now < self._next_read:
            return self.book
        self._next_read = now + self.config.reload_seconds
        try:
            lake = read_table_labels(spark, self.settings, self.config.table)
        except Exception as exc:  # a lake hiccup must not stop alerts: keep the book we have
            log.warning("could not read %s, keeping the labels loaded before: %s", self.config.table, exc)
            return self.book
        self.book = self.files.merged(lake) if lake else self.files
        return self.book
