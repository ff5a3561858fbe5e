"""MOD-007 consensus: a 0–100 score per symbol and 5 min window from volume spikes, whale trades and
whale flow (DESIGN.md "Detector semantics").

Topology: consensus needs, for the same window, MOD-001's spikes, MOD-002's whale trades and MOD-006's
signal. Rather than chaining queries through an extra topic (a second sink to make idempotent, and a
second watermark delay), its one stateful operator per symbol runs those modules' own pure functions
on the trades: :func:`jobs.logic.advance_consensus` advances MOD-001's per-exchange baseline and the
whale-flow windows in the query's checkpointed state, and scores a window the moment it closes under
the watermark — the same micro-batch in which MOD-006 closes it, so no delay beyond the window itself.
A restart resumes from that state (exactly once, like every stateful detector), and the contributing
alert ids are the other modules' deterministic ids for the same evidence.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, model_validator

from coattail.contracts import Alert, alert_id
from coattail.panels import Figure, SymbolPanel, WindowPoint
from coattail.settings import ConfigError, Settings
from coattail.settings.modules import ModuleParams, SeverityBands
from jobs.compat import patch_apply_in_pandas_with_state
from jobs.detectors.common import from_us, iso
from jobs.detectors.flow import FlowDirectionParams, flow_trades, whale_columns, whale_threshold
from jobs.detectors.volume import VolumeAnomalyParams, volume_kwargs
from jobs.framework.detector import BaseDetector, DetectorResult, convertible
from jobs.logic import (
    ConsensusState,
    ConsensusWeights,
    ConsensusWindow,
    advance_consensus,
    consensus_score,
    exact_severity,
    score_flow,
)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

VOLUME_MODULE, WHALE_MODULE, FLOW_MODULE = "MOD-001", "MOD-002", "MOD-006"
OUTPUT_SCHEMA = (
    "symbol string, window_start_us long, window_end_us long, buy_volume string, sell_volume string, "
    "whale_trades long, exchanges string, whale_ids string, spikes string"
)
STATE_SCHEMA = "state string"
MAX_CONTRIBUTING = 100  # alert ids listed in details (a DynamoDB item stays far below 400 KB)
if "pyspark" in sys.modules:  # the Python worker, when it unpickles the state function
    patch_apply_in_pandas_with_state()


class ConsensusParams(ModuleParams):
    # score = 100 × (volume × v + whale × w + flow × f); the weights sum to 1 so the score is 0..100
    weights: dict[str, float] = Field(default_factory=lambda: {"volume": 0.3, "whale": 0.3, "flow": 0.4})
    severity_bands: SeverityBands  # score strictly above -> severity; the first band is the threshold

    @model_validator(mode="after")
    def _weights(self) -> ConsensusParams:
        if set(self.weights) != {"volume", "whale", "flow"}:
            raise ValueError("weights must name exactly volume, whale and flow")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")
        if sum(Decimal(str(w)) for w in self.weights.values()) != 1:
            raise ValueError("weights must sum to 1 (the score is 0..100)")
        return self

    def weights_exact(self) -> ConsensusWeights:
        return ConsensusWeights(**{k: Decimal(str(v)) for k, v in self.weights.items()})


class ConsensusRow(BaseModel):
    """One row of ``consensus_signals``: a scored window (it had whale trades) of one symbol."""

    symbol: str
    window_start: datetime
    window_end: datetime
    direction: str  # bullish | bearish | neutral
    consensus_score: float
    volume_signal: float
    whale_signal: float
    flow_signal: float
    max_volume_z: float | None
    whale_trades: int
    buy_volume: Decimal
    sell_volume: Decimal
    flagged: bool
    severity: str | None


class ConsensusDetails(BaseModel):
    consensus_score: float
    volume_signal: float
    whale_signal: float
    flow_signal: float
    contributing_alerts: list[str]
    direction: str
    max_volume_z: float | None
    whale_trades: int
    buy_volume: float
    sell_volume: float
    window_start: str
    window_end: str


class ConsensusDetector(BaseDetector):
    module_id = "MOD-007"
    module_name = "consensus"
    stateful = True
    panel = SymbolPanel(
        title="consensus",
        figures=(Figure("Consensus score", "consensus_score"), Figure("Direction", "direction")),
        series=("consensus score",),
    )
    params_model = ConsensusParams
    row_model = ConsensusRow
    details_model = ConsensusDetails

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, ConsensusParams)
        for needed in (VOLUME_MODULE, FLOW_MODULE):
            if needed not in settings.modules:
                raise ConfigError(f"{self.module_id} needs {needed} configured in `modules`")
        self.volume = settings.module_params(VOLUME_MODULE, VolumeAnomalyParams)
        self.flow = settings.module_params(FLOW_MODULE, FlowDirectionParams)
        self.floor = whale_threshold(settings)
        if self.flow.window_seconds % self.volume.window_seconds:
            raise ConfigError(
                f"{FLOW_MODULE} window_seconds ({self.flow.window_seconds}) must be a multiple of "
                f"{VOLUME_MODULE} window_seconds ({self.volume.window_seconds}): consensus windows hold "
                "whole volume windows"
            )

    def watermark_seconds(self) -> int:
        # The later of the two: a consensus window closes when both its flow and its volume windows do.
        return max(self.flow.watermark_seconds, self.volume.watermark_seconds)

    def partitioning(self) -> str:
        return "days(window_start), symbol"

    def record_keys(self) -> tuple[str, ...]:
        return ("symbol", "window_start")

    def window_points(self, record: dict[str, Any]) -> list[WindowPoint]:
        return [
            WindowPoint(
                self.module_id,
                record["symbol"],
                "consensus score",
                record["window_start"],
                float(record["consensus_score"]),
                bool(record["flagged"]),
                record["severity"],
            )
        ]

    def process(self, trades: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        patch_apply_in_pandas_with_state()
        slim = convertible(trades).select(
            "symbol",
            "exchange",
            "timestamp",
            F.floor(F.unix_micros("timestamp") / 1000).cast("long").alias("ts_ms"),
            F.col("quote_volume").cast("double").alias("qv"),  # MOD-001 sums doubles, so do we
            *(c.alias(name) for name, c in whale_columns(trades, self.floor).items()),
        )
        grouped = slim.groupBy("symbol")
        args = (self.flow.window_seconds * 1000, volume_kwargs(self.volume))
        if not trades.isStreaming:
            return grouped.applyInPandas(_batch_fn(*args), OUTPUT_SCHEMA)
        from pyspark.sql.streaming.state import GroupStateTimeout

        return grouped.applyInPandasWithState(
            _stream_fn(*args), OUTPUT_SCHEMA, STATE_SCHEMA, "Append", GroupStateTimeout.EventTimeTimeout
        )

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        bullish, bearish = self.alert_types()
        for row in sorted(rows, key=lambda r: (r["window_start_us"], r["symbol"])):
            buy, sell = Decimal(row["buy_volume"]), Decimal(row["sell_volume"])
            flow = score_flow(
                buy, sell, int(row["whale_trades"]), min_whale_trades=self.flow.min_whale_trades,
                bands=self.flow.bands(),
            )  # fmt: skip
            spikes = [(str(ex), int(ms), float(z)) for ex, ms, z in json.loads(row["spikes"])]
            max_z = max((abs(z) for _, _, z in spikes), default=None)
            score = consensus_score(
                buy,
                sell,
                flow.signal if flow else None,
                flow.ratio if flow else None,
                max_z,
                z_threshold=self.volume.z_threshold,
                weights=self.params.weights_exact(),
            )
            if score is None:
                continue
            severity = exact_severity(self.params.severity_bands, score.score)
            flagged = severity is not None and score.direction != 0
            direction = {1: "bullish", -1: "bearish", 0: "neutral"}[score.direction]
            start, end = from_us(row["window_start_us"]), from_us(row["window_end_us"])
            result.records.append(
                {
                    "symbol": row["symbol"],
                    "window_start": start,
                    "window_end": end,
                    "direction": direction,
                    "consensus_score": float(score.score),
                    "volume_signal": float(score.volume_signal),
                    "whale_signal": float(score.whale_signal),
                    "flow_signal": float(score.flow_signal),
                    "max_volume_z": max_z,
                    "whale_trades": int(row["whale_trades"]),
                    "buy_volume": buy,
                    "sell_volume": sell,
                    "flagged": flagged,
                    "severity": severity if flagged else None,
                }
            )
            if not flagged or severity is None:
                continue
            contributing = self._contributing(row, start, spikes, score.flow_signal > 0)
            result.alerts.append(
                Alert.create(
                    module_id=self.module_id,
                    alert_type=bullish if score.direction > 0 else bearish,
                    symbol=row["symbol"],
                    exchange=None,
                    severity=severity,
                    detected_at=end,
                    message=f"Consensus {direction} on {row['symbol']}: score {score.score:.0f}/100 "
                    f"(volume {score.volume_signal:.2f}, whales {score.whale_signal:.2f}, "
                    f"flow {score.flow_signal:.2f})",
                    details=self.details(
                        consensus_score=round(float(score.score), 4),
                        volume_signal=round(float(score.volume_signal), 6),
                        whale_signal=round(float(score.whale_signal), 6),
                        flow_signal=round(float(score.flow_signal), 6),
                        contributing_alerts=contributing,
                        direction=direction,
                        max_volume_z=max_z,
                        whale_trades=int(row["whale_trades"]),
                        buy_volume=float(buy),
                        sell_volume=float(sell),
                        window_start=iso(start),
                        window_end=iso(end),
                    ),
                    evidence=(row["symbol"], start),
                    ttl=self.alert_ttl(),
                )
            )
        return result

    def _contributing(
        self, row: dict[str, Any], start: datetime, spikes: list[tuple[str, int, float]], flow: bool
    ) -> list[str]:
        """The other modules' alert ids behind this score (their deterministic ids for this evidence)."""
        symbol = row["symbol"]
        ids = [alert_id(VOLUME_MODULE, symbol, ex, from_us(ms * 1000)) for ex, ms, _ in sorted(spikes)]
        ids += [alert_id(WHALE_MODULE, eid) for eid in json.loads(row["whale_ids"])]
        if flow:
            ids.append(alert_id(FLOW_MODULE, symbol, start))
        return ids[:MAX_CONTRIBUTING]


