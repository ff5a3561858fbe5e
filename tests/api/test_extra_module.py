"""A detector from a test package (tests/extra_module) plus one config entry shows up in the API.

Nothing in api/ or the dashboard names it: /alert-types, /metrics/{symbol} (its panel's figures and
its window series) come from the module's own declarations. The browser half is in
test_dashboard_browser.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.app import create_app
from coattail.hotstore import DynamoAlertStore
from coattail.hotstore.windows import DynamoWindowStore
from coattail.settings import Settings, load_settings
from jobs.framework import ModuleRegistry
from tests.api.helpers import LiveServer, serve
from tests.extra_module import MODULE_ID, TradeCountDetector, config_with_module

pytestmark = pytest.mark.services


def extra_settings(tmp_path: Path, endpoint: str, table: str) -> Settings:
    return load_settings(
        "extra",
        config_dir=config_with_module(tmp_path),
        env={},
        overrides={"hot_store.endpoint_url": endpoint, "hot_store.table": table},
    )


def publish(settings: Settings, store: DynamoAlertStore, now: datetime) -> TradeCountDetector:
    """What the pipeline does with a batch of the module's output: alerts, then its window points."""
    (detector,) = [d for d in ModuleRegistry(settings).detectors() if d.module_id == MODULE_ID]
    assert isinstance(detector, TradeCountDetector)
    first_us = int((now - timedelta(minutes=2)).timestamp() * 1e6)
    result = detector.finish(
        [
            {"symbol": "BTC-USDT", "exchange": "binance", "trades": 7, "first_us": first_us},
            {"symbol": "BTC-USDT", "exchange": "coinbase", "trades": 2, "first_us": first_us},
        ]
    )
    assert [a.alert_type for a in result.alerts] == ["busy_symbol"]  # 2 < min_trades
    store.write(result.alerts)
    points = [p for r in result.records for p in detector.window_points(r)]
    DynamoWindowStore(store).put_points(points, timedelta(hours=2), now)
    return detector


@pytest.fixture
def extra_live(
    tmp_path: Path, dynamodb_endpoint: str, store: DynamoAlertStore
) -> Iterator[tuple[LiveServer, Settings]]:
    settings = extra_settings(tmp_path, dynamodb_endpoint, store.table)
    publish(settings, store, datetime.now(UTC))
    with serve(create_app(settings, store=store)) as server:
        yield server, settings


def test_extra_module_is_in_alert_types_and_symbol_metrics(extra_live: tuple[LiveServer, Settings]) -> None:
    live, _ = extra_live
    with live.client() as client:
        types = client.get("/alert-types").json()
        assert {"alert_type": "busy_symbol", "module_id": MODULE_ID, "module": "trade-counter"} in types[
            "alert_types"
        ]
        body = client.get("/metrics/BTC-USDT").json()
        modules = {m["module_id"]: m for m in body["modules"]}
        extra = modules[MODULE_ID]
        assert (extra["name"], extra["title"], extra["alert_count"]) == ("trade-counter", "trades", 1)
        assert extra["figures"] == [{"label": "Trades counted", "unit": "", "value": 7}]
        series = {(s["module_id"], s["series"]): s["points"] for s in body["series"]}
        assert [p["value"] for p in series[(MODULE_ID, "trades binance")]] == [7.0]
        assert [p["value"] for p in series[(MODULE_ID, "trades coinbase")]] == [2.0]
        listed = client.get("/alerts", params={"type": "busy_symbol"}).json()
        assert [a["details"]["trades"] for a in listed["items"]] == [7]


def test_small_tier_api_does_not_show_the_extra_module(
    tmp_path: Path, dynamodb_endpoint: str, store: DynamoAlertStore
) -> None:
    settings = extra_settings(tmp_path, dynamodb_endpoint, store.table)
    small = load_settings(
        "small",
        config_dir=settings.config_dir,
        env={},
        overrides={"hot_store.endpoint_url": dynamodb_endpoint, "hot_store.table": store.table},
    )
    publish(settings, store, datetime.now(UTC))
    with serve(create_app(small, store=store)) as live, live.client() as client:
        assert "busy_symbol" not in [
            t["alert_type"] for t in client.get("/alert-types").json()["alert_types"]
        ]
        body = client.get("/metrics/BTC-USDT").json()
        assert MODULE_ID not in [m["module_id"] for m in body["modules"]]
        assert all(s["module_id"] != MODULE_ID for s in body["series"])
