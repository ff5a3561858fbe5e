"""MOD-003 spread: per-window VWAP per instrument, compared across exchanges through `equivalences`.

The VWAP is a plain Spark window aggregation (append mode, so both sides of a pair close in the same
micro-batch); pairing and the spread itself are :func:`jobs.logic.spreads_for_window`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from coattail.contracts import Alert
from coattail.panels import Figure, SymbolPanel, WindowPoint
from coattail.settings import Settings
from coattail.settings.modules import ModuleParams, SeverityBands
from jobs.detectors.common import from_us, iso
from jobs.framework.detector import BaseDetector, DetectorResult, convertible
from jobs.logic import band_severity, spread_pairs, spreads_for_window, vwap

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class SpreadParams(ModuleParams):
    window_seconds: int = Field(30, gt=0, le=3600)
    watermark_seconds: int = Field(15, ge=0, le=3600)
    threshold_pct: float = Field(0.5, gt=0, lt=100)
    severity_bands: SeverityBands


class SpreadRow(BaseModel):
    """One row of ``exchange_spreads``: one pair of comparable instruments in one window."""

    symbol: str
    pair_group: str
    instrument_a: str
    instrument_b: str
    window_start: datetime
    window_end: datetime
    a_vwap: float
    b_vwap: float
    spread_pct: float
    flagged: bool
    severity: str | None


class SpreadDivergenceDetails(BaseModel):
    spread_pct: float
    exchange_a_vwap: float
    exchange_b_vwap: float
    instrument_a: str
    instrument_b: str
    window_start: str
    window_end: str


class SpreadDetector(BaseDetector):
    module_id = "MOD-003"
    module_name = "spread-calculator"
    stateful = True
    panel = SymbolPanel(
        title="spread",
        figures=(Figure("Spread", "spread_pct", "%"),),
        series=("price <exchange>", "spread <a> vs <b>"),
    )
    params_model = SpreadParams
    row_model = SpreadRow
    details_model = SpreadDivergenceDetails

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, SpreadParams)
        self.pairs = spread_pairs(settings.equivalences)

    def watermark_seconds(self) -> int:
        return self.params.watermark_seconds

    def partitioning(self) -> str:
        return "days(window_start), symbol"

    def record_keys(self) -> tuple[str, ...]:
        return ("instrument_a", "instrument_b", "window_start")

    def window_points(self, record: dict[str, Any]) -> list[WindowPoint]:
        """Both instruments' VWAP (their price charts) and the pair's spread, on both symbols' panels."""
        start, flagged, severity = record["window_start"], bool(record["flagged"]), record["severity"]
        (ex_a, sym_a), (ex_b, sym_b) = (
            i.split(":", 1) for i in (record["instrument_a"], record["instrument_b"])
        )
        spread = f"spread {record['instrument_a']} vs {record['instrument_b']} %"
        return [
            WindowPoint(self.module_id, sym_a, f"price {ex_a}", start, float(record["a_vwap"])),
            WindowPoint(self.module_id, sym_b, f"price {ex_b}", start, float(record["b_vwap"])),
            *(
                WindowPoint(
                    self.module_id, sym, spread, start, float(record["spread_pct"]), flagged, severity
                )
                for sym in dict.fromkeys((sym_a, sym_b))
            ),
        ]

    def process(self, trades: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        members = sorted({m for p in self.pairs for m in (p.a, p.b)})
        price, qty = F.col("price").cast("double"), F.col("quantity").cast("double")
        return (
            convertible(trades)
            .where(F.concat_ws(":", "exchange", "symbol").isin(members))
            .groupBy(F.window("timestamp", f"{self.params.window_seconds} seconds"), "exchange", "symbol")
            .agg(F.sum(price * qty).alias("notional"), F.sum(qty).alias("qty"), F.count("*").alias("trades"))
            .select(
                "exchange",
                "symbol",
                "notional",
                "qty",
                "trades",
                F.unix_micros(F.col("window.start")).alias("window_start_us"),
                F.unix_micros(F.col("window.end")).alias("window_end_us"),
            )
        )

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        alert_type = self.alert_types()[0]
        floor = self.params.severity_bands[0].severity
        windows: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
        for row in rows:
            price = vwap(row["notional"], row["qty"])
            if price is not None:
                windows[(row["window_start_us"], row["window_end_us"])][
                    f"{row['exchange']}:{row['symbol']}"
                ] = price
        for (start_us, end_us), vwaps in sorted(windows.items()):
            start, end = from_us(start_us), from_us(end_us)
            for s in spreads_for_window(vwaps, self.pairs, self.params.threshold_pct):
                symbol = s.pair.a.split(":", 1)[1]
                severity = (
                    band_severity(self.params.severity_bands, abs(s.spread_pct), floor) if s.flagged else None
                )
                result.records.append(
                    {
                        "symbol": symbol,
                        "pair_group": s.pair.group,
                        "instrument_a": s.pair.a,
                        "instrument_b": s.pair.b,
                        "window_start": start,
                        "window_end": end,
                        "a_vwap": s.a_vwap,
                        "b_vwap": s.b_vwap,
                        "spread_pct": s.spread_pct,
                        "flagged": s.flagged,
                        "severity": severity,
                    }
                )
                if severity is None:
                    continue
                result.alerts.append(
                    Alert.create(
                        module_id=self.module_id,
                        alert_type=alert_type,
                        symbol=symbol,
                        exchange=None,
                        severity=severity,
                        detected_at=end,
                        message=f"{s.pair.a} trades {s.spread_pct:+.2f}% against {s.pair.b} "
                        f"({self.params.window_seconds}s VWAP)",
                        details=self.details(
                            spread_pct=round(s.spread_pct, 6),
                            exchange_a_vwap=s.a_vwap,
                            exchange_b_vwap=s.b_vwap,
                            instrument_a=s.pair.a,
                            instrument_b=s.pair.b,
                            window_start=iso(start),
                            window_end=iso(end),
                        ),
                        evidence=(s.pair.a, s.pair.b, start),
                        ttl=self.alert_ttl(),
                    )
                )
        return result
