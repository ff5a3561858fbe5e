"""MOD-002 whale: every trade whose quote volume is strictly above the lowest severity band."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from coattail.contracts import Alert
from coattail.panels import Figure, SymbolPanel
from coattail.settings import Settings
from coattail.settings.modules import ModuleParams, SeverityBands
from jobs.detectors.common import from_us, money
from jobs.framework.detector import BaseDetector, DetectorResult, convertible
from jobs.logic import whale_severity

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class WhaleParams(ModuleParams):
    severity_bands: SeverityBands


class WhaleTradeRow(BaseModel):
    """One row of ``whale_trades``: a trade above the lowest band, with the alert it raised."""

    event_id: str
    alert_id: str
    exchange: str
    symbol: str
    price: Decimal
    quantity: Decimal
    quote_volume: Decimal
    side: str
    timestamp: datetime
    detected_at: datetime
    severity: str


class WhaleTradeDetails(BaseModel):
    quote_volume: float
    price: float
    quantity: float
    side: str | None
    event_id: str


class WhaleDetector(BaseDetector):
    module_id = "MOD-002"
    module_name = "whale-detector"
    stateful = False
    panel = SymbolPanel(
        title="whales", figures=(Figure("Last whale", "quote_volume"), Figure("Whale side", "side"))
    )
    params_model = WhaleParams
    row_model = WhaleTradeRow
    details_model = WhaleTradeDetails

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, WhaleParams)

    def partitioning(self) -> str:
        return "days(detected_at), symbol"

    def record_keys(self) -> tuple[str, ...]:
        return ("event_id",)

    def process(self, trades: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        # Exact decimal filter in Spark; the band (and so the final say) is decided in finish().
        floor = Decimal(str(self.params.severity_bands[0].above))
        return (
            convertible(trades)
            .where(F.col("quote_volume") > F.lit(floor))
            .select(
                "event_id",
                "exchange",
                "symbol",
                "side",
                F.col("price").cast("string").alias("price"),
                F.col("quantity").cast("string").alias("quantity"),
                F.col("quote_volume").cast("string").alias("quote_volume"),
                F.unix_micros("timestamp").alias("ts_us"),
            )
        )

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        alert_type = self.alert_types()[0]
        for row in sorted(rows, key=lambda r: (r["ts_us"], r["event_id"])):
            quote_volume = Decimal(row["quote_volume"])
            severity = whale_severity(self.params.severity_bands, quote_volume)
            if severity is None:
                continue
            at = from_us(row["ts_us"])
            price, quantity = Decimal(row["price"]), Decimal(row["quantity"])
            quote = row["symbol"].split("-")[1]
            alert = Alert.create(
                module_id=self.module_id,
                alert_type=alert_type,
                symbol=row["symbol"],
                exchange=row["exchange"],
                severity=severity,
                detected_at=at,
                message=f"Whale {row['side'] or 'trade'} of {money(float(quote_volume))} {quote} "
                f"on {row['exchange']} {row['symbol']}",
                details=self.details(
                    quote_volume=float(quote_volume),
                    price=float(price),
                    quantity=float(quantity),
                    side=row["side"],
                    event_id=row["event_id"],
                ),
                evidence=(row["event_id"],),
                ttl=self.alert_ttl(),
            )
            result.alerts.append(alert)
            result.records.append(
                {
                    "event_id": row["event_id"],
                    "alert_id": alert.alert_id,
                    "exchange": row["exchange"],
                    "symbol": row["symbol"],
                    "price": price,
                    "quantity": quantity,
                    "quote_volume": quote_volume,
                    "side": row["side"],
                    "timestamp": at,
                    "detected_at": alert.detected_at,
                    "severity": severity,
                }
            )
        return result
