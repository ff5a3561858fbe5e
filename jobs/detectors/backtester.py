"""MOD-011 backtester: every alert's implied direction against the price 1 h / 4 h / 24 h later.

It does not run on the stream (``streams = False``): its input is the other modules' alerts and the
trade prices after them, which only exist once those horizons have passed. Two callers share the code
below: ``coattail detect`` calls :meth:`BacktesterDetector.follow` with the alerts the batch produced and
its input trades, and the daily batch step (:mod:`jobs.batch.backtest`) runs :func:`backtest_run` over
``anomaly_alerts`` and ``raw_trades`` at one Iceberg snapshot. The arithmetic is :mod:`jobs.backtest_logic`.

Rows of ``backtest_results`` are per (backtest_date, module_id, symbol, horizon), ``backtest_date``
being the UTC day the alerts were *detected*: a run over several days writes one set of rows per day,
and a later run over the same day (more horizons elapsed) rewrites that day's rows. Alerts: one
``backtest_complete`` per run (low; id from the run id) and a ``signal_degradation`` (high) per module
and day whose hit rate fell below its trailing rate (id from module and day: a rerun rewrites it).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from coattail.contracts import Alert, alert_id
from coattail.contracts.spark import ddl_columns
from coattail.panels import Figure, SymbolPanel
from coattail.settings import Settings
from coattail.settings.modules import ModuleParams
from jobs.backtest_logic import (
    BACKTESTED_TYPES,
    HORIZONS,
    AlertLike,
    Degradation,
    LakeAlert,
    Outcome,
    PriceIndex,
    degradations,
    evaluate_all,
    summarize,
    with_net_flow,
)
from jobs.detectors.common import from_us
from jobs.framework.detector import TRADES, BaseDetector, DetectorResult

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

RUN_SYMBOL = "ALL-ALL"  # run- and module-level alerts name no instrument


class DegradationParams(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}

    horizon: str = "1h"
    points: float = Field(default=15.0, gt=0, le=100)  # today's rate this many points below trailing: fire
    min_n: int = Field(default=20, ge=1)  # resolved outcomes needed on each side
    trailing_days: int = Field(default=7, ge=1)

    @field_validator("horizon")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in HORIZONS:
            raise ValueError(f"horizon must be one of {', '.join(HORIZONS)}")
        return value


class BacktesterParams(ModuleParams):
    horizons: list[str] = Field(default_factory=lambda: list(HORIZONS))
    move_pct: float = Field(default=2.0, gt=0)  # an unsigned "big move" call (MOD-010) hits above this |%|
    price_max_age_minutes: float = Field(default=15, gt=0)  # an older trade price is no price
    # Prices are kept as the last trade of each bucket per (exchange, symbol), with its own time: a
    # lookup may answer a price up to this much older than the newest one, never a later one.
    price_bucket_seconds: int = Field(default=10, ge=1)
    degradation: DegradationParams = Field(default_factory=DegradationParams)

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, value: list[str]) -> list[str]:
        unknown = [h for h in value if h not in HORIZONS]
        if unknown or not value:
            raise ValueError(f"horizons must be a non-empty subset of {', '.join(HORIZONS)}")
        return [h for h in HORIZONS if h in value]

    @property
    def max_age(self) -> timedelta:
        return timedelta(minutes=self.price_max_age_minutes)

    @property
    def longest(self) -> timedelta:
        return max(HORIZONS[h] for h in self.horizons)


class BacktestFigures(BaseModel):
    """The columns of a ``backtest_results`` row after its date (Spark DDL derives from this)."""

    module_id: str
    symbol: str
    horizon: str  # 1h | 4h | 24h
    n: int  # resolved outcomes
    hits: int
    hit_rate: float | None
    mean_return: float | None  # mean signed return, a fraction (0.01 = 1 %)
    sharpe: float | None  # mean / sample std of the signed returns (per alert)
    max_drawdown: float | None  # of the compounded signed returns in detection order, a fraction
    pending: int  # horizon not elapsed at as_of: left for a later run
    unpriced: int  # no trade price near entry or exit
    run_id: str
    window_start: datetime  # the run's alert window
    window_end: datetime
    as_of: datetime  # outcomes known at this time
    snapshot_id: int | None  # raw_trades snapshot read (None: coattail detect's input)


class BacktestRow(BacktestFigures):
    """One row of ``backtest_results``: a module's record on one symbol, horizon and detection day."""

    backtest_date: date


