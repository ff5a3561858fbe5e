"""The MOD-011 back-test over the real local lake (sqlite catalog, Iceberg time travel) and DynamoDB
Local: planted signal vs random alerts, reruns, pending outcomes, degradation once, CLI errors and the
HTML report in headless Chromium."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coattail.contracts import Alert
from coattail.settings import Settings, load_settings
from jobs.batch import lake
from jobs.batch.backtest import BacktestError, backtest_step, latest_results, run_backtest
from jobs.batch.cli import app
from jobs.batch.spark import batch_session
from jobs.framework.router import alert_row
from jobs.sinks.iceberg import RAW_TRADES_COLUMNS, alert_columns, ensure_table, qualified, rows_frame

pytestmark = [pytest.mark.spark, pytest.mark.services]
D1, D2 = date(2026, 3, 2), date(2026, 3, 3)
T0 = datetime(2026, 3, 2, tzinfo=UTC)
PART1_END = datetime(2026, 3, 3, 22, 0, tzinfo=UTC)  # first load of raw_trades ends here (as_of)
PART2_END = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
INSTRUMENTS = (("binance", "BTC-USDT", 60_000.0), ("okx", "ETH-USDT", 3_000.0))
PLANTED, RANDOM, SPIKES = "MOD-006", "MOD-002", "MOD-001"


def drift(t: datetime) -> float:
    """The planted trend: two-hour blocks, up and down in turn (per minute, on the log price)."""
    return 0.0004 if int((t - T0).total_seconds() // 7200) % 2 == 0 else -0.0004


def trades(until: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """One trade a minute per instrument: a random walk around the planted trend."""
    rows = []
    for exchange, symbol, start_price in INSTRUMENTS:
        log_p = math.log(start_price)
        t = T0
        while t <= until:
            log_p += drift(t) + rng.gauss(0, 0.0003)
            price = Decimal(str(round(math.exp(log_p), 2)))
            qty = Decimal("0.5")
            rows.append(
                {
                    "event_id": f"{exchange}-{symbol}-{int(t.timestamp())}", "exchange": exchange,
                    "symbol": symbol, "price": price, "quantity": qty, "quote_volume": price * qty,
                    "side": rng.choice(("buy", "sell")), "timestamp": t, "ingestion_timestamp": t,
                    "dq_late": False, "dq_inconsistent": False,
                }
            )  # fmt: skip
            t += timedelta(minutes=1)
    return rows


def alerts(rng: random.Random) -> list[Alert]:
    """D1: MOD-006 calls agreeing with the trend (placed early in a block, so the next hour trends the
    same way), MOD-002 whale trades of random side, a few volume spikes. D2: MOD-006 turns to noise."""
    found: list[Alert] = []

    def add(
        module: str, kind: str, at: datetime, details: dict[str, Any], symbol: str, exchange: str | None
    ) -> None:
        found.append(
            Alert.create(
                module_id=module, alert_type=kind, symbol=symbol, exchange=exchange, severity="medium",
                detected_at=at, message=f"{kind} {symbol}", details=details,
                evidence=(kind, symbol, at, len(found)),
            )
        )  # fmt: skip

    for i in range(200):  # planted, D1
        block = T0 + timedelta(hours=2 * (i % 12))
        at = block + timedelta(seconds=rng.randrange(0, 55 * 60))
        kind = "accumulation_signal" if drift(at) > 0 else "distribution_signal"
        add(PLANTED, kind, at, {"flow_ratio": 0.8}, "BTC-USDT", None)
    for day in (D1, D2):
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        for i in range(200):
            exchange, symbol, _ = INSTRUMENTS[i % 2]
            at = start + timedelta(seconds=rng.randrange(0, 86_400 - 3600))
            add(RANDOM, "whale_trade", at, {"side": rng.choice(("buy", "sell"))}, symbol, exchange)
    d2 = datetime.combine(D2, datetime.min.time(), tzinfo=UTC)
    for i in range(200):  # noise, D2: up to 23:00 — the last ones are within an hour of as_of (22:00)
        at = d2 + timedelta(seconds=rng.randrange(0, 23 * 3600))
        kind = rng.choice(("accumulation_signal", "distribution_signal"))
        add(PLANTED, kind, at, {"flow_ratio": 0.8, "i": i}, "BTC-USDT", None)
    for i in range(10):  # volume spikes on whole minutes: the window holds one trade, its side the flow
        ws = T0 + timedelta(hours=1 + 2 * i)
        details = {
            "z_score": 3.1,
            "window_start": ws.isoformat(),
            "window_end": (ws + timedelta(minutes=1)).isoformat(),
        }
        add(SPIKES, "volume_spike", ws + timedelta(minutes=1), details, "BTC-USDT", "binance")
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, dynamodb_endpoint: str) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("backtest-lake")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COATTAIL_STATE_DIR", str(state))
        mp.setenv("COATTAIL_HOT_STORE__ENDPOINT_URL", dynamodb_endpoint)
        mp.setenv("COATTAIL_HOT_STORE__TABLE", f"backtest-{state.name}")
        mp.setenv("COATTAIL_HOT_STORE__TTL_HOURS", str(24 * 365 * 10))  # alerts from the past: keep them
        for key, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local"),
                           ("AWS_DEFAULT_REGION", "us-west-2")):  # fmt: skip
            mp.setenv(key, value)
        yield state


def settings_for(state: Path) -> Settings:
    settings = load_settings("large")
    if "MOD-011" not in settings.active_modules:  # (the large tier may not list it yet)
        settings = settings.model_copy(update={"active_modules": [*settings.active_modules, "MOD-011"]})
    return settings


@pytest.fixture(scope="module")
def spark(env: Path) -> Iterator[Any]:
    session = batch_session(settings_for(env), master="local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def loaded(env: Path, spark: Any) -> dict[str, Any]:
    """raw_trades up to PART1_END (snapshot s1) and every alert in anomaly_alerts."""
    settings = settings_for(env)
    rng = random.Random(16)
    history = trades(PART2_END, rng)
    made = alerts(random.Random(11))
    ensure_table(spark, settings, "raw_trades", RAW_TRADES_COLUMNS, "days(timestamp), symbol")
    ensure_table(spark, settings, "anomaly_alerts", alert_columns(), "days(detected_at), alert_type")
    first = [r for r in history if r["timestamp"] <= PART1_END]
    rows_frame(spark, first, RAW_TRADES_COLUMNS).writeTo(qualified(settings, "raw_trades")).append()
    rows_frame(spark, [alert_row(a) for a in made], alert_columns()).writeTo(
        qualified(settings, "anomaly_alerts")
    ).append()
    table = lake.existing_table(settings, "raw_trades")
    assert table is not None
    assert table.current_snapshot() is not None
    return {
        "settings": settings, "s1": int(table.current_snapshot().snapshot_id), "alerts": made,
        "later": [r for r in history if r["timestamp"] > PART1_END],
    }  # fmt: skip


def day_range(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def rate(rows: list[dict[str, Any]], module: str, horizon: str = "1h") -> tuple[float, int]:
    hits = sum(r["hits"] for r in rows if r["module_id"] == module and r["horizon"] == horizon)
    n = sum(r["n"] for r in rows if r["module_id"] == module and r["horizon"] == horizon)
    return hits / n, n


def mod011_alerts(spark: Any, settings: Settings) -> list[dict[str, Any]]:
    table = qualified(settings, "anomaly_alerts")
    spark.sql(f"REFRESH TABLE {table}")
    frame = spark.table(table).where("module_id = 'MOD-011'").select("alert_id", "alert_type", "details")
    return [r.asDict() for r in frame.collect()]


def test_backtest_of_planted_and_random_signals(
    env: Path, spark: Any, loaded: dict[str, Any], tmp_path: Path
) -> None:
    settings, s1 = loaded["settings"], loaded["s1"]
    start, end = day_range(D1)
    report = run_backtest(spark, settings, start, end, report_dir=tmp_path)
    run = report.run
    assert run.snapshot_id == s1
    assert run.as_of == PART1_END  # the newest trade read
    rows = report.rows
    assert {r["backtest_date"] for r in rows} == {D1}
    planted, n = rate(rows, PLANTED)
    assert n == 200
    assert planted >= 0.6, planted
    noise, n = rate(rows, RANDOM)
    assert n == 200
    assert abs(noise - 0.5) <= 0.1, noise
    spikes = [r for r in rows if r["module_id"] == SPIKES and r["horizon"] == "1h"]
    assert sum(r["n"] for r in spikes) == 10  # their direction: the window's net flow from the trades
    # 24 h: the D1 alerts after 22:00 cannot be known at as_of (D2 22:00): pending, not misses
    day1 = [a for a in loaded["alerts"] if a.detected_at.date() == D1 and a.module_id == PLANTED]
    late = sum(1 for a in day1 if a.detected_at + timedelta(hours=24) > PART1_END)
    long = [r for r in rows if r["module_id"] == PLANTED and r["horizon"] == "24h"]
    assert late > 0
    assert sum(r["pending"] for r in long) == late
    assert sum(r["n"] + r["pending"] + r["unpriced"] for r in long) == 200
    assert [a.alert_type for a in run.alerts] == ["backtest_complete"]
    assert report.report_path is not None
    assert report.report_path.is_file()

    stored = latest_results(spark, settings, D1)
    again = run_backtest(spark, settings, start, end)  # same inputs: same run, same rows, same alert
    assert again.run.run_id == run.run_id
    assert latest_results(spark, settings, D1) == stored
    assert len(stored) == len(rows)
    assert [a["alert_type"] for a in mod011_alerts(spark, settings)] == ["backtest_complete"]

    # D2: the planted module's alerts are noise now -> one signal_degradation (MOD-006 only)
    start2, end2 = day_range(D2)
    second = run_backtest(spark, settings, start2, end2)
    degraded = [a for a in second.run.alerts if a.alert_type == "signal_degradation"]
    assert [a.details["degraded_module"] for a in degraded] == [PLANTED]
    assert degraded[0].severity == "high"
    assert degraded[0].symbol == "ALL-ALL"
    d2_rows = second.rows
    pending_1h = sum(r["pending"] for r in d2_rows if r["module_id"] == PLANTED and r["horizon"] == "1h")
    expected = sum(
        1 for a in loaded["alerts"]
        if a.module_id == PLANTED and a.detected_at.date() == D2
        and a.detected_at + timedelta(hours=1) > PART1_END
    )  # fmt: skip
    assert pending_1h == expected > 0
    run_backtest(spark, settings, start2, end2)  # rerun: the degradation is the same alert
    kinds = [a["alert_type"] for a in mod011_alerts(spark, settings)]
    assert kinds.count("signal_degradation") == 1

    # more trades land (snapshot s2); time travel to s1 still gives the first answer...
    rows_frame(spark, loaded["later"], RAW_TRADES_COLUMNS).writeTo(qualified(settings, "raw_trades")).append()
    pinned = run_backtest(spark, settings, start, end, snapshot_id=s1)
    assert pinned.run.run_id == run.run_id
    assert pinned.rows == again.rows
    # ... and the daily step for D2 re-runs D1 too: its pending 24 h outcomes resolve, rows updated in place
    summary = backtest_step(spark, settings, D2)
    assert summary["backtest_dates"] == [D1.isoformat(), D2.isoformat()]
    updated = latest_results(spark, settings, D1)
    assert len(updated) == len(stored)
    assert sum(r["pending"] for r in updated if r["horizon"] == "24h") == 0
    assert sum(r["n"] for r in updated if r["module_id"] == PLANTED and r["horizon"] == "24h") == 200
    assert [a["alert_type"] for a in mod011_alerts(spark, settings)].count("signal_degradation") == 1

    from jobs.sinks.hot import HotStore

    hot = HotStore(settings)
    try:
        if hasattr(hot, "analytics"):  # the API's copy of the newest run
            latest = hot.analytics.latest_backtest()
            assert latest is not None
            assert latest["run"]["run_id"] == summary["run_id"]
    finally:
        hot.close()


def test_coattail_detect_follow_backtests_the_batch_alerts(
    env: Path, spark: Any, loaded: dict[str, Any]
) -> None:
    """``coattail detect``'s path: the earlier modules' alerts against the input trades, as of the newest."""
    from jobs.detectors.backtester import BacktesterDetector
    from jobs.framework.detector import DetectorResult

    detector = BacktesterDetector()
    detector.configure(loaded["settings"])
    day1 = [a for a in loaded["alerts"] if a.detected_at.date() == D1]
    results = {
        m: DetectorResult(alerts=[a for a in day1 if a.module_id == m]) for m in (SPIKES, RANDOM, PLANTED)
    }
    frame = rows_frame(spark, [r for r in trades(PART1_END, random.Random(16))], RAW_TRADES_COLUMNS)
    out = detector.follow(results, {"trades": frame})
    assert detector.table_columns().startswith("backtest_date date, module_id string")
    assert {r["backtest_date"] for r in out.records} == {D1}
    assert rate(out.records, PLANTED)[0] >= 0.6
    assert out.records[0]["as_of"] == PART1_END
    assert [a.alert_type for a in out.alerts] == ["backtest_complete"]
    assert out.alerts[0].details["alerts_evaluated"] == len(day1)
    assert detector.follow(results, {"trades": frame}).records == out.records  # deterministic
    with pytest.raises(NotImplementedError, match="not on the stream"):
        detector.process(frame)


def test_bad_input_is_one_line_and_non_zero(
    env: Path, spark: Any, loaded: dict[str, Any], tmp_path: Path
) -> None:
    runner = CliRunner()
    cases = [
        (["--start", "2026-03-02", "--end", "2026-03-02"], "must be after"),
        (
            ["--start", "2026-03-02", "--end", "2026-03-03", "--as-of-snapshot", "12345"],
            "has no snapshot 12345",
        ),
        (["--start", "yesterday", "--end", "2026-03-03"], "is not an ISO date"),
    ]
    for args, text in cases:
        result = runner.invoke(app, ["backtest", *args, "--tier", "large"])
        assert result.exit_code != 0, result.output
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith("error:")
        assert text in result.stderr
    empty = runner.invoke(
        app,
        ["backtest", "--start", "2026-03-02", "--end", "2026-03-03"],
        env={"COATTAIL_STATE_DIR": str(tmp_path)},
    )
    assert empty.exit_code == 1
    assert (
        empty.stderr
        == "error: raw_trades does not exist yet; run the pipeline or `coattail batch backfill`\n"
    )
    with pytest.raises(BacktestError, match="must be after"):
        run_backtest(spark, loaded["settings"], *reversed(day_range(D1)))


@pytest.mark.browser
def test_cli_prints_the_table_and_the_report_renders(
    env: Path, spark: Any, loaded: dict[str, Any], tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    # In-process (no second JVM start): the command stops the module's shared session, so it runs last.
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--start",
            "2026-03-02",
            "--end",
            "2026-03-03",
            "--report",
            str(report),
            "--tier",
            "large",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "hit rate" in result.stdout
    assert PLANTED in result.stdout
    assert f"report: {report}" in result.stdout
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 2  # hit rate and cumulative return (no MOD-010 scores)
    assert "no calibration to show" in html

    from tests.api.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh extras as root (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "backtest-report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(report.as_uri())
            assert page.locator("#results tbody tr").count() > 0
            assert page.locator("h2").all_inner_texts() == [
                "Hit rate",
                "Cumulative signed return",
                "MOD-010 calibration",
            ]
            widths = page.eval_on_selector_all(
                "img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)"
            )
            assert len(widths) == 2
            assert all(w > 100 for w in widths)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    print(f"report screenshot: {shot}")
