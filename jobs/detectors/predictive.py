"""MOD-010 predictive-scorer: every 15 min per symbol, p(|move| > 2 %) within 1 h, 2 h and 4 h from a
logistic regression over the other modules' evidence (DESIGN.md "Detector semantics").

Topology (MOD-007's): one stateful operator per symbol runs MOD-001's and MOD-006's own pure functions
on the trades (:func:`jobs.predict_logic.advance_evaluation`: volume windows per exchange, 5 min whale
flow windows, both nested in the 15 min evaluation window and closed by the same watermark), keeping
them in the query's checkpointed state, and emits each evaluation window as it closes with its close
price, its volume spikes, its whale flow and its latest consensus window — scored on the driver with
MOD-007's :func:`jobs.logic.consensus_score`, so the consensus feature is the score MOD-007 gave.

The features that are not in the trades — the wallets active on the asset (MOD-004) and the back-tested
hit rate of the modules that alerted on it — come from :class:`jobs.predictor_context.PredictorContext`:
``coattail detect`` hands over the earlier modules' results (:meth:`PredictiveScorerDetector.see_results`);
the stream reads the lake, and only the stream (an in-process lake read through a caller's session is
how MOD-005 once broke the test suite's shared session).

Coefficients are loaded at configure() (pipeline start) from ``params.coefficients_file``; a file whose
features are not :data:`jobs.predict_logic.FEATURES` is a one-line config error. The previous score of
each symbol (for score_update) is kept here, seeded once on the stream from the latest
``predictive_scores`` rows, so a restart compares with what was scored before it.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from coattail.contracts import Alert
from coattail.panels import Figure, SymbolPanel, WindowPoint
from coattail.settings import ConfigError, Settings
from coattail.settings.modules import ModuleParams
from jobs.compat import patch_apply_in_pandas_with_state
from jobs.detectors.common import from_us, iso
from jobs.detectors.consensus import ConsensusParams
from jobs.detectors.flow import FlowDirectionParams, flow_trades, whale_columns, whale_threshold
from jobs.detectors.volume import VolumeAnomalyParams, volume_kwargs
from jobs.detectors.wallets import aliases_of
from jobs.framework.detector import BaseDetector, DetectorResult, convertible
from jobs.logic import consensus_score, score_flow
from jobs.onchain_logic import trim
from jobs.predict_logic import (
    FEATURES,
    HORIZONS,
    Coefficients,
    EvaluationWindow,
    PredictorState,
    PriceTrade,
    advance_evaluation,
    decide,
    feature_vector,
    flow_ratio,
    load_coefficients,
)
from jobs.predictor_context import PredictorContext
from jobs.sinks.iceberg import lake_tables

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

    from jobs.framework.detector import Rejected

log = logging.getLogger("jobs.predictor")
VOLUME_MODULE, FLOW_MODULE, CONSENSUS_MODULE = "MOD-001", "MOD-006", "MOD-007"
OUTPUT_SCHEMA = (
    "symbol string, window_start_us long, window_end_us long, trades long, close_price string, "
    "max_abs_z double, whale_buy string, whale_sell string, whale_trades long, cw_start_us long, "
    "cw_buy string, cw_sell string, cw_trades long, cw_max_z double"
)
STATE_SCHEMA = "state string"
PRICE_BUCKET_SECONDS = 10  # detect's hit-rate feature: the last price per 10 s (MOD-011's default)
HISTORY_KEPT = 4  # scores per symbol remembered for "the previous score" (a replay finds the one before)
if "pyspark" in sys.modules:  # the Python worker, when it unpickles the state function
    patch_apply_in_pandas_with_state()


class PredictiveParams(ModuleParams):
    window_seconds: int = Field(900, gt=0, le=24 * 3600)  # evaluation windows: a multiple of MOD-006's
    coefficients_file: str = "predictor/coefficients.json"  # relative: to the config folder
    high_probability: float = Field(0.7, gt=0, lt=1)  # max p at or above -> high_probability_move
    change: float = Field(0.15, gt=0, lt=1)  # |p_h - previous p_h| at or above -> score_update
    move_pct: float = Field(2.0, gt=0)  # what "a move" is (the model's label; the back-test's hit)
    wallet_lookback_minutes: int = Field(60, ge=1)  # high-alpha wallet alerts this far before a window end
    reload_seconds: float = Field(300, ge=0)  # the stream re-reads its lake context at most this often
    price_max_age_minutes: int = Field(15, ge=1)  # back-testing the hit-rate feature: older is no price


class PredictiveScoreRow(BaseModel):
    """One row of ``predictive_scores``: a scored evaluation window of one symbol."""

    symbol: str
    scored_at: datetime  # the window's end
    window_start: datetime
    p_1h: float
    p_2h: float
    p_4h: float
    max_p: float
    features: str  # JSON object of the feature values (FEATURES)
    coefficients_version: str
    price: Decimal  # the window's close: its last trade's price
    trade_count: int
    consensus_score: float | None
    consensus_direction: str | None  # bullish | bearish | neutral; None without whale trades
    max_volume_z: float | None
    whale_buy_volume: Decimal
    whale_sell_volume: Decimal
    flow_ratio: float | None
    flagged: bool  # raised high_probability_move


class PredictionDetails(BaseModel):
    model: str  # "logistic"
    p_1h: float
    p_2h: float
    p_4h: float
    max_p: float
    horizon: str  # of max_p
    move_pct: float
    features: dict[str, float]
    coefficients_version: str
    previous: dict[str, float] | None  # the symbol's previous score's p's
    changed: list[str]  # horizons whose p moved by >= change (score_update)
    price: float
    window_start: str
    window_end: str


def coefficients_path(settings: Settings, params: PredictiveParams) -> Path:
    path = Path(params.coefficients_file).expanduser()
    return path if path.is_absolute() else settings.config_dir / path


class PredictiveScorerDetector(BaseDetector):
    module_id = "MOD-010"
    module_name = "predictive-scorer"
    stateful = True
    panel = SymbolPanel(
        title="prediction",
        figures=(Figure("p(move) max", "max_p"), Figure("Horizon", "horizon")),
        series=("move probability",),
    )
    params_model = PredictiveParams
    row_model = PredictiveScoreRow
    details_model = PredictionDetails

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, PredictiveParams)
        for needed in (VOLUME_MODULE, FLOW_MODULE, CONSENSUS_MODULE):
            if needed not in settings.modules:
                raise ConfigError(f"{self.module_id} needs {needed} configured in `modules`")
        self.volume = settings.module_params(VOLUME_MODULE, VolumeAnomalyParams)
        self.flow = settings.module_params(FLOW_MODULE, FlowDirectionParams)
        self.consensus = settings.module_params(CONSENSUS_MODULE, ConsensusParams)
        self.floor = whale_threshold(settings)
        if self.flow.window_seconds % self.volume.window_seconds:
            raise ConfigError(
                f"{FLOW_MODULE} window_seconds ({self.flow.window_seconds}) must be a multiple of "
                f"{VOLUME_MODULE} window_seconds ({self.volume.window_seconds})"
            )
        if self.params.window_seconds % self.flow.window_seconds:
            raise ConfigError(
                f"{self.module_id} window_seconds ({self.params.window_seconds}) must be a multiple of "
                f"{FLOW_MODULE} window_seconds ({self.flow.window_seconds}): evaluation windows hold whole "
                "consensus windows"
            )
        self.coefficients: Coefficients = load_coefficients(coefficients_path(settings, self.params))
        self.aliases = aliases_of(settings)
        self.context = self._empty_context()
        self._history: dict[str, list[tuple[datetime, dict[str, float]]]] = {}
        self._spark: SparkSession | None = None  # set on the stream only: its lake reads
        self._seeded = False

    def _empty_context(self) -> PredictorContext:
        return PredictorContext(
            lookback=timedelta(minutes=self.params.wallet_lookback_minutes),
            aliases=self.aliases,
            reload_seconds=self.params.reload_seconds,
        )

    def watermark_seconds(self) -> int:
        return max(self.flow.watermark_seconds, self.volume.watermark_seconds)

    def partitioning(self) -> str:
        return "days(scored_at), symbol"

    def record_keys(self) -> tuple[str, ...]:
        return ("symbol", "scored_at")

    def window_points(self, record: dict[str, Any]) -> list[WindowPoint]:
        return [
            WindowPoint(
                self.module_id,
                record["symbol"],
                "move probability",
                record["window_start"],
                float(record["max_p"]),
                bool(record["flagged"]),
                "high" if record["flagged"] else None,
            )
        ]

    def publish(self, hot: Any, records: list[dict[str, Any]]) -> None:
        """The scores to the analytics store (GET /predictions/{symbol})."""
        if records:
            hot.analytics.put_predictions(records)

    # -- context ------------------------------------------------------------------------------------
    def see_results(self, results: Mapping[str, DetectorResult], inputs: Mapping[str, DataFrame]) -> None:
        """``coattail detect``: the earlier modules' alerts and the run's trade prices are the context,
        priced the way MOD-011 prices them (its price sampling and volume-spike net flows)."""
        from jobs.backtest_logic import PriceIndex
        from jobs.detectors.backtester import net_flows, price_rows, with_flows

        alerts: list[Any] = [a for r in results.values() for a in r.alerts]
        rows: list[tuple[str, str, datetime, float]] = []
        trades = inputs.get("trades")
        if alerts and trades is not None:
            rows = price_rows(trades, PRICE_BUCKET_SECONDS)
            alerts = with_flows(alerts, net_flows(alerts, trades))
        self.context = PredictorContext.from_results(
            alerts,
            PriceIndex(rows, max_age=timedelta(minutes=self.params.price_max_age_minutes)),
            lookback=timedelta(minutes=self.params.wallet_lookback_minutes),
            aliases=self.aliases,
            move_pct=self.params.move_pct,
        )

    def _seed_previous(self, spark: SparkSession) -> None:
        """The stream's first batch: each symbol's latest scores in the lake (a restart's "previous")."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        from jobs.sinks.iceberg import qualified

        self._seeded = True
        name = qualified(self.config, self.output_table())
        try:
            if self.output_table() not in lake_tables(spark, self.config):
                return
            latest = Window.partitionBy("symbol").orderBy(F.col("us").desc())
            rows = (
                spark.table(name)
                .select("symbol", F.unix_micros("scored_at").alias("us"), "p_1h", "p_2h", "p_4h")
                .withColumn("rank", F.row_number().over(latest))
                .where(F.col("rank") <= HISTORY_KEPT)
                .collect()
            )
        except Exception as exc:  # a lake hiccup: no previous scores (no score_update on the first windows)
            log.warning("MOD-010 could not read the previous scores from %s: %s", name, exc)
            return
        for r in sorted(rows, key=lambda r: r["us"]):
            probs = {h: float(r[f"p_{h}"]) for h in HORIZONS}
            self._remember(self._history, r["symbol"], from_us(r["us"]), probs)

    @staticmethod
    def _remember(
        history: dict[str, list[tuple[datetime, dict[str, float]]]],
        symbol: str,
        at: datetime,
        probs: dict[str, float],
    ) -> None:
        kept = [x for x in history.get(symbol, []) if x[0] != at]
        kept.append((at, probs))
        kept.sort(key=lambda x: x[0])
        history[symbol] = kept[-HISTORY_KEPT:]

    @staticmethod
    def _previous(
        history: dict[str, list[tuple[datetime, dict[str, float]]]], symbol: str, at: datetime
    ) -> dict[str, float] | None:
        before = [p for t, p in history.get(symbol, []) if t < at]
        return before[-1] if before else None

    # -- detection ----------------------------------------------------------------------------------
    def process(self, trades: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        patch_apply_in_pandas_with_state()
        if trades.isStreaming:  # only the stream reads the lake for its context
            self._spark = trades.sparkSession
        slim = convertible(trades).select(
            "symbol",
            "exchange",
            "timestamp",  # the watermark's column: the state's event-time timeout needs it
            F.floor(F.unix_micros("timestamp") / 1000).cast("long").alias("ts_ms"),
            F.col("quote_volume").cast("double").alias("qv"),
            F.col("price").cast("string").alias("price_text"),
            F.col("event_id").alias("trade_id"),
            *(c.alias(name) for name, c in whale_columns(trades, self.floor).items()),
        )
        grouped = slim.groupBy("symbol")
        args = (
            self.flow.window_seconds * 1000,
            self.params.window_seconds * 1000,
            volume_kwargs(self.volume),
        )
        if not trades.isStreaming:
            return grouped.applyInPandas(_batch_fn(*args), OUTPUT_SCHEMA)
        from pyspark.sql.streaming.state import GroupStateTimeout

        return grouped.applyInPandasWithState(
            _stream_fn(*args), OUTPUT_SCHEMA, STATE_SCHEMA, "Append", GroupStateTimeout.EventTimeTimeout
        )

    def features_of(self, row: dict[str, Any]) -> tuple[dict[str, float], float | None, str | None]:
        """The window's feature values, its consensus score and direction (MOD-007's for its window)."""
        start, end = from_us(row["window_start_us"]), from_us(row["window_end_us"])
        score = direction = None
        if row["cw_start_us"] is not None:
            buy, sell = Decimal(row["cw_buy"]), Decimal(row["cw_sell"])
            flow = score_flow(
                buy,
                sell,
                int(row["cw_trades"]),
                min_whale_trades=self.flow.min_whale_trades,
                bands=self.flow.bands(),
            )
            scored = consensus_score(
                buy,
                sell,
                flow.signal if flow else None,
                flow.ratio if flow else None,
                row["cw_max_z"],
                z_threshold=self.volume.z_threshold,
                weights=self.consensus.weights_exact(),
            )
            if scored is not None:
                score = float(scored.score)
                direction = {1: "bullish", -1: "bearish", 0: "neutral"}[scored.direction]
        values = feature_vector(
            consensus_score=score,
            alpha_percentile=self.context.wallet_alpha(row["symbol"], end),
            max_abs_z=row["max_abs_z"],
            whale_buy=float(Decimal(row["whale_buy"])),
            whale_sell=float(Decimal(row["whale_sell"])),
            hit_rate=self.context.hit_rate(row["symbol"], start, end),
        )
        return values, score, direction

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        if not rows:
            return result
        if self._spark is not None:  # the stream: previous scores once, the lake context now and then
            if not self._seeded:
                self._seed_previous(self._spark)
            since = from_us(min(r["window_start_us"] for r in rows)) - self.context.lookback
            self.context.refresh(self._spark, self.config, since)
        high_type, update_type = self.alert_types()
        history = copy.deepcopy(self._history)  # committed only when the whole batch succeeded
        for row in sorted((_plain(r) for r in rows), key=lambda r: (r["window_end_us"], r["symbol"])):
            symbol = row["symbol"]
            start, end = from_us(row["window_start_us"]), from_us(row["window_end_us"])
            values, score, direction = self.features_of(row)
            probs = {h: round(p, 6) for h, p in self.coefficients.probabilities(values).items()}
            previous = self._previous(history, symbol, end)
            decision = decide(
                probs, previous, threshold=self.params.high_probability, change=self.params.change
            )
            self._remember(history, symbol, end, probs)
            buy, sell = Decimal(row["whale_buy"]), Decimal(row["whale_sell"])
            price = Decimal(row["close_price"])
            price = trim(price) or price  # decimal(38,18) as text pads 18 zeros
            shown = {f: round(values[f], 6) for f in FEATURES}
            result.records.append(
                {
                    "symbol": symbol,
                    "scored_at": end,
                    "window_start": start,
                    **{f"p_{h}": probs[h] for h in HORIZONS},
                    "max_p": decision.max_p,
                    "features": json.dumps(shown),
                    "coefficients_version": self.coefficients.version,
                    "price": price,
                    "trade_count": int(row["trades"]),
                    "consensus_score": score,
                    "consensus_direction": direction,
                    "max_volume_z": row["max_abs_z"],
                    "whale_buy_volume": buy,
                    "whale_sell_volume": sell,
                    "flow_ratio": flow_ratio(float(buy), float(sell)),
                    "flagged": decision.high,
                }
            )
            details = self.details(
                model="logistic",
                **{f"p_{h}": probs[h] for h in HORIZONS},
                max_p=decision.max_p,
                horizon=decision.top_horizon,
                move_pct=self.params.move_pct,
                features=shown,
                coefficients_version=self.coefficients.version,
                previous=previous,
                changed=list(decision.changed),
                price=float(price),
                window_start=iso(start),
                window_end=iso(end),
            )
            ps = " / ".join(f"{probs[h]:.0%}" for h in HORIZONS)
            if decision.high:
                result.alerts.append(
                    Alert.create(
                        module_id=self.module_id,
                        alert_type=high_type,
                        symbol=symbol,
                        exchange=None,
                        severity="high",
                        detected_at=end,
                        message=f"{symbol}: {decision.max_p:.0%} chance of a move over "
                        f"{self.params.move_pct:g} % within {decision.top_horizon} (1h / 2h / 4h: {ps})",
                        details=details,
                        evidence=(symbol, start),
                        ttl=self.alert_ttl(),
                    )
                )
            if decision.changed and previous is not None:
                h = max(decision.changed, key=lambda k: abs(probs[k] - previous[k]))
                result.alerts.append(
                    Alert.create(
                        module_id=self.module_id,
                        alert_type=update_type,
                        symbol=symbol,
                        exchange=None,
                        severity="low",
                        detected_at=end,
                        message=f"{symbol}: move probability within {h} went from {previous[h]:.0%} to "
                        f"{probs[h]:.0%} (1h / 2h / 4h now: {ps})",
                        details=details,
                        # Its own evidence: a window can raise both alerts, and ids are per evidence.
                        evidence=(symbol, start, update_type),
                        ttl=self.alert_ttl(),
                    )
                )
        self._history = history
        return result

    def finish_guarded(self, rows: list[dict[str, Any]]) -> tuple[DetectorResult, list[Rejected]]:
        # The single-row retries of the base class must not leave their scores as "previous" ones.
        saved = copy.deepcopy(self._history)
        try:
            return super().finish_guarded(rows)
        except Exception:
            self._history = saved
            raise

    def _finish_error(self, row: dict[str, Any]) -> Exception | None:
        saved = copy.deepcopy(self._history)
        try:
            return super()._finish_error(row)
        finally:
            self._history = saved


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """An output row with NaN (pandas' missing float) as None."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _trades(pdf: pd.DataFrame) -> list[PriceTrade]:
    return [
        PriceTrade(int(ts), ex, float(qv), str(p), str(eid))
        for ts, ex, qv, p, eid in zip(
            pdf["ts_ms"].astype("int64").tolist(),
            pdf["exchange"].tolist(),
            pdf["qv"].astype(float).tolist(),
            pdf["price_text"].tolist(),
            pdf["trade_id"].tolist(),
            strict=True,
        )
    ]


def _row(symbol: str, w: EvaluationWindow) -> tuple[Any, ...]:
    s = w.slot
    c = s.consensus
    return (
        symbol,
        w.start_ms * 1000,
        w.end_ms * 1000,
        s.trades,
        s.close[2] if s.close else None,
        s.max_abs_z,
        format(s.whale_buy, "f"),
        format(s.whale_sell, "f"),
        s.whale_trades,
        None if c is None else c[0] * 1000,
        None if c is None else format(c[1], "f"),
        None if c is None else format(c[2], "f"),
        None if c is None else c[3],
        None if c is None else c[4],
    )


def _frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    import pandas as pd

    columns = [c.split()[0] for c in OUTPUT_SCHEMA.split(", ")]
    frame = pd.DataFrame(rows, columns=columns)
    for name in ("cw_start_us", "cw_trades"):  # nullable integers: not floats with NaN
        frame[name] = frame[name].astype("Int64")
    return frame


def _batch_fn(flow_ms: int, eval_ms: int, volume: dict[str, Any]) -> Any:
    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        state = PredictorState()
        closed = advance_evaluation(
            state, _trades(pdf), flow_trades(pdf), None, flow_ms=flow_ms, eval_ms=eval_ms, volume=volume
        )
        return _frame([_row(key[0], w) for w in closed if w.slot.close is not None])

    return run


def _stream_fn(flow_ms: int, eval_ms: int, volume: dict[str, Any]) -> Any:
    volume_ms = volume["window_ms"]

    def run(key: tuple[Any, ...], pdfs: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        current = PredictorState.from_json(json.loads(state.get[0])) if state.exists else PredictorState()
        trades: list[PriceTrade] = []
        whales: list[Any] = []
        if not state.hasTimedOut:
            for pdf in pdfs:
                trades += _trades(pdf)
                whales += flow_trades(pdf)
        watermark = state.getCurrentWatermarkMs()
        closed = advance_evaluation(
            current, trades, whales, watermark, flow_ms=flow_ms, eval_ms=eval_ms, volume=volume
        )
        state.update((json.dumps(current.to_json()),))
        wake = current.wake_ms(flow_ms=flow_ms, eval_ms=eval_ms, volume_ms=volume_ms)
        if wake is not None:
            state.setTimeoutTimestamp(wake)
        yield _frame([_row(key[0], w) for w in closed if w.slot.close is not None])

    return run
