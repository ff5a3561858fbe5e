"""Reprocessing with time travel, the workflow's branches and catalog upkeep, on one Spark session.

One lake (state folder) and one ``local[2]`` session serve the whole module; each test uses its own
day so the tests do not see each other's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from coattail.settings import Settings, load_settings
from jobs.batch import lake, runs
from jobs.batch.backfill import backfill
from jobs.batch.maintain import maintain
from jobs.batch.metrics import textfile_path
from jobs.batch.quality import check_day
from jobs.batch.reprocess import current_alerts, reprocess
from jobs.batch.spark import batch_session
from jobs.batch.workflow import DailyWorkflow
from tests.batch.fakes import FakeBinance, Recorder, make_trades, serve_binance, serve_recorder

pytestmark = [pytest.mark.spark, pytest.mark.services]

BASE = {
    "batch.retry_backoff_seconds": 0,
    "instruments.coinbase": [],  # the fake serves Binance only; completeness expects what is configured
    "equivalences": {},
}


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@pytest.fixture(scope="module")
def lake_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("batch-lake")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COATTAIL_STATE_DIR", str(state))
        yield state


def settings_for(state: Path, **overrides: Any) -> Settings:
    return load_settings("small", env={"COATTAIL_STATE_DIR": str(state)}, overrides={**BASE, **overrides})


@pytest.fixture(scope="module")
def spark(lake_state: Path) -> Iterator[Any]:
    session = batch_session(settings_for(lake_state), master="local[2]")
    yield session
    session.stop()


def _whale(rows: list[dict[str, Any]], index: int, qty: str) -> None:
    rows[index] = {**rows[index], "q": qty}


def _alert_key(a: Any) -> tuple[str, str, str, str]:
    return (a.alert_id, a.severity, a.message, a.detected_at.isoformat())


def test_time_travel_reprocess_diff_and_swap(lake_state: Path, spark: Any) -> None:
    day = datetime(2026, 1, 5, tzinfo=UTC)
    start, mid, end = day, day + timedelta(hours=1), day + timedelta(hours=2)
    rows = make_trades(_ms(start), _ms(end), 1600, max_qty=0.5)  # ≤ 30K quote: no whales by chance
    first_hour = [i for i, r in enumerate(rows) if r["T"] < _ms(mid)]
    _whale(rows, first_hour[100], "2")  # ~120K: medium
    _whale(rows, first_hour[300], "10")  # ~600K: high (becomes medium under the new bands)
    _whale(rows, first_hour[500], "20")  # ~1.2M: critical
    _whale(rows, len(rows) - 50, "25")  # ~1.5M, in the second hour: arrives after snapshot 1
    with serve_binance(FakeBinance({"BTCUSDT": rows})) as url:
        settings = settings_for(lake_state, **{"connectors.binance.rest_url": url})
        backfill(settings, ["BTC-USDT"], start, mid, flush_rows=500, interactive=False)
        s1 = lake.ensure_table(settings, "raw_trades").current_snapshot()
        assert s1 is not None
        first = reprocess(spark, settings, start, end, snapshot_id=s1.snapshot_id, swap=True)
        assert first.trades_read == len(first_hour)
        whales = sorted(a.severity for a in first.alerts if a.alert_type == "whale_trade")
        assert whales == ["critical", "high", "medium"]
        between = datetime.now(UTC)
        backfill(settings, ["BTC-USDT"], mid, end, flush_rows=500, interactive=False)

    # More data arrived; reading as of snapshot 1 (by id and by time) gives exactly the first result.
    again = reprocess(spark, settings, start, end, snapshot_id=s1.snapshot_id)
    assert sorted(map(_alert_key, again.alerts)) == sorted(map(_alert_key, first.alerts))
    assert again.diff.is_empty
    by_time = reprocess(spark, settings, start, end, as_of=between)
    assert by_time.snapshot_id == s1.snapshot_id
    assert sorted(map(_alert_key, by_time.alerts)) == sorted(map(_alert_key, first.alerts))

    # The planted change: new whale bands and a volume threshold nothing reaches, on all the data.
    changed = settings_for(
        lake_state,
        **{
            "modules.MOD-002.params.severity_bands": [
                {"above": 100000, "severity": "medium"},
                {"above": 1000000, "severity": "high"},
                {"above": 1400000, "severity": "critical"},
            ],
            "modules.MOD-001.params.z_threshold": 1000,
        },
    )
    volume_before = [a for a in first.alerts if a.alert_type == "volume_spike"]
    table = lake.ensure_table(settings, "anomaly_alerts")
    commits_before = len(table.snapshots())
    latest = reprocess(spark, changed, start, end, swap=True)
    counts = latest.diff.counts()
    assert counts["whale_trade"] == {"added": 1, "removed": 0, "changed": 2, "unchanged": 1}
    if volume_before:
        assert counts["volume_spike"] == {
            "added": 0,
            "removed": len(volume_before),
            "changed": 0,
            "unchanged": 0,
        }
    # The swap is one commit, and the range now holds exactly the reprocessed alerts.
    table.refresh()
    assert len(table.snapshots()) == commits_before + 1
    swapped = current_alerts(spark, changed, start, end)
    assert sorted(r["alert_id"] for r in swapped) == sorted(a.alert_id for a in latest.alerts)
    assert {r["severity"] for r in swapped} == {"medium", "high", "critical"}
    reprocessed = spark.table("lake.coattail.anomalies_reprocessed").where(
        f"reprocess_id = '{latest.reprocess_id}'"
    )
    assert reprocessed.count() == len(latest.alerts)


def _full_day(day: date, per_hour: int = 40, seed: int = 3) -> list[dict[str, Any]]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    for hour in range(24):  # every hour covered, so completeness passes on good data
        t0 = _ms(start + timedelta(hours=hour))
        rows += make_trades(t0, t0 + 3_600_000, per_hour, seed=seed + hour, first_id=1_000_000 + len(rows))
    rows[-1] = {**rows[-1], "T": _ms(start + timedelta(days=1)) - 1000}  # fresh up to the day's end
    return rows


def _plant_duplicates(settings: Settings, day: date, count: int) -> None:
    table = lake.ensure_table(settings, "raw_trades")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    trades = table.scan(row_filter=f"timestamp >= '{start.isoformat()}'").to_arrow().slice(0, count)
    assert trades.num_rows == count
    table.append(trades.cast(table.schema().as_arrow()))


def test_workflow_failure_branch_on_planted_bad_data(lake_state: Path, spark: Any) -> None:
    day = date(2026, 1, 6)
    recorder = Recorder()
    with serve_binance(FakeBinance({"BTCUSDT": _full_day(day)})) as url, serve_recorder(recorder) as hook:
        settings = settings_for(
            lake_state,
            **{
                "connectors.binance.rest_url": url,
                "instruments.binance": ["BTC-USDT"],
                "batch.notify": "webhook",
                "batch.webhook_url": hook,
            },
        )
        backfill(settings, ["BTC-USDT"], *_day_range(day), interactive=False)
        assert check_day(settings, day).passed  # good data passes
        _plant_duplicates(settings, day, 30)  # a bad writer: 30 of 960 rows twice (96.9% < 99%)
        result = DailyWorkflow(settings, day, spark_factory=lambda: spark).run()
    assert not result.succeeded
    assert result.failed_step == "quality"
    assert "duplicates" in (result.error or "")
    assert result.attempts["quality"] == 1  # a failed check is a verdict, not retried
    assert "maintain" not in result.attempts
    [message] = recorder.bodies
    assert "failed at quality" in message["text"]
    assert "duplicates" in message["text"]
    metrics = textfile_path(settings).read_text()
    assert 'coattail_batch_run_failure{workflow="daily"} 1.0' in metrics
    history = [r for r in runs.history(settings) if r["run_id"] == result.run_id]
    assert {r["step"]: r["status"] for r in history} == {
        "backfill": "succeeded",
        "reprocess": "succeeded",
        "quality": "failed",
    }


def _day_range(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _live_files(settings: Settings, table: str) -> int:
    t = lake.ensure_table(settings, table)
    return len(t.inspect.files())


def test_workflow_success_and_upkeep_leaves_fewer_readable_files(lake_state: Path, spark: Any) -> None:
    day = date(2026, 1, 7)
    with serve_binance(FakeBinance({"BTCUSDT": _full_day(day, seed=11)})) as url:
        settings = settings_for(
            lake_state, **{"connectors.binance.rest_url": url, "instruments.binance": ["BTC-USDT"]}
        )
        backfill(settings, ["BTC-USDT"], *_day_range(day), flush_rows=100, interactive=False)  # small files
        rows_before = lake.ensure_table(settings, "raw_trades").scan().to_arrow().num_rows
        files_before = _live_files(settings, "raw_trades")
        result = DailyWorkflow(settings, day, spark_factory=lambda: spark).run(
            ("backfill", "reprocess", "quality")
        )
        assert result.succeeded, result.error
        upkeep = {
            t.table: t for t in maintain(spark, settings, older_than=datetime.now(UTC) + timedelta(seconds=1))
        }
    raw = upkeep["raw_trades"]
    assert raw.data_files_after < raw.data_files_before <= files_before
    assert raw.expired_snapshots > 0
    assert _live_files(settings, "raw_trades") == raw.data_files_after
    after = lake.ensure_table(settings, "raw_trades").scan().to_arrow()
    assert after.num_rows == rows_before  # readable, nothing lost
    assert isinstance(after, pa.Table)
    assert 'coattail_batch_run_success{workflow="daily"} 1.0' in textfile_path(settings).read_text()
