"""MOD-006 flow direction: 5 min windows of one symbol's whale-trade flow, accumulation or distribution.

Whale trades are MOD-002's (quote volume strictly above its lowest band), chosen in Spark with exact
decimals; one stateful operator per symbol (``applyInPandasWithState``, event-time timeout) keeps the
open windows and closes them with :func:`jobs.logic.advance_flow` — batch mode (``applyInPandas``)
runs the same function with every window closed. Scoring is :func:`jobs.logic.score_flow`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, model_validator

from coattail.contracts import Alert
from coattail.panels import Figure, SymbolPanel, WindowPoint
from coattail.settings import ConfigError, Settings
from coattail.settings.modules import ModuleParams
from jobs.compat import patch_apply_in_pandas_with_state
from jobs.detectors.common import from_us, iso, money
from jobs.detectors.whale import WhaleParams
from jobs.framework.detector import BaseDetector, DetectorResult, convertible
from jobs.logic import FlowBands, FlowState, FlowWindow, WhaleFlowTrade, advance_flow, score_flow

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

WHALE_MODULE = "MOD-002"  # whose threshold says what a whale trade is
OUTPUT_SCHEMA = (
    "symbol string, window_start_us long, window_end_us long, buy_volume string, sell_volume string, "
    "whale_trades long, exchanges string"
)
STATE_SCHEMA = "state string"
if "pyspark" in sys.modules:  # the Python worker, when it unpickles the state function
    patch_apply_in_pandas_with_state()


class FlowDirectionParams(ModuleParams):
    window_seconds: int = Field(300, gt=0, le=24 * 3600)
    watermark_seconds: int = Field(30, ge=0, le=3600)
    min_whale_trades: int = Field(3, ge=1, description="windows with fewer whale trades are not scored")
    # flow_ratio = buy / (buy + sell) strictly above / below -> signal (and its high band)
    accumulation_ratio: float = Field(0.7, gt=0.5, lt=1)
    accumulation_high_ratio: float = Field(0.85, gt=0.5, lt=1)
    distribution_ratio: float = Field(0.3, gt=0, lt=0.5)
    distribution_high_ratio: float = Field(0.15, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _bands_ordered(self) -> FlowDirectionParams:
        if self.accumulation_high_ratio < self.accumulation_ratio:
            raise ValueError("accumulation_high_ratio must be at least accumulation_ratio")
        if self.distribution_high_ratio > self.distribution_ratio:
            raise ValueError("distribution_high_ratio must be at most distribution_ratio")
        return self

    def bands(self) -> FlowBands:
        return FlowBands(
            *(Decimal(str(v)) for v in (self.accumulation_ratio, self.accumulation_high_ratio)),
            *(Decimal(str(v)) for v in (self.distribution_ratio, self.distribution_high_ratio)),
        )


class FlowDirectionRow(BaseModel):
    """One row of ``flow_direction``: a scored window (≥ min_whale_trades whale trades) of one symbol."""

    symbol: str
    window_start: datetime
    window_end: datetime
    buy_volume: Decimal
    sell_volume: Decimal
    net_flow: Decimal
    flow_ratio: float
    whale_trades: int
    exchanges: str
    signal: str | None  # accumulation | distribution | None
    severity: str | None


class FlowSignalDetails(BaseModel):
    flow_ratio: float
    net_flow: float
    buy_volume: float
    sell_volume: float
    whale_trades: int
    exchanges: list[str]
    window_start: str
    window_end: str


def whale_threshold(settings: Settings) -> Decimal:
    """MOD-002's lowest band: a trade strictly above it is a whale trade (one definition for all)."""
    if WHALE_MODULE not in settings.modules:
        raise ConfigError(f"{WHALE_MODULE} must be configured: it defines what a whale trade is")
    bands = settings.module_params(WHALE_MODULE, WhaleParams).severity_bands
    return Decimal(str(bands[0].above))


def whale_columns(trades: DataFrame, floor: Decimal) -> dict[str, Any]:
    """Columns describing a trade as whale flow: null unless its exact quote volume is above ``floor``."""
    from pyspark.sql import functions as F

    is_whale = F.col("quote_volume") > F.lit(floor)
    return {
        "whale": is_whale,
        "side": F.when(is_whale, F.col("side")),
        "event_id": F.when(is_whale, F.col("event_id")),
        "qv_text": F.when(is_whale, F.col("quote_volume").cast("string")),
    }


def flow_trades(pdf: pd.DataFrame) -> list[WhaleFlowTrade]:
    """The whale rows of a pandas batch (``whale`` true) as pure-logic trades."""
    rows = pdf[pdf["whale"].fillna(False).astype(bool)]
    return [
        WhaleFlowTrade(int(ts), ex, side, Decimal(qv), eid)
        for ts, ex, side, qv, eid in zip(
            rows["ts_ms"], rows["exchange"], rows["side"], rows["qv_text"], rows["event_id"], strict=True
        )
    ]


def window_row(symbol: str, w: FlowWindow) -> tuple[Any, ...]:
    return (
        symbol,
        w.window_start_ms * 1000,
        w.window_end_ms * 1000,
        format(w.buy, "f"),
        format(w.sell, "f"),
        len(w.trades),
        ",".join(w.exchanges),
    )


