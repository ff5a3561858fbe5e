"""What MOD-010 knows besides its own windows: the wallets active on an asset and how good the signals
on it have been (DESIGN.md MOD-010's "highest wallet alpha percentile active on the asset" and "the
back-tested hit rate of similar past signals").

Two sources, one :class:`PredictorContext`:

* ``coattail detect`` (:meth:`PredictorContext.from_results`): the alerts the modules before MOD-010
  produced in this run and the run's trade prices. Hit rates are back-tested here with MOD-011's own
  functions (:mod:`jobs.backtest_logic`) and asked *as of each window's end*
  (:func:`~jobs.backtest_logic.hit_rates_as_of`): an alert counts only once its hour has passed, so a
  window never sees an outcome that lies in its future.
* the stream (:meth:`PredictorContext.refresh`): the lake tables ``anomaly_alerts`` (recent high-alpha
  wallet alerts, and every recent alert to know which modules spoke on an asset) and ``backtest_results``
  (the latest 1 h hit rate per module and symbol, from the daily back-test), re-read at most every
  ``reload_seconds`` — like the label book (:mod:`jobs.label_source`). A table that does not exist yet
  is an empty context, never an error; a read that fails keeps what was read before.

Assets are compared by BASE (``ETH-USDT``, ``ETH-USD`` and an on-chain ``WETH`` swap are all ``ETH``,
through MOD-008's symbol aliases).
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from coattail.contracts.types import from_epoch_us
from coattail.settings import Settings
from jobs.backtest_logic import AlertLike, LakeAlert, Outcome, PriceIndex, evaluate_all, hit_rates_as_of
from jobs.predict_logic import base_of, pooled_hit_rate
from jobs.sinks.iceberg import lake_tables, qualified

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger("jobs.predictor")
WALLET_MODULE, WALLET_ALERT = "MOD-004", "high_alpha_wallet"
SELF_MODULES = frozenset({"MOD-010", "MOD-011"})  # MOD-010's own calls and the back-test's reports
ALERTS_TABLE, BACKTEST_TABLE = "anomaly_alerts", "backtest_results"
HIT_HORIZON = "1h"


@dataclass(frozen=True)
class Spoke:
    """A module alerted on an asset at a time."""

    at: datetime
    module_id: str
    symbol: str


class PredictorContext:
    """Wallet alpha and hit rates per asset, from whichever source filled it."""

    def __init__(
        self,
        *,
        lookback: timedelta,
        aliases: Mapping[str, str],
        reload_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookback = lookback
        self.aliases = {k.upper(): v.upper() for k, v in aliases.items()}
        self.reload_seconds = reload_seconds
        self._clock = clock
        self._next_read = -math.inf
        self._wallets: dict[str, list[tuple[datetime, float]]] = {}  # base -> (time, percentile), sorted
        self._spoke: dict[str, list[Spoke]] = {}  # base -> alerts, time order
        self._outcomes: dict[str, list[Outcome]] | None = None  # detect: back-tested outcomes per base
        self._rates: dict[
            tuple[str, str], tuple[int, int]
        ] = {}  # stream: latest (hits, n) per (module, symbol)

    def base(self, symbol: str) -> str:
        b = base_of(symbol)
        return self.aliases.get(b, b)

    # -- filling ------------------------------------------------------------------------------------
    def set_alerts(self, alerts: Iterable[AlertLike]) -> None:
        wallets: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        spoke: dict[str, list[Spoke]] = defaultdict(list)
        for a in alerts:
            if a.module_id in SELF_MODULES:
                continue
            base = self.base(a.symbol)
            spoke[base].append(Spoke(a.detected_at, a.module_id, a.symbol))
            if a.module_id == WALLET_MODULE and a.alert_type == WALLET_ALERT:
                pct = a.details.get("alpha_percentile")
                token = a.details.get("token_symbol")
                if isinstance(token, str) and token:
                    base = self.aliases.get(token.upper(), token.upper())
                if isinstance(pct, int | float):
                    wallets[base].append((a.detected_at, float(pct)))
        self._wallets = {b: sorted(v) for b, v in wallets.items()}
        self._spoke = {b: sorted(v, key=lambda s: (s.at, s.module_id, s.symbol)) for b, v in spoke.items()}

    @classmethod
    def from_results(
        cls,
        alerts: Iterable[AlertLike],
        prices: PriceIndex,
        *,
        lookback: timedelta,
        aliases: Mapping[str, str],
        move_pct: float = 2.0,
    ) -> PredictorContext:
        """``coattail detect``: this run's alerts, back-tested at 1 h against this run's prices."""
        context = cls(lookback=lookback, aliases=aliases)
        chosen = [a for a in alerts if a.module_id not in SELF_MODULES]
        context.set_alerts(chosen)
        outcomes: dict[str, list[Outcome]] = defaultdict(list)
        if prices.last_time is not None:
            for o in evaluate_all(chosen, prices, prices.last_time, (HIT_HORIZON,), move_pct):
                outcomes[context.base(o.symbol)].append(o)
        context._outcomes = dict(outcomes)
        return context

    def set_rates(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """backtest_results rows: the latest 1 h (hits, n) of each (module, symbol)."""
        latest: dict[tuple[str, str], tuple[Any, int, int]] = {}
        for r in rows:
            n = int(r.get("n") or 0)
            if r.get("horizon") != HIT_HORIZON or not n or r.get("hit_rate") is None:
                continue
            key = (str(r["module_id"]), str(r["symbol"]))
            hits = int(r["hits"]) if r.get("hits") is not None else round(float(r["hit_rate"]) * n)
            day = r.get("backtest_date")
            if key not in latest or (day is not None and latest[key][0] is not None and day > latest[key][0]):
                latest[key] = (day, hits, n)
        self._rates = {k: (h, n) for k, (_, h, n) in latest.items()}

    # -- the stream's lake reads --------------------------------------------------------------------
    def refresh(self, spark: SparkSession | None, settings: Settings, since: datetime) -> None:
        """Re-read the lake when ``reload_seconds`` have passed since the last read (never fails)."""
        now = self._clock()
        if spark is None or now < self._next_read:
            return
        self._next_read = now + self.reload_seconds
        try:
            tables = lake_tables(spark, settings)
            alerts = read_recent_alerts(spark, settings, since, tables)
            rates = read_hit_rates(spark, settings, tables)
        except Exception as exc:  # a lake hiccup must not stop the scores: keep what we have
            log.warning("MOD-010 could not read its context from the lake, keeping the last one: %s", exc)
            return
        self.set_alerts(alerts)
        self.set_rates(rates)

    # -- features -----------------------------------------------------------------------------------
    def wallet_alpha(self, symbol: str, end: datetime) -> float | None:
        """The highest alpha percentile of a high-alpha wallet alert on the asset in [end − lookback, end)."""
        found = self._wallets.get(self.base(symbol), [])
        lo = bisect.bisect_left(found, (end - self.lookback, -math.inf))
        hi = bisect.bisect_left(found, (end, -math.inf))
        return max((p for _, p in found[lo:hi]), default=None)

    def modules_on(self, symbol: str, start: datetime, end: datetime) -> set[str]:
        return {s.module_id for s in self._spoke.get(self.base(symbol), []) if start <= s.at < end}

    def hit_rate(self, symbol: str, start: datetime, end: datetime) -> float | None:
        """n-weighted 1 h hit rate, known at ``end``, of the modules that alerted on the asset in
        [start, end); None when none did or nothing about them is known."""
        base = self.base(symbol)
        modules = self.modules_on(symbol, start, end)
        if not modules:
            return None
        if self._outcomes is not None:
            known = hit_rates_as_of(self._outcomes.get(base, []), end, HIT_HORIZON)
        else:
            known = self._rates
        return pooled_hit_rate(v for (m, s), v in known.items() if m in modules and self.base(s) == base)


def read_recent_alerts(
    spark: SparkSession, settings: Settings, since: datetime, tables: set[str] | None = None
) -> list[LakeAlert]:
    """anomaly_alerts rows detected at/after ``since`` (not MOD-010/011's); [] without the table."""
    from pyspark.sql import functions as F

    name = qualified(settings, ALERTS_TABLE)
    if ALERTS_TABLE not in (lake_tables(spark, settings) if tables is None else tables):
        return []
    rows = (
        spark.table(name)
        .where((F.col("detected_at") >= F.lit(since)) & ~F.col("module_id").isin(*SELF_MODULES))
        .select(
            "alert_id",
            "module_id",
            "alert_type",
            "symbol",
            "exchange",
            F.unix_micros("detected_at").alias("us"),
            F.when(F.col("alert_type") == WALLET_ALERT, F.col("details")).alias("details"),
        )
        .collect()
    )
    out = []
    for r in rows:
        try:
            details = json.loads(r["details"]) if r["details"] else {}
        except ValueError:
            details = {}
        out.append(
            LakeAlert(
                r["alert_id"],
                r["module_id"],
                r["alert_type"],
                r["symbol"],
                r["exchange"],
                from_epoch_us(r["us"]),
                details if isinstance(details, dict) else {},
            )
        )
    return out


def read_hit_rates(
    spark: SparkSession, settings: Settings, tables: set[str] | None = None
) -> list[dict[str, Any]]:
    """The 1 h rows of backtest_results (newest per module and symbol is chosen later); [] without it."""
    from pyspark.sql import functions as F

    name = qualified(settings, BACKTEST_TABLE)
    if BACKTEST_TABLE not in (lake_tables(spark, settings) if tables is None else tables):
        return []
    table = spark.table(name)
    columns = ["backtest_date", "module_id", "symbol", "horizon", "n", "hit_rate"]
    if "hits" in table.columns:
        columns.append("hits")
    return [r.asDict() for r in table.where(F.col("horizon") == HIT_HORIZON).select(*columns).collect()]
