"""The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by playwright)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from coattail.hotstore import DynamoAlertStore
from coattail.hotstore.windows import DynamoWindowStore
from coattail.panels import WindowPoint
from tests.api.helpers import LiveServer, make_alert, seed, serve
from tests.api.test_extra_module import extra_settings, publish
from tests.extra_module import MODULE_ID

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 60_000


def seed_windows(store: DynamoAlertStore, now: datetime) -> None:
    """An hour of windows for BTC-USDT as the pipeline writes them: volume per minute (one flagged),
    both exchanges' 30 s VWAP and the pair's spread."""
    start = now.replace(second=0, microsecond=0)
    points = [
        WindowPoint("MOD-001", "BTC-USDT", "volume binance", start - timedelta(minutes=m),
                    9e5 + 5e4 * (m % 7), m == 8, "high" if m == 8 else None)
        for m in range(60)
    ] + [
        WindowPoint("MOD-003", "BTC-USDT", f"price {ex}", start - timedelta(seconds=30 * k),
                    60_000 + 40 * math.sin(k / 9) + (25 if ex == "coinbase" else 0))
        for k in range(120) for ex in ("binance", "coinbase")
    ]  # fmt: skip
    DynamoWindowStore(store).put_points(points, timedelta(hours=2), now)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh extras as root (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


def test_live_alert_appears_and_filters_apply(
    browser: Any, live: LiveServer, store: DynamoAlertStore, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    seed(
        store,
        [
            make_alert(1, alert_type="volume_spike", age=timedelta(minutes=20), now=now),
            make_alert(2, alert_type="volume_spike", age=timedelta(minutes=8), now=now, severity="high"),
            make_alert(3, alert_type="spread_divergence", age=timedelta(minutes=5), now=now),
            make_alert(4, symbol="ETH-USDT", age=timedelta(minutes=2), now=now),
        ],
    )
    seed_windows(store, now)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    outside: list[str] = []
    page.on("request", lambda req: None if req.url.startswith(live.url) else outside.append(req.url))
    page.goto(live.url + "/", wait_until="domcontentloaded", timeout=WAIT_MS)
    page.wait_for_selector("#status[data-state=live]", timeout=WAIT_MS)
    assert page.locator("#feed tbody tr").count() == 4
    # Every window of the last hour is drawn, the flagged ones marked in their severity's colour.
    chart = '#panel-BTC-USDT .chart[data-module="MOD-001"][data-series="volume binance"]'
    page.wait_for_selector(f"{chart} svg polyline", timeout=WAIT_MS)
    drawn = page.locator(f"{chart} svg polyline").get_attribute("points") or ""
    assert len(drawn.split()) == 60
    assert page.locator(f"{chart} svg circle.marker.high").count() == 1
    assert page.locator('#panel-BTC-USDT .chart[data-series^="price "]').count() == 2

    # A new alert written after the page loaded shows up without a reload.
    fresh = make_alert(5, symbol="BTC-USDT", severity="critical")
    seed(store, [fresh])
    page.wait_for_selector(f'#feed tbody tr[data-alert-id="{fresh.alert_id}"]', timeout=WAIT_MS)
    assert page.locator("#feed tbody tr").first.get_attribute("data-alert-id") == fresh.alert_id

    # Type filter: the server-side query and the stream reconnect with it.
    page.select_option("#filter-type", "volume_spike")
    page.wait_for_function(
        "() => { const rows = [...document.querySelectorAll('#feed tbody tr')];"
        " return rows.length === 2 && rows.every(r => r.dataset.type === 'volume_spike'); }",
        timeout=WAIT_MS,
    )
    page.wait_for_selector("#status[data-state=live]", timeout=WAIT_MS)
    # Severity filter is applied in the page.
    page.select_option("#filter-severity", "high")
    page.wait_for_function("() => document.querySelectorAll('#feed tbody tr').length === 1", timeout=WAIT_MS)
    # A live alert that matches the filter still arrives.
    spike = make_alert(6, alert_type="volume_spike", severity="critical")
    seed(store, [spike])
    page.wait_for_selector(f'#feed tbody tr[data-alert-id="{spike.alert_id}"]', timeout=WAIT_MS)

    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    if target := os.environ.get("DASHBOARD_SCREENSHOT"):
        page.screenshot(path=target, full_page=True)
    assert errors == []
    assert outside == []  # nothing loaded from outside the service
    page.close()


def test_extra_module_panel_on_the_dashboard(
    browser: Any, dynamodb_endpoint: str, store: DynamoAlertStore, tmp_path: Path
) -> None:
    """The test package's detector: its figure and its window series on the dashboard, no edit of ours."""
    settings = extra_settings(tmp_path, dynamodb_endpoint, store.table)
    now = datetime.now(UTC)
    seed_windows(store, now)
    publish(settings, store, now)
    with serve(create_app(settings, store=store)) as live:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(live.url + "/", wait_until="domcontentloaded", timeout=WAIT_MS)
        chart = f'#panel-BTC-USDT .chart[data-module="{MODULE_ID}"][data-series="trades binance"]'
        page.wait_for_selector(f"{chart} svg circle.dot", timeout=WAIT_MS)  # one window so far
        figures = page.locator("#panel-BTC-USDT dl.figures").inner_text()
        assert "Trades counted" in figures
        assert "7.00" in figures
        assert page.locator("#filter-type option[value=busy_symbol]").count() == 1
        page.screenshot(path=str(tmp_path / "dashboard-extra-module.png"), full_page=True)
        if target := os.environ.get("DASHBOARD_SCREENSHOT"):
            page.screenshot(path=target.replace(".png", "-extra-module.png"), full_page=True)
        assert errors == []
        page.close()