def _split(pdf: pd.DataFrame) -> tuple[list[tuple[int, str, float]], Any]:
    trades = list(
        zip(pdf["ts_ms"].astype("int64").tolist(), pdf["exchange"].tolist(), pdf["qv"].astype(float).tolist(),
            strict=True)
    )  # fmt: skip
    return trades, flow_trades(pdf)


def _row(symbol: str, w: ConsensusWindow) -> tuple[Any, ...]:
    f = w.flow
    return (
        symbol,
        f.window_start_ms * 1000,
        f.window_end_ms * 1000,
        format(f.buy, "f"),
        format(f.sell, "f"),
        len(f.trades),
        ",".join(f.exchanges),
        json.dumps([t.event_id for t in f.trades]),
        json.dumps([[s.exchange, s.window_start_ms, s.z] for s in w.spikes]),
    )


def _frame(rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows, columns=[c.split()[0] for c in OUTPUT_SCHEMA.split(", ")])


def _batch_fn(window_ms: int, volume: dict[str, Any]) -> Any:
    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        trades, whales = _split(pdf)
        closed = advance_consensus(ConsensusState(), trades, whales, None, window_ms=window_ms, volume=volume)
        return _frame([_row(key[0], w) for w in closed])

    return run


def _stream_fn(window_ms: int, volume: dict[str, Any]) -> Any:
    volume_ms = volume["window_ms"]

    def run(key: tuple[Any, ...], pdfs: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        current = ConsensusState.from_json(json.loads(state.get[0])) if state.exists else ConsensusState()
        trades: list[tuple[int, str, float]] = []
        whales: list[Any] = []
        if not state.hasTimedOut:
            for pdf in pdfs:
                t, w = _split(pdf)
                trades += t
                whales += w
        watermark = state.getCurrentWatermarkMs()
        closed = advance_consensus(current, trades, whales, watermark, window_ms=window_ms, volume=volume)
        state.update((json.dumps(current.to_json()),))
        wake = [min(current.flow.open) + window_ms] if current.flow.open else []
        wake += [min(v.open) + volume_ms for v in current.volume.values() if v.open]
        if wake:  # the earliest open window (flow or volume) closes when the watermark passes its end
            state.setTimeoutTimestamp(min(wake))
        yield _frame([_row(key[0], w) for w in closed])

    return run