class FlowDirectionDetector(BaseDetector):
    module_id = "MOD-006"
    module_name = "flow-direction"
    stateful = True
    panel = SymbolPanel(
        title="whale flow",
        figures=(Figure("Flow ratio", "flow_ratio"), Figure("Net whale flow", "net_flow")),
        series=("whale flow ratio",),
    )
    params_model = FlowDirectionParams
    row_model = FlowDirectionRow
    details_model = FlowSignalDetails

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, FlowDirectionParams)
        self.floor = whale_threshold(settings)

    def watermark_seconds(self) -> int:
        return self.params.watermark_seconds

    def partitioning(self) -> str:
        return "days(window_start), symbol"

    def record_keys(self) -> tuple[str, ...]:
        return ("symbol", "window_start")

    def window_points(self, record: dict[str, Any]) -> list[WindowPoint]:
        return [
            WindowPoint(
                self.module_id,
                record["symbol"],
                "whale flow ratio",
                record["window_start"],
                float(record["flow_ratio"]),
                record["signal"] is not None,
                record["severity"],
            )
        ]

    def process(self, trades: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        patch_apply_in_pandas_with_state()
        # Only whale trades reach the operator; the watermark (set upstream) still follows every trade.
        whales = (
            convertible(trades)
            .where(F.col("quote_volume") > F.lit(self.floor))
            .select(
                "symbol",
                "exchange",
                F.floor(F.unix_micros("timestamp") / 1000).cast("long").alias("ts_ms"),
                "timestamp",
                *(c.alias(name) for name, c in whale_columns(trades, self.floor).items()),
            )
        )
        grouped = whales.groupBy("symbol")
        window_ms = self.params.window_seconds * 1000
        if not trades.isStreaming:
            return grouped.applyInPandas(_batch_fn(window_ms), OUTPUT_SCHEMA)
        from pyspark.sql.streaming.state import GroupStateTimeout

        return grouped.applyInPandasWithState(
            _stream_fn(window_ms), OUTPUT_SCHEMA, STATE_SCHEMA, "Append", GroupStateTimeout.EventTimeTimeout
        )

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        p = self.params
        accumulation, distribution = self.alert_types()
        for row in sorted(rows, key=lambda r: (r["window_start_us"], r["symbol"])):
            score = score_flow(
                Decimal(row["buy_volume"]),
                Decimal(row["sell_volume"]),
                int(row["whale_trades"]),
                min_whale_trades=p.min_whale_trades,
                bands=p.bands(),
            )
            if score is None:
                continue  # too few whale trades: not scored, not written (DESIGN.md)
            start, end = from_us(row["window_start_us"]), from_us(row["window_end_us"])
            exchanges = [e for e in row["exchanges"].split(",") if e]
            result.records.append(
                {
                    "symbol": row["symbol"],
                    "window_start": start,
                    "window_end": end,
                    "buy_volume": score.buy,
                    "sell_volume": score.sell,
                    "net_flow": score.net_flow,
                    "flow_ratio": float(score.ratio),
                    "whale_trades": score.whale_trades,
                    "exchanges": ",".join(exchanges),
                    "signal": score.signal,
                    "severity": score.severity,
                }
            )
            if score.signal is None or score.severity is None:
                continue
            verb = "buying" if score.signal == "accumulation" else "selling"
            total, minutes = money(float(score.buy + score.sell)), p.window_seconds // 60
            result.alerts.append(
                Alert.create(
                    module_id=self.module_id,
                    alert_type=accumulation if score.signal == "accumulation" else distribution,
                    symbol=row["symbol"],
                    exchange=exchanges[0] if len(exchanges) == 1 else None,
                    severity=score.severity,
                    detected_at=end,
                    message=f"Whales {verb} {row['symbol']}: {score.ratio:.0%} of "
                    f"{total} whale volume bought in {minutes} min "
                    f"({score.whale_trades} trades, net {money(float(score.net_flow))})",
                    details=self.details(
                        flow_ratio=round(float(score.ratio), 6),
                        net_flow=float(score.net_flow),
                        buy_volume=float(score.buy),
                        sell_volume=float(score.sell),
                        whale_trades=score.whale_trades,
                        exchanges=exchanges,
                        window_start=iso(start),
                        window_end=iso(end),
                    ),
                    evidence=(row["symbol"], start),
                    ttl=self.alert_ttl(),
                )
            )
        return result


def _frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=[c.split()[0] for c in OUTPUT_SCHEMA.split(", ")])


def _batch_fn(window_ms: int) -> Any:
    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        closed, _ = advance_flow(FlowState(), flow_trades(pdf), None, window_ms=window_ms)
        return _frame([window_row(key[0], w) for w in closed])

    return run


def _stream_fn(window_ms: int) -> Any:
    def run(key: tuple[Any, ...], pdfs: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        current = FlowState.from_json(json.loads(state.get[0])) if state.exists else FlowState()
        whales = [] if state.hasTimedOut else [t for pdf in pdfs for t in flow_trades(pdf)]
        closed, _late = advance_flow(current, whales, state.getCurrentWatermarkMs(), window_ms=window_ms)
        state.update((json.dumps(current.to_json()),))
        if current.open:  # wake when the watermark passes the oldest open window's end
            state.setTimeoutTimestamp(min(current.open) + window_ms)
        yield _frame([window_row(key[0], w) for w in closed])

    return run
