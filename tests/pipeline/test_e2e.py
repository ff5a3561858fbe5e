"""End to end: simulator with planted anomalies → Kafka → pipeline (killed mid-run, restarted from its
checkpoint) → every planted whale, volume burst and spread dislocation is an alert in DynamoDB Local and
in Iceberg; nothing lost in ``raw_trades``, no alert twice; false alerts on the background stay small.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from coattail.contracts import Alert, alert_id
from coattail.hotstore import DynamoAlertStore, make_client
from coattail.hotstore.windows import DynamoWindowStore
from coattail.settings import Settings
from jobs import metrics
from jobs.framework.runner import PipelineRunner
from tests.pipeline.helpers import line, trade
from tests.pipeline.streamkit import create_topic, dynamo_alerts, iceberg_rows, produce, stream_settings

pytestmark = [pytest.mark.spark, pytest.mark.services]
START = "2026-01-05T10:00:00Z"
MINUTES = 20
MAX_FALSE_ALERTS = 3  # stated budget for alerts on the unplanted background (observed: see report)
CONSENSUS_TYPE = {"accumulation": "consensus_bullish", "distribution": "consensus_bearish"}


def _coattail(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "coattail", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def _replay(path: Path, env: dict[str, str]) -> int:
    err = _coattail("connectors", "replay", str(path), "--fast", env=env)
    match = re.search(r"(\d+) trades written", err)
    assert match, err
    return int(match.group(1))


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _classify(alerts: list[Alert], truth: dict[str, Any]) -> tuple[dict[str, set[str]], list[Alert]]:
    """Which planted facts each alert explains, and the alerts that explain nothing (false alerts)."""
    whales = {alert_id("MOD-002", w["event_id"]) for w in truth["whales"]}
    bursts = {
        alert_id("MOD-001", b["symbol"], b["exchange"], _when(b["window_start"]))
        for b in truth["volume_bursts"]
    }
    whale_windows = {
        alert_id("MOD-001", w["symbol"], w["exchange"], _when(w["window_start"]))
        for w in truth["whale_windows"]
    }
    # Medium tier: each flow episode's MOD-006 signal, and MOD-007's where the episode plants consensus.
    flows = {
        alert_id("MOD-006", e["symbol"], _when(e["window_start"])): f"{e['direction']}_signal"
        for e in truth.get("flow_episodes", [])
    }
    consensus = {
        alert_id("MOD-007", e["symbol"], _when(e["window_start"])): CONSENSUS_TYPE[e["direction"]]
        for e in truth.get("flow_episodes", [])
        if e["consensus"]
    }
    found: dict[str, set[str]] = {"whales": set(), "bursts": set(), "spreads": set(), "flows": set(),
                                  "consensus": set()}  # fmt: skip
    false: list[Alert] = []
    for a in alerts:
        if flows.get(a.alert_id) == a.alert_type:
            found["flows"].add(a.alert_id)
        elif consensus.get(a.alert_id) == a.alert_type:
            found["consensus"].add(a.alert_id)
        elif a.alert_id in whales:
            found["whales"].add(a.alert_id)
        elif a.alert_id in bursts:
            found["bursts"].add(a.alert_id)
        elif a.alert_id in whale_windows:
            continue  # a whale lifts its own window's volume: explained, not false
        elif a.module_id == "MOD-003" and (hit := _dislocation(a, truth)):
            found["spreads"].add(hit)
        else:
            false.append(a)
    return found, false


def _dislocation(a: Alert, truth: dict[str, Any]) -> str | None:
    start = _when(a.details["window_start"])
    for d in truth["spread_dislocations"]:
        pair = (a.details["instrument_a"], a.details["instrument_b"]) == (d["a"], d["b"])
        if pair and _when(d["start"]) <= start < _when(d["end"]):
            return f"{d['a']}|{d['start']}"
    return None


@pytest.mark.parametrize("tier", ["small", "medium"])
def test_simulated_market_end_to_end_with_restart(
    tier: str,
    spark: Any,
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    dynamodb_endpoint: str,
    unique_name: str,
    aws_local_env: None,
    tmp_path: Path,
) -> None:
    create_topic(kafka_bootstrap, unique_name, partitions=3)
    settings = stream_settings(
        make_settings,
        kafka_bootstrap,
        dynamodb_endpoint,
        unique_name,
        # Small batches on every query, the lake path's too: the kill falls mid-stream.
        **{
            "pipeline.max_offsets_per_trigger": 1500,
            "pipeline.lake_max_offsets_per_trigger": 1500,
            "tier": tier,
        },
    )
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "COATTAIL_STREAM__KAFKA__TOPIC": unique_name,
    }
    raw, truth_file = tmp_path / "raw.jsonl", tmp_path / "truth.json"
    _coattail(
        "simulate", "--seed", "7", "--minutes", str(MINUTES), "--rate", "8", "--start", START,
        "--out", str(raw), "--truth", str(truth_file), env=env,
    )  # fmt: skip
    truth = json.loads(truth_file.read_text())
    assert all(truth[k] for k in ("whales", "volume_bursts", "spread_dislocations"))
    lines = raw.read_text().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(lines[: len(lines) // 2]))
    second.write_text("".join(lines[len(lines) // 2 :]))

    written = _replay(first, env)
    runner = PipelineRunner(spark, settings)
    runner.start()
    ingest = runner.queries[0]
    deadline = time.monotonic() + 180
    while (ingest.lastProgress or {}).get("batchId", -1) < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    for query in runner.queries:  # "kill": no grace, whatever batch is running is interrupted
        query.stop()
    killed_at = metrics.BY_QUERY.get(runner._ids[metrics.INGEST_QUERY], {}).get("processed", 0)

    written += _replay(second, env)
    end = _when(truth["end"])
    sentinel = trade(at=end + timedelta(minutes=5), quote_volume=10, price=60_000)  # closes every window
    produce(kafka_bootstrap, unique_name, [line(sentinel)])
    written += 1
    restarted = PipelineRunner(spark, settings)
    restarted.start()
    try:
        restarted.drain(max_rounds=30)
    finally:
        restarted.stop()

    raw_rows = iceberg_rows(spark, settings, "raw_trades")
    ids = [r["event_id"] for r in raw_rows]
    assert len(ids) == len(set(ids)) == written, f"killed after {killed_at} records"

    lake = [
        Alert.model_validate(
            r | {"details": json.loads(r["details"]), "detected_at": r["detected_at"].replace(tzinfo=UTC)}
        )
        for r in iceberg_rows(spark, settings, "anomaly_alerts")
    ]
    hot = dynamo_alerts(settings)
    assert len({a.alert_id for a in lake}) == len(lake)
    assert sorted(a.alert_id for a in hot) == sorted(a.alert_id for a in lake)

    # Every closed window also reached the recent-windows store (the dashboard's charts), not only the
    # flagged ones: a window point per volume_aggregates row, price and spread points per spread row.
    windows = DynamoWindowStore(
        DynamoAlertStore(make_client(dynamodb_endpoint, "us-west-2"), settings.hot_store.table)
    )
    volume_rows = iceberg_rows(spark, settings, "volume_aggregates")
    points = windows.points("BTC-USDT", _when(START) - timedelta(hours=1), datetime.now(UTC))
    by_series = {(p.module_id, p.series) for p in points}
    assert {("MOD-001", "volume binance"), ("MOD-003", "price binance")} <= by_series
    btc_windows = [r for r in volume_rows if (r["symbol"], r["exchange"]) == ("BTC-USDT", "binance")]
    assert len([p for p in points if p.series == "volume binance"]) == len(btc_windows)
    assert sum(p.flagged for p in points if p.series == "volume binance") == sum(
        r["flagged"] for r in btc_windows
    )

    found, false = _classify(lake, truth)
    assert len(found["whales"]) == len(truth["whales"])
    assert len(found["bursts"]) == len(truth["volume_bursts"])
    assert len(found["spreads"]) == len(truth["spread_dislocations"])
    episodes = truth["flow_episodes"]
    if tier == "medium":  # every planted episode's flow signal, and consensus exactly where planted
        assert {e["consensus"] for e in episodes} == {True, False}
        assert len(found["flows"]) == len(episodes)
        assert len(found["consensus"]) == sum(e["consensus"] for e in episodes)
        flow_rows = {
            (r["symbol"], r["window_start"]) for r in iceberg_rows(spark, settings, "flow_direction")
        }
        assert {(e["symbol"], _when(e["window_start"]).replace(tzinfo=None)) for e in episodes} <= flow_rows
        assert iceberg_rows(spark, settings, "consensus_signals")
    else:
        assert not any(a.module_id in {"MOD-006", "MOD-007"} for a in lake)
    print(
        f"\nE2E: {written} trades, {len(lake)} alerts; planted whales {len(truth['whales'])}, "
        f"bursts {len(truth['volume_bursts'])}, dislocations {len(truth['spread_dislocations'])}, "
        f"flow episodes {len(episodes)} ({sum(e['consensus'] for e in episodes)} with consensus); "
        f"false alerts {len(false)}: "
        f"{[(a.module_id, a.exchange, a.symbol, a.details.get('window_start'), a.details.get('z_score')) for a in false]}"  # noqa: E501
    )
    assert len(false) <= MAX_FALSE_ALERTS
