"""MOD-002 whale: every trade whose quote volume is strictly above the lowest severity band."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from coattail.contracts import Alert
from coattail.settings import Settings
from coattail.settings.modules import WhaleParams
from jobs.detectors.common import from_us, money
from jobs.framework.detector import BaseDetector, DetectorResult
from jobs.logic import whale_severity

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class WhaleDetector(BaseDetector):
    module_id = "MOD-002"
    module_name = "whale"
    stateful = False

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.params = settings.module_params(self.module_id, WhaleParams)

    def table_columns(self) -> str:
        return (
            "event_id string, alert_id string, exchange string, symbol string, price decimal(38,18), "
            "quantity decimal(38,18), quote_volume decimal(38,18), side string, timestamp timestamp, "
            "detected_at timestamp, severity string"
        )

    def partitioning(self) -> str:
        return "days(detected_at), symbol"

    def record_keys(self) -> tuple[str, ...]:
        return ("event_id",)

    def process(self, trades: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        # Exact decimal filter in Spark; the band (and so the final say) is decided in finish().
        floor = Decimal(str(self.params.severity_bands[0].above))
        return trades.where(F.col("quote_volume") > F.lit(floor)).select(
            "event_id",
            "exchange",
            "symbol",
            "side",
            F.col("price").cast("string").alias("price"),
            F.col("quantity").cast("string").alias("quantity"),
            F.col("quote_volume").cast("string").alias("quote_volume"),
            F.unix_micros("timestamp").alias("ts_us"),
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
                details={
                    "quote_volume": float(quote_volume),
                    "price": float(price),
                    "quantity": float(quantity),
                    "side": row["side"],
                    "event_id": row["event_id"],
                },
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
