"""BaseDetector: the contract every detector module implements (seed §4.1, §13.2).

A detector is Spark plumbing around pure functions (``jobs.logic``):

* ``process(trades)`` turns clean, de-duplicated TradeEvents (or OnchainEvents: :attr:`reads`) into the
  module's intermediate rows. It must work on a streaming DataFrame (the pipeline) and on a batch
  DataFrame (``coattail detect``). Stateful detectors get their input already watermarked with
  :meth:`watermark_seconds` (on ``timestamp``, or ``block_timestamp`` for on-chain events).
* ``finish(rows)`` turns one micro-batch (or the whole batch) of those rows, as plain dicts, into the
  rows of the module's own table and the alerts. Output per batch is small (windows, whales), so it
  runs on the driver with the validated ``Alert`` contract.

Subclasses register themselves by ``module_id``; the ModuleRegistry instantiates those the tier asks for.

Bad times are stopped upstream (``jobs.quality``'s timestamp window); as a second line, ``process``
implementations keep only :func:`convertible` trades and the runner calls :meth:`finish_guarded`, so one
row no converter can handle never fails a micro-batch that a restart would replay and fail again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from coattail.contracts import Alert
from coattail.contracts.spark import ddl_columns
from coattail.panels import SymbolPanel, WindowPoint
from coattail.settings import Settings
from coattail.settings.modules import register_params

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

REGISTRY: dict[str, type[BaseDetector]] = {}
# Trade times every converter on the way handles: pandas/Arrow datetime64[ns] ends in April 2262, Python
# datetimes in 9999; the margin leaves room for a window's end.
CONVERTIBLE_FROM = datetime(1900, 1, 1, tzinfo=UTC)
CONVERTIBLE_UNTIL = datetime(2262, 1, 1, tzinfo=UTC)


# What a detector reads: the clean TradeEvents of the trades topic, or the clean OnchainEvents of the
# on-chain topic (DESIGN.md: the on-chain path runs only when an active module reads on-chain events).
TRADES = "trades"
ONCHAIN = "onchain"
EVENT_TIME = {TRADES: "timestamp", ONCHAIN: "block_timestamp"}  # the event-time column of each input


def convertible(trades: DataFrame, column: str = "timestamp") -> DataFrame:
    """Only events whose ``column`` time can reach Python (a backstop: quality dead-letters the rest)."""
    from pyspark.sql import functions as F

    ts = F.col(column)
    return trades.where((ts >= F.lit(CONVERTIBLE_FROM)) & (ts < F.lit(CONVERTIBLE_UNTIL)))


@dataclass
class DetectorResult:
    """What one batch of a detector produced: rows for its own table and alerts for the router.

    ``early`` alerts are provisional (a window still open already crossed its threshold): they go to
    the hot store only, under the id the closed window's alert will have, which then replaces them.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    early: list[Alert] = field(default_factory=list)
    retracted: list[Alert] = field(default_factory=list)  # early alerts the closed window did not confirm


class BaseDetector(ABC):
    module_id: ClassVar[str]
    module_name: ClassVar[str]
    # Stateless detectors run inside the ingest query's micro-batch (no second read of the stream);
    # stateful ones (windows, baselines) get their own streaming query with their own watermark.
    stateful: ClassVar[bool] = False
    # The input of process(): ``"trades"`` (TradeEvent columns) or ``"onchain"`` (OnchainEvent columns).
    reads: ClassVar[str] = TRADES
    # The module's table is its clean input itself (MOD-008 lands every OnchainEvent in onchain_events):
    # the lake path appends the clean frame straight to it, finish() returns alerts only.
    lands_input: ClassVar[bool] = False
    # False: the module runs over the other modules' results, not on the stream (MOD-011, the
    # backtester): the pipeline does not start it and ``coattail detect`` calls :meth:`follow` instead
    # of process()/finish(); its batch step runs it on the lake.
    streams: ClassVar[bool] = True
    # What the dashboard shows of this module per symbol (figures of its latest alert); see coattail.panels.
    panel: ClassVar[SymbolPanel] = SymbolPanel(title="alerts")
    # The module's own models: its config params, one row of its output table (the Iceberg DDL is
    # derived from it) and its alerts' details. None: free-form / hand-written (tests' tiny modules).
    params_model: ClassVar[type[BaseModel] | None] = None
    row_model: ClassVar[type[BaseModel] | None] = None
    details_model: ClassVar[type[BaseModel] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "module_id", None):
            REGISTRY[cls.module_id] = cls
            if cls.params_model is not None:  # config loading validates this module's params with it
                register_params(cls.module_id, cls.params_model)

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
    def table_columns(self) -> str:
        """Spark SQL column list of :meth:`output_table`, derived from :attr:`row_model`."""
        if self.row_model is None:
            raise NotImplementedError(f"{self.module_id} declares neither row_model nor table_columns()")
        return ddl_columns(self.row_model)

    def details(self, **values: Any) -> dict[str, Any]:
        """An alert's ``details``, validated by :attr:`details_model` (JSON-ready: decimals as strings)."""
        if self.details_model is None:
            return values
        return self.details_model.model_validate(values).model_dump(mode="json")

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

    def window_points(self, record: dict[str, Any]) -> list[WindowPoint]:
        """The chart points of one row of this module's table (recent-windows store); none by default."""
        return []

    def publish(self, hot: Any, records: list[dict[str, Any]]) -> None:
        """Hot-store writes of this module's own rows beyond alerts and chart points, after the alerts
        (MOD-004: the wallet store, ``hot.wallets``); nothing by default."""
        return None

    def see_results(self, results: Mapping[str, DetectorResult], inputs: Mapping[str, DataFrame]) -> None:
        """``coattail detect`` calls this just before running the module, with the results of the modules
        run before it (config order) and the batch inputs (``"trades"``, ``"onchain"``): MOD-010 builds its
        context (wallet alpha, back-tested hit rates) from them. Nothing by default."""
        return None

    def follow(
        self, results: Mapping[str, DetectorResult], inputs: Mapping[str, DataFrame]
    ) -> DetectorResult:
        """The result of a module that does not stream (:attr:`streams` False), from the other modules'
        results and the batch inputs (MOD-011: back-test every alert against the input prices)."""
        raise NotImplementedError(f"{self.module_id} streams: coattail detect runs its process()/finish()")

    def batch_table(self) -> list[dict[str, Any]] | None:
        """Rows of the module's table that do not come from its input (MOD-005: its label book), for
        ``coattail detect --tables``; None: the records :meth:`finish` returned."""
        return None

    def finish_guarded(self, rows: list[dict[str, Any]]) -> tuple[DetectorResult, list[Rejected]]:
        """:meth:`finish`, setting aside the rows that fail on their own instead of failing the batch.

        An error no single row explains is a bug, not bad data: it is raised.
        """
        try:
            return self.finish(rows), []
        except Exception:
            rejected = [Rejected(row, err) for row in rows if (err := self._finish_error(row)) is not None]
            if not rejected:
                raise
        bad = {id(r.row) for r in rejected}
        return self.finish([row for row in rows if id(row) not in bad]), rejected

    def _finish_error(self, row: dict[str, Any]) -> Exception | None:
        try:
            self.finish([row])
        except Exception as err:  # any failure of this row alone marks it as poison
            return err
        return None


@dataclass(frozen=True)
class Rejected:
    """An output row :meth:`BaseDetector.finish` could not turn into records/alerts, and why."""

    row: dict[str, Any]
    error: Exception

    @property
    def reason(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"
