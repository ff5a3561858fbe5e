"""The medium tier through the API: MOD-006/MOD-007 alert types in the filters, per-symbol flow ratio
and consensus score on /metrics/{symbol} — from the modules' own declarations, nothing in api/."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from api.app import create_app
from coattail.hotstore import DynamoAlertStore
from coattail.hotstore.windows import DynamoWindowStore
from coattail.settings import load_settings
from jobs.framework import ModuleRegistry
from tests.api.helpers import serve

pytestmark = pytest.mark.services


def _windows(now: datetime) -> tuple[dict[str, object], dict[str, object]]:
    """One closed 5 min window of BTC-USDT: three whale buys of 300K and a volume spike of z = 8."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=10 + now.minute % 5)
    start_us, end_us = int(start.timestamp() * 1e6), int((start + timedelta(minutes=5)).timestamp() * 1e6)
    flow = {"symbol": "BTC-USDT", "window_start_us": start_us, "window_end_us": end_us,
            "buy_volume": "900000", "sell_volume": "0", "whale_trades": 3,
            "exchanges": "binance"}  # fmt: skip
    consensus = {**flow, "whale_ids": json.dumps(["e1", "e2", "e3"]),
                 "spikes": json.dumps([["binance", start_us // 1000, 8.0]])}  # fmt: skip
    return flow, consensus


def test_flow_and_consensus_show_in_filters_and_symbol_metrics(
    dynamodb_endpoint: str, store: DynamoAlertStore
) -> None:
    settings = load_settings(
        "medium",
        env={},
        overrides={"hot_store.endpoint_url": dynamodb_endpoint, "hot_store.table": store.table},
    )
    now = datetime.now(UTC)
    detectors = {d.module_id: d for d in ModuleRegistry(settings).detectors()}
    rows = dict(zip(("MOD-006", "MOD-007"), _windows(now), strict=True))
    for module_id, row in rows.items():  # what the pipeline does with a micro-batch of each module
        result = detectors[module_id].finish([row])
        assert len(result.alerts) == 1
        store.write(result.alerts)
        points = [p for r in result.records for p in detectors[module_id].window_points(r)]
        DynamoWindowStore(store).put_points(points, timedelta(hours=2), now)
    with serve(create_app(settings, store=store)) as live, live.client() as client:
        types = {t["alert_type"]: t["module_id"] for t in client.get("/alert-types").json()["alert_types"]}
        assert {k: types[k] for k in ("accumulation_signal", "distribution_signal")} == {
            "accumulation_signal": "MOD-006", "distribution_signal": "MOD-006",
        }  # fmt: skip
        assert types["consensus_bullish"] == types["consensus_bearish"] == "MOD-007"
        body = client.get("/metrics/BTC-USDT").json()
        modules = {m["module_id"]: m for m in body["modules"]}
        flow = {f["label"]: f["value"] for f in modules["MOD-006"]["figures"]}
        assert flow == {"Flow ratio": 1.0, "Net whale flow": 900000.0}
        consensus = {f["label"]: f["value"] for f in modules["MOD-007"]["figures"]}
        assert consensus == {"Consensus score": 100.0, "Direction": "bullish"}
        series = {(s["module_id"], s["series"]): s["points"] for s in body["series"]}
        assert [p["value"] for p in series[("MOD-006", "whale flow ratio")]] == [1.0]
        assert [p["value"] for p in series[("MOD-007", "consensus score")]] == [100.0]
        listed = client.get("/alerts", params={"type": "consensus_bullish"}).json()["items"]
        assert [a["severity"] for a in listed] == ["high"]
        assert len(listed[0]["details"]["contributing_alerts"]) == 5  # 1 spike, 3 whales, 1 flow signal
