"""A detector that lives outside ``jobs/``: the proof that a module is one package plus a config entry.

It counts trades per (symbol, exchange) in each batch and raises ``busy_symbol`` when a batch holds at
least ``min_trades`` of them. Nothing in jobs/, api/ or the dashboard names it; the tests add its
config entry (``code: tests.extra_module``) to a copy of config/ and it shows up everywhere.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from coattail.contracts import Alert
from coattail.panels import Figure, SymbolPanel, WindowPoint
from jobs.framework.detector import BaseDetector, DetectorResult

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

REPO = Path(__file__).resolve().parents[2]
MODULE_ID = "MOD-099"
CONFIG_ENTRY = {
    "name": "trade-counter",
    "alert_types": ["busy_symbol"],
    "output_table": "trade_counts",
    "code": "tests.extra_module",
    "params": {"min_trades": 3},
}


class TradeCountDetector(BaseDetector):
    module_id = MODULE_ID
    module_name = "trade-counter"
    panel = SymbolPanel(title="trades", figures=(Figure("Trades counted", "trades"),), series=("trades",))

    def table_columns(self) -> str:
        return "symbol string, exchange string, window_start timestamp, trades long"

    def partitioning(self) -> str:
        return "symbol"

    def record_keys(self) -> tuple[str, ...]:
        return ("symbol", "exchange", "window_start")

    def process(self, trades: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        return trades.groupBy("symbol", "exchange").agg(
            F.count("*").alias("trades"), F.unix_micros(F.min("timestamp")).alias("first_us")
        )

    def finish(self, rows: list[dict[str, Any]]) -> DetectorResult:
        result = DetectorResult()
        min_trades = int(self.config.modules[self.module_id].params["min_trades"])
        for row in sorted(rows, key=lambda r: (r["symbol"], r["exchange"])):
            start = datetime.fromtimestamp(row["first_us"] / 1e6, UTC).replace(second=0, microsecond=0)
            result.records.append(
                {
                    "symbol": row["symbol"],
                    "exchange": row["exchange"],
                    "window_start": start,
                    "trades": row["trades"],
                }
            )
            if row["trades"] >= min_trades:
                result.alerts.append(
                    Alert.create(
                        module_id=self.module_id,
                        alert_type=self.alert_types()[0],
                        symbol=row["symbol"],
                        exchange=row["exchange"],
                        severity="low",
                        detected_at=start,
                        message=f"{row['trades']} trades on {row['exchange']} {row['symbol']}",
                        details={"trades": row["trades"], "window_start": start.isoformat()},
                        evidence=(row["symbol"], row["exchange"], start),
                        ttl=self.alert_ttl(),
                    )
                )
        return result

    def window_points(self, record: dict[str, Any]) -> list[WindowPoint]:
        trades = float(record["trades"])
        return [
            WindowPoint(
                self.module_id,
                record["symbol"],
                f"trades {record['exchange']}",
                record["window_start"],
                trades,
            )
        ]


def config_with_module(dest: Path) -> Path:
    """A copy of config/ plus this module's one config entry and a tier ``extra`` (small + MOD-099)."""
    config = dest / "config"
    shutil.copytree(REPO / "config", config)
    features = yaml.safe_load((config / "features.yaml").read_text())
    features["modules"][MODULE_ID] = CONFIG_ENTRY
    (config / "features.yaml").write_text(yaml.safe_dump(features, sort_keys=False))
    (config / "tiers" / "extra.yaml").write_text(f"extends: small\nmodules: [{MODULE_ID}]\n")
    return config
