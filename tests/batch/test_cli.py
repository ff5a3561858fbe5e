"""`coattail batch` commands: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from jobs.batch.cli import app
from tests.batch.conftest import LoadSettings
from tests.batch.fakes import FakeBinance, make_trades, serve_binance

pytestmark = [pytest.mark.unit, pytest.mark.services]
START_MS = 1_767_571_200_000  # 2026-01-05T00:00:00Z


def test_backfill_then_quality_of_an_incomplete_day_exits_1(
    make_settings: LoadSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_settings()  # the private state folder
    rows = make_trades(START_MS, START_MS + 3_600_000, 500)
    runner = CliRunner()
    with serve_binance(FakeBinance({"BTCUSDT": rows})) as url:
        monkeypatch.setenv("COATTAIL_CONNECTORS__BINANCE__REST_URL", url)
        loaded = runner.invoke(
            app,
            ["backfill", "--symbol", "BTC-USDT", "--start", "2026-01-05", "--end", "2026-01-05T01:00:00Z"],
        )
    assert loaded.exit_code == 0, loaded.output
    assert json.loads(loaded.stdout)[0]["added"] == 500
    checked = runner.invoke(app, ["quality", "--date", "2026-01-05"])
    assert checked.exit_code == 1  # one hour of one symbol is far from a complete day
    report = json.loads(checked.stdout)
    assert report["passed"] is False
    assert report["rows"] == 500
    assert {c["name"] for c in report["checks"]} == {
        "completeness", "duplicates", "ranges", "freshness", "dead_letters",
    }  # fmt: skip
    assert "quality check failed for 2026-01-05" in checked.stderr
    missing = runner.invoke(
        app, ["reprocess", "--start", "2026-01-05", "--end", "2026-01-06", "--as-of-snapshot", "1"]
    )
    assert missing.exit_code == 1  # checked before any Spark session starts
    assert missing.stderr.startswith("error: raw_trades has no snapshot 1; latest snapshots: ")


def test_bad_arguments_exit_2_with_one_line(make_settings: LoadSettings) -> None:
    make_settings()
    runner = CliRunner()
    result = runner.invoke(app, ["quality", "--date", "yesterday"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --date 'yesterday' is not a date (YYYY-MM-DD)"
    result = runner.invoke(app, ["run", "daily", "--steps", "backfill,nap"])
    assert result.exit_code == 2
    assert "unknown step(s) nap" in result.stderr