class BacktestCompleteDetails(BaseModel):
    run_id: str
    window_start: str
    window_end: str
    as_of: str
    snapshot_id: int | None
    alerts_evaluated: int
    pending: int
    unpriced: int
    hit_rates_1h: dict[str, dict[str, float | int | None]]  # module_id -> {n, hit_rate}


class SignalDegradationDetails(BaseModel):
    degraded_module: str
    backtest_date: str
    horizon: str
    hit_rate: float
    n: int
    trailing_hit_rate: float
    trailing_n: int
    trailing_days: int
    trailing_dates: list[str]
    drop_points: float


@dataclass
class BacktestRun:
    """Everything one back-test produced."""

    run_id: str
    window_start: datetime
    window_end: datetime
    as_of: datetime
    snapshot_id: int | None
    alerts_evaluated: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    degraded: list[Degradation] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return sum(r["pending"] for r in self.rows)

    @property
    def unpriced(self) -> int:
        return sum(r["unpriced"] for r in self.rows)

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "backtest_date": max(
                (r["backtest_date"] for r in self.rows), default=self.window_end.date()
            ).isoformat(),
            "backtest_dates": sorted({r["backtest_date"].isoformat() for r in self.rows}),
            "start": self.window_start.isoformat(),
            "end": self.window_end.isoformat(),
            "as_of": self.as_of.isoformat(),
            "snapshot_id": self.snapshot_id,
            "alerts_evaluated": self.alerts_evaluated,
            "pending": self.pending,
            "unpriced": self.unpriced,
            "rows": len(self.rows),
            "degraded": [d.module_id for d in self.degraded],
        }


def run_id_of(*evidence: object) -> str:
    """Deterministic id of a run from its inputs (same inputs, same id, same alert)."""
    return alert_id("MOD-011", "run", *evidence)


def module_rates(rows: Iterable[Mapping[str, Any]], horizon: str = "1h") -> dict[str, dict[str, Any]]:
    """n-weighted hit rate per module at ``horizon`` over ``rows`` (all symbols and dates)."""
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["horizon"] == horizon:
            acc[r["module_id"]][0] += int(r["hits"])
            acc[r["module_id"]][1] += int(r["n"])
    return {m: {"n": n, "hit_rate": (h / n if n else None)} for m, (h, n) in sorted(acc.items())}


