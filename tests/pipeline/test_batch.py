"""Detectors on crafted batch data (Spark, batch mode = `coattail detect`) with exact expected alerts."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coattail.contracts import Alert, alert_id
from coattail.settings import Settings
from jobs.batchmode import clean_trades, detect
from jobs.detectors.common import from_us
from tests.pipeline.helpers import T0, line, raw_frame, trade

pytestmark = pytest.mark.spark


def _run(spark: Any, settings: Settings, lines: list[str]) -> dict[str, list[Alert]]:
    results = detect(spark, settings, clean_trades(raw_frame(spark, lines), settings))
    return {m: r.alerts for m, r in results.items()}


def _volume_series() -> list[str]:
    """binance BTC-USDT: 10 min of history (mean 100K, stddev 2K), then a window at exactly z = 2.5,
    then one at z = 3 after a quiet minute (quiet = zero volume in the baseline)."""
    volumes = [103_000, 103_000, 97_000, 97_000] + [100_000] * 6 + [105_000]
    lines = [line(trade(at=m * 60 + 5, quote_volume=v, price=100_000)) for m, v in enumerate(volumes)]
    lines.append(line(trade(at=12 * 60 + 5, quote_volume=99_000, price=100_000)))  # minute 11 quiet
    return lines


def test_volume_anomaly_exact(spark: Any, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    alerts = _run(spark, settings, _volume_series())["MOD-001"]
    # window 10 has z exactly 2.5 (not flagged); window 12: history = [..11 windows.., 0] -> z computed
    history = [103_000, 103_000, 97_000, 97_000] + [100_000] * 6 + [105_000, 0]
    mean = sum(history) / 12
    std = (sum((h - mean) ** 2 for h in history) / 11) ** 0.5
    z = (99_000 - mean) / std
    assert abs(z) < 2.5  # the quiet minute widens the baseline: still no alert
    assert alerts == []

    spike = [*_volume_series(), line(trade(at=13 * 60 + 5, quote_volume=400_000, price=100_000))]
    (alert,) = _run(spark, settings, spike)["MOD-001"]
    start = T0.replace(minute=13)
    assert alert.alert_id == alert_id("MOD-001", "BTC-USDT", "binance", start)
    assert alert.detected_at == start.replace(minute=14)
    assert alert.alert_type == "volume_spike"
    assert alert.severity in {"high", "critical"}
    assert alert.details["window_volume"] == 400_000.0
    assert alert.details["z_score"] > 4
    assert alert.details["history_windows"] == 13


def test_whale_exact(spark: Any, make_settings: Callable[..., Settings]) -> None:
    events = [
        trade(at=1, quote_volume=100_000, price=50_000),  # exactly 100K: not a whale
        trade(at=2, quote_volume="100000.5", price=50_000),
        trade(at=3, quote_volume=500_001, price=50_000),
        trade(at=4, quote_volume=1_000_001, price=50_000, side="sell"),
    ]
    alerts = _run(spark, make_settings(), [line(e) for e in events])["MOD-002"]
    assert [(a.alert_id, a.severity, a.detected_at) for a in alerts] == [
        (alert_id("MOD-002", e.event_id), sev, e.timestamp)
        for e, sev in zip(events[1:], ["medium", "high", "critical"], strict=True)
    ]
    assert alerts[2].details["side"] == "sell"
    assert alerts[2].details["quote_volume"] == 1_000_001.0


def test_spread_exact(spark: Any, make_settings: Callable[..., Settings]) -> None:
    a, b = {"exchange": "binance", "symbol": "BTC-USDT"}, {"exchange": "coinbase", "symbol": "BTC-USD"}
    events = [
        # window 0: VWAP a = 201 (two trades), b = 200 -> exactly 0.5 %: not flagged
        trade(at=1, price=200, quote_volume=200, **a),
        trade(at=2, price=202, quote_volume=202, **a),
        trade(at=3, price=200, quote_volume=400, **b),
        # window 1 (30 s later): a = 201.5, b = 200 -> 0.75 %: medium
        trade(at=31, price="201.5", quote_volume=403, **a),
        trade(at=32, price=200, quote_volume=200, **b),
        # window 2: only "a" traded -> no spread
        trade(at=61, price=300, quote_volume=300, **a),
    ]
    alerts = _run(spark, make_settings(), [line(e) for e in events])["MOD-003"]
    (alert,) = alerts
    start = T0.replace(second=30)
    assert alert.alert_id == alert_id("MOD-003", "binance:BTC-USDT", "coinbase:BTC-USD", start)
    assert alert.exchange is None
    assert alert.symbol == "BTC-USDT"
    assert alert.severity == "medium"
    assert alert.details["spread_pct"] == pytest.approx(0.75)
    assert (
        from_us(int(alert.detected_at.timestamp() * 1_000_000))
        == start.replace(minute=0, second=0) + (T0.replace(second=30) - T0) * 2
    )


def test_detect_cli_writes_alerts_jsonl(spark: Any, tmp_path: Path, pipeline_state: Path) -> None:
    from coattail.cli import app

    events = tmp_path / "events.jsonl"
    whale = trade(at=5, quote_volume=2_000_000, price=60_000)
    events.write_text("\n".join([line(whale), line(whale), "not json", *_volume_series()]) + "\n")
    out, tables = tmp_path / "alerts.jsonl", tmp_path / "tables"
    result = CliRunner().invoke(
        app,
        ["detect", "--tier", "small", "--input", str(events), "--output", str(out), "--tables", str(tables)],
    )
    assert result.exit_code == 0, result.output
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    # the whale once (its duplicate line is dropped, "not json" is dead-lettered), plus the series'
    # own trades above 100K (103K, 103K, 105K); the series never reaches |z| > 2.5
    severities = sorted(a["severity"] for a in alerts if a["module_id"] == "MOD-002")
    assert severities == ["critical", "medium", "medium", "medium"]
    assert len(alerts) == 4
    assert "4 alert(s)" in result.output
    # Each active module's table rows, one JSONL per table, through the module's row model.
    assert sorted(p.name for p in tables.iterdir()) == [
        "exchange_spreads.jsonl", "volume_aggregates.jsonl", "whale_trades.jsonl",
    ]  # fmt: skip
    whales = [json.loads(x) for x in (tables / "whale_trades.jsonl").read_text().splitlines()]
    assert sorted(w["alert_id"] for w in whales) == sorted(a["alert_id"] for a in alerts)
    assert all(isinstance(w["quote_volume"], str) for w in whales)  # exact decimals travel as strings
    assert max(Decimal(w["quote_volume"]) for w in whales) == Decimal("1999999.9998")
    windows = [json.loads(x) for x in (tables / "volume_aggregates.jsonl").read_text().splitlines()]
    assert windows
    assert not any(w["flagged"] for w in windows)

    bad = CliRunner().invoke(app, ["detect", "--tier", "huge", "--input", str(events), "--output", str(out)])
    assert bad.exit_code != 0
    assert "huge" in (bad.output + str(bad.exception))


def test_detect_runs_a_module_from_outside_jobs(spark: Any, tmp_path: Path, pipeline_state: Path) -> None:
    """The test package's detector (tests/extra_module) with one config entry: alerts and table rows."""
    from coattail.cli import app
    from tests.extra_module import config_with_module

    config = config_with_module(tmp_path)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(line(trade(at=s, quote_volume=1_000 + s)) for s in range(5)) + "\n")
    out, tables = tmp_path / "alerts.jsonl", tmp_path / "tables"
    result = CliRunner().invoke(
        app,
        ["detect", "--tier", "extra", "--input", str(events), "--output", str(out), "--tables", str(tables)],
        env={"COATTAIL_CONFIG_DIR": str(config)},
    )
    assert result.exit_code == 0, result.output
    busy = [json.loads(x) for x in out.read_text().splitlines() if '"busy_symbol"' in x]
    assert [(a["module_id"], a["details"]["trades"]) for a in busy] == [("MOD-099", 5)]
    counts = [json.loads(x) for x in (tables / "trade_counts.jsonl").read_text().splitlines()]
    assert [c["trades"] for c in counts] == [5]
