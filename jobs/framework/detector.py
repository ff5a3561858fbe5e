"""BaseDetector: the contract every detector module implements (seed §4.1, §13.2).

A detector is Spark plumbing around pure functions (``jobs.logic``):

* ``process(trades)`` turns clean, de-duplicated TradeEvents into the module's intermediate rows. It
  must work on a streaming DataFrame (the pipeline) and on a batch DataFrame (``coattail detect``).
  Stateful detectors get ``trades`` already watermarked with :meth:`watermark_seconds`.
* ``finish(rows)`` turns one micro-batch (or the whole batch) of those rows, as plain dicts, into the
  rows of the module's own table and the alerts. Output per batch is small (windows, whales), so it
  runs on the driver with the validated ``Alert`` contract.

Subclasses register themselves by ``module_id``; the ModuleRegistry instantiates those the tier asks for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from coattail.contracts import Alert
from coattail.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

REGISTRY: dict[str, type[BaseDetector]] = {}


@dataclass
class DetectorResult:
    """What one batch of a detector produced: rows for its own table and alerts for the router."""

    records: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


class BaseDetector(ABC):
    module_id: ClassVar[str]
    module_name: ClassVar[str]
    # Stateless detectors run inside the ingest query's micro-batch (no second read of the stream);
    # stateful ones (windows, baselines) get their own streaming query with their own watermark.
    stateful: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "module_id", None):
            REGISTRY[cls.module_id] = cls

    def __init__(self) -> None:
        self.settings: Settings | None = None

    # -- configuration ------------------------------------------------------------------------------
    def configure(self, settings: Settings) -> None:
        """Read this module's entry of ``settings.modules`` (typed params in subclasses)."""
        self.settings = settings

    @property
    def config(self) -> Settings:
        if self.settings is None:
            raise RuntimeError(f"{self.module_id} used before configure()")
        return self.settings

    def alert_types(self) -> list[str]:
        return list(self.config.modules[self.module_id].alert_types)

    def output_table(self) -> str:
        return self.config.modules[self.module_id].output_table

    def alert_ttl(self) -> timedelta:
        return timedelta(hours=self.config.hot_store.ttl_hours)

    def watermark_seconds(self) -> int | None:
        """Event-time watermark of a stateful detector's stream (None: stateless)."""
        return None

    # -- the module's own table ---------------------------------------------------------------------
    @abstractmethod
    def table_columns(self) -> str:
        """Spark SQL column list of :meth:`output_table`, e.g. ``"symbol string, window_start timestamp"``."""

    @abstractmethod
    def partitioning(self) -> str:
        """Iceberg hidden partitioning, e.g. ``"days(window_start), symbol"``."""

    @abstractmethod
    def record_keys(self) -> tuple[str, ...]:
        """Columns that identify a record; rewrites (replays) of the same record are skipped."""

    # -- detection ----------------------------------------------------------------------------------
    @abstractmethod
    def process(self, trades: DataFrame) -> DataFrame:
        """Intermediate rows from clean trades (streaming or batch DataFrame)."""

    @abstractmethod
    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        """Table rows and alerts from one batch of :meth:`process` output."""
