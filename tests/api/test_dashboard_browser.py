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
from coattail.contracts import Alert
from coattail.hotstore import DynamoAlertStore
from coattail.hotstore.analytics import DynamoAnalyticsStore
from coattail.hotstore.wallets import DynamoWalletStore
from coattail.hotstore.windows import DynamoWindowStore
from coattail.panels import WindowPoint
from tests.api.helpers import LiveServer, api_settings, make_alert, seed, serve
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
SOLANA_WALLET = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"


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


def onchain_alert(alert_type: str, n: int, now: datetime, details: dict[str, Any]) -> Alert:
    """An MOD-008 alert whose details carry MOD-005's labels of the wallets it names."""
    return Alert.create(
        module_id="MOD-008", alert_type=alert_type, symbol="ETH-USD", exchange="ethereum", severity="high",
        detected_at=now - timedelta(minutes=n), message=f"{alert_type} #{n}",
        details={"blockchain": "ethereum", **details}, evidence=("ethereum", f"0xtx{n}", n),
    )  # fmt: skip


def test_wallet_leaderboard_and_labels_on_onchain_alerts(
    browser: Any, dynamodb_endpoint: str, store: DynamoAlertStore, tmp_path: Path
) -> None:
    """The leaderboard shows a chain's top 20 (percentile, win rate, trades, label); chains switch;
    on-chain alerts carry their wallets' labels."""
    now = datetime.now(UTC)
    wallets = DynamoWalletStore(store)
    wallets.put_scores(
        [
            {"blockchain": "ethereum", "wallet": f"0x{n:040x}", "scored_at": now, "trade_count": 5 + n,
             "win_rate": 0.5 + n / 100, "avg_return": 0.01, "max_drawdown": 0.02, "alpha": n / 4,
             "alpha_percentile": 100 * n / 25}
            for n in range(1, 26)
        ]
        + [{"blockchain": "solana", "wallet": SOLANA_WALLET, "scored_at": now, "trade_count": 9,
            "win_rate": 0.8, "avg_return": 0.03, "max_drawdown": 0.01, "alpha": 2.5,
            "alpha_percentile": 100.0}]
    )  # fmt: skip
    wallets.put_labels(
        [{"blockchain": "ethereum", "address": f"0x{25:040x}", "label": "Example Fund", "entity_type": "fund",
          "source": "test", "updated_at": now}]
    )  # fmt: skip
    transfer = onchain_alert(
        "large_transfer", 1, now,
        {"from_address": f"0x{25:040x}", "from_label": "Example Fund", "to_label": "Binance 14"},
    )  # fmt: skip
    swap = onchain_alert("dex_swap", 2, now, {"trader": f"0x{3:040x}", "trader_label": "Wintermute"})
    plain = onchain_alert("dex_swap", 3, now, {"trader": f"0x{4:040x}"})
    seed(store, [transfer, swap, plain])
    settings = api_settings(dynamodb_endpoint, store.table, tier="large")
    with serve(create_app(settings, store=store)) as live:
        page = browser.new_page(viewport={"width": 1440, "height": 1200})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(live.url + "/", wait_until="domcontentloaded", timeout=WAIT_MS)
        page.wait_for_function(
            "() => document.querySelectorAll('#leaderboard tbody tr').length === 20", timeout=WAIT_MS
        )
        first = page.locator("#leaderboard tbody tr").first
        assert first.get_attribute("data-address") == f"0x{25:040x}"
        cells = first.locator("td").all_inner_texts()
        assert cells[0] == "1"
        assert cells[2] == "Example Fund"
        assert cells[4:7] == ["100.0%", "75%", "30"]  # percentile, win rate, trades
        assert page.locator("#leaderboard tbody tr").last.locator("td").first.inner_text() == "20"

        def tags(alert: Alert) -> list[str]:
            found: list[str] = page.locator(
                f'#feed tbody tr[data-alert-id="{alert.alert_id}"] .tag'
            ).all_inner_texts()
            return found

        page.wait_for_selector(f'#feed tbody tr[data-alert-id="{plain.alert_id}"]', timeout=WAIT_MS)
        assert tags(transfer) == ["from Example Fund", "to Binance 14"]
        assert tags(swap) == ["trader Wintermute"]
        assert tags(plain) == []
        page.screenshot(path=str(tmp_path / "dashboard-wallets.png"), full_page=True)
        if target := os.environ.get("DASHBOARD_SCREENSHOT"):
            page.screenshot(path=target.replace(".png", "-wallets.png"), full_page=True)

        assert page.locator("#wallet-chain option").all_inner_texts() == ["ethereum", "solana"]
        page.select_option("#wallet-chain", "solana")
        page.wait_for_selector("#leaderboard[data-chain=solana] tbody tr", timeout=WAIT_MS)
        assert page.locator("#leaderboard tbody tr").count() == 1
        assert errors == []
        page.close()


def backtest_row(
    module: str, symbol: str, horizon: str, n: int, hit: float, mean: float, sharpe: float
) -> dict[str, Any]:
    return {
        "backtest_date": datetime.now(UTC).date(), "module_id": module, "symbol": symbol, "horizon": horizon,
        "n": n, "hit_rate": hit, "mean_return": mean, "sharpe": sharpe, "max_drawdown": 0.02, "pending": 0,
        "unpriced": 0, "run_id": "run-dash",
    }  # fmt: skip