def backtest_run(
    alerts: Sequence[AlertLike],
    prices: PriceIndex,
    as_of: datetime,
    params: BacktesterParams,
    *,
    window_start: datetime,
    window_end: datetime,
    run_id: str,
    snapshot_id: int | None,
    earlier_rows: Iterable[Mapping[str, Any]] = (),
    ttl: timedelta = timedelta(hours=24),
) -> BacktestRun:
    """Outcomes, backtest_results rows (per detection day), degradations and the run's alerts.

    ``earlier_rows``: backtest_results rows of days before this run's (the trailing window of the
    degradation rule); rows of the days this run covers are replaced by the run's own.
    """
    outcomes = evaluate_all(alerts, prices, as_of, params.horizons, params.move_pct)
    by_day: dict[date, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_day[o.detected_at.astimezone(UTC).date()].append(o)
    run_fields = {
        "run_id": run_id, "window_start": window_start, "window_end": window_end, "as_of": as_of,
        "snapshot_id": snapshot_id,
    }  # fmt: skip
    rows = [
        {"backtest_date": day, **row, **run_fields}
        for day in sorted(by_day)
        for row in summarize(by_day[day])
    ]
    evaluated = len({o.alert_id for o in outcomes})
    run = BacktestRun(run_id, window_start, window_end, as_of, snapshot_id, evaluated, rows, outcomes)
    days = set(by_day)
    history = [r for r in earlier_rows if _day(r["backtest_date"]) not in days] + rows
    d = params.degradation
    newest: dict[tuple[str, date], datetime] = {}
    for o in outcomes:
        key = (o.module_id, o.detected_at.astimezone(UTC).date())
        newest[key] = max(newest.get(key, o.detected_at), o.detected_at)
    for day in sorted(days):
        for found in degradations(
            history, day, horizon=d.horizon, points=d.points, min_n=d.min_n, trailing_days=d.trailing_days
        ):
            run.degraded.append(found)
            run.alerts.append(degradation_alert(found, newest[(found.module_id, day)], ttl))
    run.alerts.append(complete_alert(run, min(window_end, as_of), ttl))
    return run


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    if not isinstance(value, date):
        raise TypeError(f"backtest_date {value!r} is not a date")
    return value


def complete_alert(run: BacktestRun, detected_at: datetime, ttl: timedelta) -> Alert:
    rates = module_rates(run.rows)
    text = ", ".join(
        f"{m} {r['hit_rate']:.0%} (n={r['n']})" if r["hit_rate"] is not None else f"{m} n=0"
        for m, r in rates.items()
    )
    details = BacktestCompleteDetails(
        run_id=run.run_id,
        window_start=run.window_start.isoformat(),
        window_end=run.window_end.isoformat(),
        as_of=run.as_of.isoformat(),
        snapshot_id=run.snapshot_id,
        alerts_evaluated=run.alerts_evaluated,
        pending=run.pending,
        unpriced=run.unpriced,
        hit_rates_1h=rates,
    )
    return Alert.create(
        module_id="MOD-011",
        alert_type="backtest_complete",
        symbol=RUN_SYMBOL,
        exchange=None,
        severity="low",
        detected_at=detected_at,
        message=(
            f"Back-test of {run.alerts_evaluated} alerts ({run.window_start:%Y-%m-%d %H:%M} to "
            f"{run.window_end:%Y-%m-%d %H:%M} UTC), {run.pending} outcomes pending; "
            f"1h hit rates: {text or 'none'}"
        )[:1000],
        details=details.model_dump(mode="json"),
        evidence=(run.run_id,),
        ttl=ttl,
    )


def degradation_alert(d: Degradation, detected_at: datetime, ttl: timedelta) -> Alert:
    """Keyed by (module, day): the same degradation found again by a rerun is the same alert."""
    details = SignalDegradationDetails(
        degraded_module=d.module_id,
        backtest_date=d.backtest_date.isoformat(),
        horizon=d.horizon,
        hit_rate=round(d.today_rate, 6),
        n=d.today_n,
        trailing_hit_rate=round(d.trailing_rate, 6),
        trailing_n=d.trailing_n,
        trailing_days=(d.backtest_date - min(d.trailing_dates)).days if d.trailing_dates else 0,
        trailing_dates=[t.isoformat() for t in d.trailing_dates],
        drop_points=round(d.drop_points, 4),
    )
    return Alert.create(
        module_id="MOD-011",
        alert_type="signal_degradation",
        symbol=RUN_SYMBOL,
        exchange=None,
        severity="high",
        detected_at=detected_at,
        message=(
            f"{d.module_id} signal degraded on {d.backtest_date}: {d.horizon} hit rate {d.today_rate:.0%} "
            f"(n={d.today_n}) against {d.trailing_rate:.0%} (n={d.trailing_n}) over the trailing days"
        ),
        details=details.model_dump(mode="json"),
        evidence=(d.module_id, d.backtest_date),
        ttl=ttl,
    )


# -- Spark helpers shared with the batch step --------------------------------------------------------


def price_rows(trades: DataFrame, bucket_seconds: int) -> list[tuple[str, str, datetime, float]]:
    """(symbol, exchange, time, price) of the last trade per (exchange, symbol, bucket): the price index
    input, small enough for the driver. Times are exact UTC (micros), never later than the bucket's."""
    from pyspark.sql import functions as F

    us = F.unix_micros("timestamp")
    last = (
        trades.select("symbol", "exchange", us.alias("us"), F.col("price").cast("double").alias("price"))
        .withColumn("bucket", F.floor(F.col("us") / F.lit(bucket_seconds * 1_000_000)))
        .groupBy("symbol", "exchange", "bucket")
        .agg(F.max_by(F.struct("us", "price"), F.col("us")).alias("last"))
        .select("symbol", "exchange", F.col("last.us").alias("us"), F.col("last.price").alias("price"))
    )
    return [(r["symbol"], r["exchange"], from_us(r["us"]), float(r["price"])) for r in last.collect()]


def net_flows(alerts: Sequence[AlertLike], trades: DataFrame) -> dict[str, float]:
    """Taker net flow (buy − sell quote volume) of each volume spike's (symbol, exchange) window, by
    alert id: what the spike's implied direction is made of (the alert itself does not carry it)."""
    from pyspark.sql import functions as F

    spikes = []
    for a in alerts:
        if a.alert_type != "volume_spike" or a.exchange is None:
            continue
        try:
            start = datetime.fromisoformat(str(a.details["window_start"]).replace("Z", "+00:00"))
            end = datetime.fromisoformat(str(a.details["window_end"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            continue
        spikes.append((a.alert_id, a.symbol, a.exchange, _us(start), _us(end)))
    if not spikes:
        return {}
    spark = trades.sparkSession
    frame = spark.createDataFrame(
        spikes, "alert_id string, s_symbol string, s_exchange string, ws long, we long"
    )
    us = F.unix_micros("timestamp")
    signed = F.when(F.lower(F.col("side")) == "buy", 1.0).otherwise(-1.0) * F.col("quote_volume").cast(
        "double"
    )
    joined = trades.select("symbol", "exchange", us.alias("us"), signed.alias("flow")).join(
        F.broadcast(frame),
        (F.col("symbol") == F.col("s_symbol"))
        & (F.col("exchange") == F.col("s_exchange"))
        & (F.col("us") >= F.col("ws"))
        & (F.col("us") < F.col("we")),
    )
    return {
        r["alert_id"]: float(r["net"])
        for r in joined.groupBy("alert_id").agg(F.sum("flow").alias("net")).collect()
    }


def _us(t: datetime) -> int:
    aware = t if t.tzinfo else t.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1_000_000)


def with_flows(alerts: Sequence[AlertLike], flows: Mapping[str, float]) -> list[AlertLike]:
    """The alerts, volume spikes carrying their window's net flow in their details."""
    out: list[AlertLike] = []
    for a in alerts:
        if a.alert_type == "volume_spike":
            details = with_net_flow(a.details, flows.get(a.alert_id))
            out.append(
                LakeAlert(a.alert_id, a.module_id, a.alert_type, a.symbol, a.exchange, a.detected_at, details)
            )
        else:
            out.append(a)
    return out


def lake_alert(row: Mapping[str, Any]) -> LakeAlert:
    """An anomaly_alerts row (``detected_us``: detected_at as epoch micros; details JSON text)."""
    details = row.get("details")
    parsed = json.loads(details) if isinstance(details, str) and details else (details or {})
    return LakeAlert(
        row["alert_id"], row["module_id"], row["alert_type"], row["symbol"], row.get("exchange"),
        from_us(int(row["detected_us"])), parsed,
    )  # fmt: skip


class BacktesterDetector(BaseDetector):
    module_id = "MOD-011"
    module_name = "backtester"
    streams = False
    reads = TRADES
    panel = SymbolPanel(
        title="back-test",
        figures=(Figure("Alerts evaluated", "alerts_evaluated"), Figure("Pending", "pending")),
    )
    params_model = BacktesterParams
    row_model = BacktestRow

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, BacktesterParams)

    def partitioning(self) -> str:
        return "days(backtest_date), module_id"

    def record_keys(self) -> tuple[str, ...]:
        return ("backtest_date", "module_id", "symbol", "horizon")

    def table_columns(self) -> str:
        # The DDL derivation knows no dates: the day column is spelled here, the rest derived.
        return "backtest_date date, " + ddl_columns(BacktestFigures)

    def process(self, trades: DataFrame) -> DataFrame:
        raise NotImplementedError("MOD-011 runs over the other modules' results (follow), not on the stream")

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        raise NotImplementedError("MOD-011 runs over the other modules' results (follow), not on the stream")

    def follow(
        self, results: Mapping[str, DetectorResult], inputs: Mapping[str, DataFrame]
    ) -> DetectorResult:
        """Back-test every alert of the modules run before this one against the input trades' prices,
        as of the newest trade (``coattail detect``)."""
        trades = inputs[TRADES]
        alerts: list[AlertLike] = [
            a
            for module_id, r in results.items()
            if module_id != self.module_id
            for a in r.alerts
            if a.alert_type in BACKTESTED_TYPES
        ]
        prices = PriceIndex(price_rows(trades, self.params.price_bucket_seconds), self.params.max_age)
        if not alerts or prices.last_time is None:
            return DetectorResult()
        alerts = with_flows(alerts, net_flows(alerts, trades))
        as_of = prices.last_time
        start = min(a.detected_at for a in alerts)
        end = max(a.detected_at for a in alerts)
        run_id = run_id_of("detect", start, end, as_of, len(prices), *sorted(a.alert_id for a in alerts))
        run = backtest_run(
            alerts, prices, as_of, self.params, window_start=start, window_end=end, run_id=run_id,
            snapshot_id=None, ttl=self.alert_ttl(),
        )  # fmt: skip
        self.last_run = run  # the outcomes, for callers that report on them
        return DetectorResult(records=run.rows, alerts=run.alerts)
