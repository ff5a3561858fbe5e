"""MOD-006 flow direction and MOD-007 consensus on crafted batch data (``coattail detect --tier medium``):
exact alerts, exact table rows, and the consensus details that point at the other modules' alerts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from coattail.contracts import alert_id
from coattail.settings import Settings
from jobs.batchmode import clean_trades, detect
from tests.pipeline.helpers import T0, line, trade

pytestmark = pytest.mark.spark
BTC = {"exchange": "binance", "symbol": "BTC-USDT"}
ETH = {"exchange": "binance", "symbol": "ETH-USDT"}


def _events() -> list[Any]:
    """BTC: 10 min of ~100K/min history in small trades, then three 5-min windows:
    [10, 15) three 300K whale buys in one minute (a volume spike): accumulation + consensus, all high;
    [15, 20) whales 350K + 350K sells and a 300K buy: ratio exactly 0.3, no flow signal, score < 70;
    [20, 25) two whale buys: too few for MOD-006, consensus scored but low.
    ETH: three whale sells in its first window, no volume history: distribution (ratio 0), and a
    consensus score of exactly 70 (0.3 whale + 0.4 flow, no volume component), which is not flagged."""
    out = []
    for m in range(10):
        out += [
            trade(at=m * 60 + 5 + k, quote_volume=50_000 + (m % 2) * 1_000, price=50_000, **BTC)
            for k in (0, 20)
        ]
    out += [trade(at=600 + 5 + k, quote_volume=300_000, price=60_000, **BTC) for k in (0, 10, 20)]
    out += [
        trade(at=900 + 5, quote_volume=350_000, price=70_000, side="sell", **BTC),
        trade(at=900 + 15, quote_volume=350_000, price=70_000, side="sell", **BTC),
        trade(at=900 + 25, quote_volume=300_000, price=60_000, **BTC),
    ]
    out += [trade(at=1200 + 5 + k, quote_volume=150_000, price=50_000, **BTC) for k in (0, 10)]
    out += [trade(at=30 + k, quote_volume=200_000, price=2_000, side="sell", **ETH) for k in (0, 60, 120)]
    return out


def _settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(tier="medium")


def test_flow_direction_and_consensus_exact(spark: Any, make_settings: Callable[..., Settings]) -> None:
    from tests.pipeline.helpers import raw_frame

    settings = _settings(make_settings)
    events = _events()
    results = detect(spark, settings, clean_trades(raw_frame(spark, [line(e) for e in events]), settings))
    at10, at15, at20 = (T0 + timedelta(minutes=m) for m in (10, 15, 20))

    flow = results["MOD-006"]
    assert [(r["symbol"], r["window_start"], r["signal"], r["severity"]) for r in flow.records] == [
        ("ETH-USDT", T0, "distribution", "high"),
        ("BTC-USDT", at10, "accumulation", "high"),
        ("BTC-USDT", at15, None, None),  # exactly 0.3
    ]
    eth, btc10, btc15 = flow.records
    assert (btc10["buy_volume"], btc10["sell_volume"], btc10["net_flow"]) == (
        Decimal(900_000),
        0,
        Decimal(900_000),
    )
    assert (btc15["flow_ratio"], btc15["whale_trades"], btc15["net_flow"]) == (0.3, 3, Decimal(-400_000))
    assert (eth["flow_ratio"], eth["sell_volume"]) == (0.0, Decimal(600_000))
    assert [(a.alert_type, a.symbol, a.severity, a.alert_id) for a in flow.alerts] == [
        ("distribution_signal", "ETH-USDT", "high", alert_id("MOD-006", "ETH-USDT", T0)),
        ("accumulation_signal", "BTC-USDT", "high", alert_id("MOD-006", "BTC-USDT", at10)),
    ]
    accumulation = flow.alerts[1]
    assert accumulation.detected_at == at15
    assert accumulation.exchange == "binance"
    assert accumulation.details["flow_ratio"] == 1.0
    assert accumulation.details["whale_trades"] == 3

    consensus = results["MOD-007"]
    rows = {(r["symbol"], r["window_start"]): r for r in consensus.records}
    assert sorted(rows) == [("BTC-USDT", at10), ("BTC-USDT", at15), ("BTC-USDT", at20), ("ETH-USDT", T0)]
    assert (rows["ETH-USDT", T0]["consensus_score"], rows["ETH-USDT", T0]["flagged"]) == (70.0, False)
    assert rows["ETH-USDT", T0]["direction"] == "bearish"
    low = rows["BTC-USDT", at15]
    assert (low["direction"], low["flow_signal"], low["whale_signal"]) == ("bearish", 0.0, pytest.approx(0.4))
    # minute 15 (1M) is a volume spike of its own: MOD-001's z for it, over 2 × 2.5
    (z15,) = [w["z_score"] for w in results["MOD-001"].records if w["window_start"] == at15 and w["flagged"]]
    assert low["max_volume_z"] == pytest.approx(abs(z15))
    assert low["volume_signal"] == pytest.approx(min(1.0, abs(z15) / 5))
    assert low["consensus_score"] == pytest.approx(30 * low["volume_signal"] + 12.0)
    assert not rows["BTC-USDT", at20]["flagged"]
    (alert,) = consensus.alerts
    assert (alert.alert_type, alert.severity, alert.symbol, alert.detected_at) == (
        "consensus_bullish", "high", "BTC-USDT", at15,
    )  # fmt: skip
    assert alert.alert_id == alert_id("MOD-007", "BTC-USDT", at10)
    d = alert.details
    assert (d["consensus_score"], d["volume_signal"], d["whale_signal"], d["flow_signal"]) == (
        100.0,
        1.0,
        1.0,
        1.0,
    )
    whale_ids = {a.alert_id for a in results["MOD-002"].alerts}
    volume_ids = {a.alert_id for a in results["MOD-001"].alerts}
    volume_id = alert_id("MOD-001", "BTC-USDT", "binance", at10)
    assert volume_id in volume_ids
    btc_whales = [alert_id("MOD-002", e.event_id) for e in events[20:23]]
    assert set(btc_whales) <= whale_ids
    assert d["contributing_alerts"] == [volume_id, *btc_whales, accumulation.alert_id]


def test_detect_cli_medium_tier_writes_both_tables(spark: Any, tmp_path: Path, pipeline_state: Path) -> None:
    from coattail.cli import app

    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(line(e) for e in _events()) + "\n")
    out, tables = tmp_path / "alerts.jsonl", tmp_path / "tables"
    result = CliRunner().invoke(
        app,
        ["detect", "--tier", "medium", "--input", str(events), "--output", str(out), "--tables", str(tables)],
    )
    assert result.exit_code == 0, result.output
    alerts = [json.loads(x) for x in out.read_text().splitlines()]
    kinds = sorted(a["alert_type"] for a in alerts if a["module_id"] in {"MOD-006", "MOD-007"})
    assert kinds == ["accumulation_signal", "consensus_bullish", "distribution_signal"]
    assert {"flow_direction.jsonl", "consensus_signals.jsonl"} <= {p.name for p in tables.iterdir()}
    flow = [json.loads(x) for x in (tables / "flow_direction.jsonl").read_text().splitlines()]
    assert sorted(r["signal"] or "-" for r in flow) == ["-", "accumulation", "distribution"]
    assert all(isinstance(r["buy_volume"], str) for r in flow)  # exact decimals travel as strings
    scores = [json.loads(x) for x in (tables / "consensus_signals.jsonl").read_text().splitlines()]
    assert sorted(r["consensus_score"] for r in scores)[-1] == 100.0


@pytest.mark.services
def test_the_stream_gives_the_batch_alerts(
    spark: Any,
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    dynamodb_endpoint: str,
    unique_name: str,
    aws_local_env: None,
) -> None:
    """The same trades through Kafka and the streaming queries: the same MOD-006/007 alerts and rows."""
    from jobs.framework.runner import PipelineRunner
    from tests.pipeline.helpers import raw_frame
    from tests.pipeline.streamkit import create_topic, dynamo_alerts, iceberg_rows, produce, stream_settings

    create_topic(kafka_bootstrap, unique_name)
    settings = stream_settings(make_settings, kafka_bootstrap, dynamodb_endpoint, unique_name, tier="medium")
    events = _events()
    closer = trade(at=3600, quote_volume=10, price=50_000, **BTC)  # moves the watermark past every window
    batch = detect(spark, settings, clean_trades(raw_frame(spark, [line(e) for e in events]), settings))
    produce(kafka_bootstrap, unique_name, [line(e) for e in [*events, closer]])
    runner = PipelineRunner(spark, settings)
    runner.start()
    try:
        runner.drain(max_rounds=20)
    finally:
        runner.stop()
    medium = {"MOD-006", "MOD-007"}
    expected = sorted(
        (a.alert_id, a.alert_type, a.severity, json.dumps(a.details, sort_keys=True))
        for m in medium
        for a in batch[m].alerts
    )
    hot = sorted(
        (a.alert_id, a.alert_type, a.severity, json.dumps(a.details, sort_keys=True))
        for a in dynamo_alerts(settings)
        if a.module_id in medium
    )
    assert hot == expected
    assert len(expected) == 3
    flow_rows = iceberg_rows(spark, settings, "flow_direction")
    consensus_rows = iceberg_rows(spark, settings, "consensus_signals")
    assert len(flow_rows) == len(batch["MOD-006"].records)
    assert sorted(r["consensus_score"] for r in consensus_rows) == sorted(
        r["consensus_score"] for r in batch["MOD-007"].records
    )