def test_backtest_and_prediction_panels(
    browser: Any, dynamodb_endpoint: str, store: DynamoAlertStore, tmp_path: Path
) -> None:
    """Large tier (MOD-010, MOD-011): nothing run -> no panels; a stored run and a score -> both drawn
    (per module and horizon over the symbols, hit rate coloured; the selected symbol's p 1h/2h/4h).
    The small tier shows neither whatever the store holds."""
    large = api_settings(dynamodb_endpoint, store.table, tier="large")
    assert {"MOD-010", "MOD-011"} <= set(large.active_modules)
    with serve(create_app(large, store=store)) as live:
        page = browser.new_page(viewport={"width": 1440, "height": 1200})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        with page.expect_response(lambda r: r.url.endswith("/backtests/latest"), timeout=WAIT_MS) as first:
            page.goto(live.url + "/", wait_until="domcontentloaded", timeout=WAIT_MS)
        assert first.value.status == 404
        page.wait_for_selector("#prediction-symbol option", state="attached", timeout=WAIT_MS)
        assert page.locator("#backtest").is_hidden()
        assert page.locator("#prediction").is_hidden()

        analytics = DynamoAnalyticsStore(store)
        analytics.put_backtest(
            {
                "run_id": "run-dash",
                "backtest_date": datetime.now(UTC).date(),
                "alerts_evaluated": 82,
                "pending": 5,
            },
            [
                backtest_row("MOD-002", "BTC-USDT", "1h", 30, 0.7, 0.004, 0.5),
                backtest_row("MOD-002", "ETH-USDT", "1h", 10, 0.3, -0.002, -0.25),
                backtest_row("MOD-002", "BTC-USDT", "4h", 30, 0.5, 0.001, 0.1),
                backtest_row("MOD-007", "BTC-USDT", "1h", 12, 0.4, -0.003, -0.4),
            ],
        )
        scored = datetime.now(UTC).replace(second=0, microsecond=0)
        analytics.put_predictions(
            [
                {"symbol": "BTC-USDT", "scored_at": scored - timedelta(minutes=15), "p_1h": 0.1, "p_2h": 0.2,
                 "p_4h": 0.3, "features": "{}"},
                {"symbol": "BTC-USDT", "scored_at": scored, "p_1h": 0.42, "p_2h": 0.61, "p_4h": 0.78,
                 "features": '{"consensus_score": 88.0}'},
            ]
        )  # fmt: skip
        page.reload(wait_until="domcontentloaded", timeout=WAIT_MS)
        page.wait_for_selector("#backtest-table[data-run=run-dash] tbody tr", timeout=WAIT_MS)
        assert page.locator("#backtest").is_visible()
        heading = page.locator("#backtest-run").inner_text()
        assert "82 alerts evaluated" in heading
        assert datetime.now(UTC).date().isoformat() in heading
        rows = [r.locator("td").all_inner_texts() for r in page.locator("#backtest-table tbody tr").all()]
        assert rows == [
            ["MOD-002", "1h", "40", "60.0%", "0.25%", "0.30"],  # n-weighted over BTC and ETH, pooled Sharpe
            ["MOD-002", "4h", "30", "50.0%", "0.10%", "0.10"],
            ["MOD-007", "1h", "12", "40.0%", "-0.30%", "-0.40"],
        ]
        hits = page.locator("#backtest-table td.hit")
        assert [hits.nth(i).get_attribute("class") for i in range(3)] == [
            "num hit good",
            "num hit fair",
            "num hit poor",
        ]

        page.select_option("#filter-symbol", "BTC-USDT")  # the prediction follows the chosen symbol
        page.wait_for_selector('#prediction-figure[data-symbol="BTC-USDT"] dd', timeout=WAIT_MS)
        assert page.locator("#prediction").is_visible()
        figure = page.locator("#prediction-figure")
        assert figure.get_attribute("data-scored-at") == scored.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        assert figure.locator("dt").all_inner_texts() == ["p 1h", "p 2h", "p 4h", "scored (UTC)"]
        assert figure.locator("dd").all_inner_texts()[:3] == ["42.0%", "61.0%", "78.0%"]
        assert figure.locator("dd.likely").all_inner_texts() == ["78.0%"]
        page.screenshot(path=str(tmp_path / "dashboard-analytics.png"), full_page=True)
        if target := os.environ.get("DASHBOARD_SCREENSHOT"):
            page.screenshot(path=target.replace(".png", "-analytics.png"), full_page=True)
        page.select_option("#prediction-symbol", "ETH-USDT")  # no score there: the figure goes
        page.wait_for_selector("#prediction", state="hidden", timeout=WAIT_MS)
        assert errors == []
        page.close()

    small = api_settings(dynamodb_endpoint, store.table)  # no MOD-010/011: the panels stay out
    with serve(create_app(small, store=store)) as live:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        requested: list[str] = []
        page.on("request", lambda req: requested.append(req.url))
        page.goto(live.url + "/", wait_until="domcontentloaded", timeout=WAIT_MS)
        page.wait_for_selector("#panel-BTC-USDT[data-loaded=true]", timeout=WAIT_MS)
        assert page.locator("#backtest").is_hidden()
        assert page.locator("#prediction").is_hidden()
        assert not [u for u in requested if "/backtests/" in u or "/predictions/" in u]
        page.close()
