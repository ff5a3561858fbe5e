"""MOD-001 volume anomaly: 60 s windows per (symbol, exchange) scored against the key's last hour.

Windowing and the rolling baseline live in one stateful operator (``applyInPandasWithState`` with an
event-time timeout): Spark refuses a stateful operator after a window aggregation in append mode, and
keeping both in :func:`jobs.logic.advance_volume` means batch mode (``applyInPandas``, all at once)
runs exactly the same code. The per-key state is small: open windows plus ≤ 60 window volumes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from coattail.contracts import Alert
from coattail.panels import Figure, SymbolPanel, WindowPoint
from coattail.settings import Settings
from coattail.settings.modules import ModuleParams, SeverityBands
from jobs.compat import patch_apply_in_pandas_with_state
from jobs.detectors.common import from_us, iso, money
from jobs.framework.detector import BaseDetector, DetectorResult, convertible
from jobs.logic import ClosedWindow, VolumeState, advance_volume, band_severity, early_spikes

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

OUTPUT_SCHEMA = (
    "symbol string, exchange string, window_start_us long, window_end_us long, window_volume double, "
    "trade_count long, rolling_mean double, rolling_stddev double, z_score double, history_windows int, "
    "flagged boolean, early boolean, early_warned boolean"
)
STATE_SCHEMA = "state string"
if "pyspark" in sys.modules:  # the Python worker, when it unpickles _stream_fn; never the API's import
    patch_apply_in_pandas_with_state()


class VolumeAnomalyParams(ModuleParams):
    window_seconds: int = Field(60, gt=0, le=3600)
    watermark_seconds: int = Field(30, ge=0, le=3600)
    baseline_minutes: int = Field(60, gt=0, le=24 * 60)
    min_history_minutes: int = Field(10, ge=0, le=24 * 60)
    z_threshold: float = Field(2.5, gt=0)
    severity_bands: SeverityBands
    # While a window is open, alert as soon as its running volume already makes z exceed the threshold
    # (same alert id as the closed window's; the closed window's alert then replaces it).
    early_warning: bool = True


def volume_kwargs(p: VolumeAnomalyParams) -> dict[str, Any]:
    """:func:`jobs.logic.advance_volume`'s keyword arguments from the params (MOD-007 reuses them)."""
    window_ms = p.window_seconds * 1000
    return {
        "window_ms": window_ms,
        "baseline_windows": max(1, p.baseline_minutes * 60_000 // window_ms),
        "min_history": p.min_history_minutes * 60_000 // window_ms,
        "threshold": p.z_threshold,
    }


class VolumeWindowRow(BaseModel):
    """One row of ``volume_aggregates``: a closed window of one (symbol, exchange), flagged or not."""

    symbol: str
    exchange: str
    window_start: datetime
    window_end: datetime
    window_volume: float
    trade_count: int
    rolling_mean: float | None
    rolling_stddev: float | None
    z_score: float | None
    history_windows: int
    flagged: bool
    severity: str | None


class VolumeSpikeDetails(BaseModel):
    z_score: float
    window_volume: float
    rolling_mean: float | None
    rolling_stddev: float | None
    window_start: str
    window_end: str
    history_windows: int
    early: bool = False  # True: the window was still open (provisional volume and z)


class VolumeAnomalyDetector(BaseDetector):
    module_id = "MOD-001"
    module_name = "volume-anomaly"
    stateful = True
    panel = SymbolPanel(
        title="volume",
        figures=(Figure("Volume window", "window_volume"), Figure("Volume z", "z_score")),
        series=("volume <exchange>",),
    )
    params_model = VolumeAnomalyParams
    row_model = VolumeWindowRow
    details_model = VolumeSpikeDetails

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, VolumeAnomalyParams)

    def watermark_seconds(self) -> int:
        return self.params.watermark_seconds

    def partitioning(self) -> str:
        return "days(window_start), symbol"

    def record_keys(self) -> tuple[str, ...]:
        return ("symbol", "exchange", "window_start")

    def window_points(self, record: dict[str, Any]) -> list[WindowPoint]:
        return [
            WindowPoint(
                self.module_id,
                record["symbol"],
                f"volume {record['exchange']}",
                record["window_start"],
                float(record["window_volume"]),
                bool(record["flagged"]),
                record["severity"],
            )
        ]

    def process(self, trades: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        patch_apply_in_pandas_with_state()
        slim = convertible(trades).select(  # the timestamp column goes through Arrow to pandas
            "symbol",
            "exchange",
            "timestamp",
            F.floor(F.unix_micros("timestamp") / 1000).cast("long").alias("ts_ms"),
            F.col("quote_volume").cast("double").alias("qv"),
        )
        grouped = slim.groupBy("symbol", "exchange")
        kwargs = volume_kwargs(self.params)
        if not trades.isStreaming:
            return grouped.applyInPandas(_batch_fn(kwargs), OUTPUT_SCHEMA)
        from pyspark.sql.streaming.state import GroupStateTimeout

        return grouped.applyInPandasWithState(
            _stream_fn(kwargs, self.params.early_warning),
            OUTPUT_SCHEMA,
            STATE_SCHEMA,
            "Append",
            GroupStateTimeout.EventTimeTimeout,
        )

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        floor = self.params.severity_bands[0].severity
        for row in sorted(rows, key=lambda r: (r["window_start_us"], r["symbol"], r["exchange"], r["early"])):
            start, end = from_us(row["window_start_us"]), from_us(row["window_end_us"])
            z = row["z_score"]
            flagged = bool(row["flagged"]) and z is not None
            severity = band_severity(self.params.severity_bands, abs(z), floor) if flagged else None
            if row["early"]:  # provisional: hot store only, replaced by the closed window's alert
                if severity is not None and z is not None:
                    result.early.append(self._alert(row, start, end, z, severity, early=True))
                continue
            result.records.append(
                {
                    "symbol": row["symbol"],
                    "exchange": row["exchange"],
                    "window_start": start,
                    "window_end": end,
                    "window_volume": row["window_volume"],
                    "trade_count": row["trade_count"],
                    "rolling_mean": row["rolling_mean"],
                    "rolling_stddev": row["rolling_stddev"],
                    "z_score": z,
                    "history_windows": row["history_windows"],
                    "flagged": flagged,
                    "severity": severity,
                }
            )
            if severity is not None and z is not None:
                result.alerts.append(self._alert(row, start, end, z, severity))
            elif row["early_warned"]:  # warned while open, not confirmed at close: take it back
                result.retracted.append(self._alert(row, start, end, z or 0.0, floor, early=True))
        return result

    def _alert(
        self,
        row: dict[str, Any],
        start: datetime,
        end: datetime,
        z: float,
        severity: Any,
        *,
        early: bool = False,
    ) -> Alert:
        direction = "spike" if z > 0 else "drop"
        building = " building" if early else ""
        return Alert.create(
            module_id=self.module_id,
            alert_type=self.alert_types()[0],
            symbol=row["symbol"],
            exchange=row["exchange"],
            severity=severity,
            detected_at=end,  # the window's end, early or not: one item, replaced at close
            message=f"Volume {direction}{building} on {row['exchange']} {row['symbol']}: "
            f"{money(row['window_volume'])} in {self.params.window_seconds}s (z={z:.2f})",
            details=self.details(
                z_score=round(z, 6),
                window_volume=row["window_volume"],
                rolling_mean=row["rolling_mean"],
                rolling_stddev=row["rolling_stddev"],
                window_start=iso(start),
                window_end=iso(end),
                history_windows=row["history_windows"],
                early=early,
            ),
            evidence=(row["symbol"], row["exchange"], start),
            ttl=self.alert_ttl(),
        )


def _rows(
    key: tuple[Any, ...],
    closed: list[ClosedWindow],
    early_windows: list[ClosedWindow] = (),  # type: ignore[assignment]
) -> pd.DataFrame:
    import pandas as pd

    columns = [c.split()[0] for c in OUTPUT_SCHEMA.split(", ")]
    return pd.DataFrame(
        [
            (
                key[0],
                key[1],
                w.window_start_ms * 1000,
                w.window_end_ms * 1000,
                w.volume,
                w.trades,
                w.score.mean,
                w.score.stddev,
                w.score.z,
                w.score.history_windows,
                w.score.flagged,
                early,
                w.early_warned,
            )
            for w, early in [*((w, False) for w in closed), *((w, True) for w in early_windows)]
        ],
        columns=columns,
    )


def _trades(pdfs: Iterator[pd.DataFrame]) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    for pdf in pdfs:
        pdf = pdf.sort_values("ts_ms", kind="stable")
        out += list(zip(pdf["ts_ms"].astype("int64").tolist(), pdf["qv"].astype(float).tolist(), strict=True))
    return out


def _batch_fn(kwargs: dict[str, Any]) -> Any:
    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        closed, _ = advance_volume(VolumeState(), _trades(iter([pdf])), None, **kwargs)
        return _rows(key, closed)

    return run


def _stream_fn(kwargs: dict[str, Any], early_warning: bool) -> Any:
    window_ms = kwargs["window_ms"]

    def run(key: tuple[Any, ...], pdfs: Iterator[pd.DataFrame], state: Any) -> Iterator[pd.DataFrame]:
        current = VolumeState.from_json(json.loads(state.get[0])) if state.exists else VolumeState()
        trades = [] if state.hasTimedOut else _trades(pdfs)
        closed, _late = advance_volume(current, trades, state.getCurrentWatermarkMs(), **kwargs)
        early = early_spikes(current, **kwargs) if early_warning and trades else []
        state.update((json.dumps(current.to_json()),))
        if current.open:  # wake up when the watermark passes the oldest open window's end
            state.setTimeoutTimestamp(min(current.open) + window_ms)
        yield _rows(key, closed, early)

    return run
