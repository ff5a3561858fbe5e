"""The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by playwright)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.store import AlertStore
from tests.api.helpers import LiveServer, make_alert, seed

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
    browser: Any, live: LiveServer, store: AlertStore, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    seed(
        store,
        [
            make_alert(1, alert_type="volume_spike", age=timedelta(minutes=20), now=now),
            make_alert(2, alert_type="volume_spike", age=timedelta(minutes=8), now=now, severity="high"),
            make_alert(3, alert_type="spread_dislocation", age=timedelta(minutes=5), now=now),
            make_alert(4, symbol="ETH-USDT", age=timedelta(minutes=2), now=now),
        ],
    )
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    outside: list[str] = []
    page.on("request", lambda req: None if req.url.startswith(live.url) else outside.append(req.url))
    page.goto(live.url + "/", wait_until="domcontentloaded", timeout=WAIT_MS)
    page.wait_for_selector("#status[data-state=live]", timeout=WAIT_MS)
    assert page.locator("#feed tbody tr").count() == 4
    page.wait_for_selector("#panel-BTC-USDT svg polyline", timeout=WAIT_MS)

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
