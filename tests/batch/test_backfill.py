"""Historical loader against a real local HTTP server: paging, 429 handling, resume, idempotence."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from connectors.binance import BinanceNormalizer, BinanceRest, BinanceSymbols
from connectors.rest import RestError
from jobs.batch import lake
from jobs.batch.backfill import backfill, progress_file
from tests.batch.conftest import LoadSettings
from tests.batch.fakes import FakeBinance, make_trades, serve_binance

pytestmark = [pytest.mark.unit, pytest.mark.services]

START = datetime(2026, 1, 5, tzinfo=UTC)
END = START + timedelta(hours=2)
START_MS = int(START.timestamp() * 1000)


def _history(count: int = 3500) -> list[dict[str, object]]:
    # Trades from 30 min before the range to 30 min after it: the loader must keep exactly the inside.
    return make_trades(START_MS - 1_800_000, START_MS + 9_000_000, count)


def _expected_ids(rows: list[dict[str, object]]) -> set[str]:
    norm = BinanceNormalizer(BinanceSymbols(["BTC-USDT"]))
    end_ms = START_MS + 7_200_000
    inside = [r for r in rows if START_MS <= int(r["T"]) < end_ms]  # type: ignore[call-overload]
    return {norm.rest_agg_trade(r, "BTC-USDT", "2026-01-06T00:00:00.000000Z").event_id for r in inside}


def _table_ids(settings: object) -> list[str]:
    table = lake.catalog(settings).load_table(lake.identifier(settings, "raw_trades"))  # type: ignore[arg-type]
    return table.scan(selected_fields=("event_id",)).to_arrow()["event_id"].to_pylist()


def _raw_zone_ids(state: Path) -> list[str]:
    data = ds.dataset(str(state / "raw"), format="parquet", partitioning="hive")
    return data.to_table(columns=["event_id"])["event_id"].to_pylist()


def test_pages_through_the_range_and_a_second_load_adds_nothing(
    make_settings: LoadSettings, state_dir: Path
) -> None:
    rows = _history()
    fake = FakeBinance({"BTCUSDT": rows})
    with serve_binance(fake) as url:
        settings = make_settings(**{"connectors.binance.rest_url": url})
        [first] = backfill(settings, ["BTC-USDT"], START, END, flush_rows=1000, interactive=False)
        expected = _expected_ids(rows)
        assert first.done
        assert first.added == len(expected) == first.fetched
        ids = _table_ids(settings)
        assert len(ids) == len(set(ids))
        assert set(ids) == expected
        page_calls = [r for r in fake.requests if "fromId" in r]
        assert len(page_calls) >= 3  # several pages of 1000
        assert [int(r["fromId"]) for r in page_calls] == [
            int(page_calls[0]["fromId"]) + 1000 * i for i in range(len(page_calls))
        ]
        assert sorted(_raw_zone_ids(state_dir)) == sorted(expected)
        partitions = {p.parent.name + "/" + p.name for p in (state_dir / "raw").glob("date=*/symbol=*")}
        assert partitions == {"date=2026-01-05/symbol=BTC-USDT"}

        calls = len(fake.requests)
        [again] = backfill(settings, ["BTC-USDT"], START, END, interactive=False)
        assert again.skipped
        assert len(fake.requests) == calls

        progress_file(settings).path.unlink()  # without it the lake's own record resumes the range
        [third] = backfill(settings, ["BTC-USDT"], START, END, interactive=False)
        assert third.added == 0
        assert third.resumed_after is not None
        assert sorted(_table_ids(settings)) == sorted(expected)
        assert sorted(_raw_zone_ids(state_dir)) == sorted(expected)


def test_waits_out_a_429_and_never_provokes_a_418(make_settings: LoadSettings) -> None:
    rows = _history(2500)
    fake = FakeBinance({"BTCUSDT": rows}, throttle_requests={3}, retry_after=1)
    with serve_binance(fake) as url:
        settings = make_settings(**{"connectors.binance.rest_url": url})
        started = time.monotonic()
        [result] = backfill(settings, ["BTC-USDT"], START, END, interactive=False)
        assert time.monotonic() - started >= 1.0
    assert fake.statuses.count(429) == 1
    assert 418 not in fake.statuses
    assert result.throttled == 1
    assert result.done
    assert set(_table_ids(settings)) == _expected_ids(rows)


def test_an_interrupted_run_resumes_without_duplicates_or_gaps(make_settings: LoadSettings) -> None:
    rows = _history(4200)
    fake = FakeBinance({"BTCUSDT": rows}, fail_from_page=3)
    with serve_binance(fake) as url:
        settings = make_settings(**{"connectors.binance.rest_url": url})
        client = BinanceRest(url, max_attempts=2, sleep=lambda s: None)
        with pytest.raises(RestError):
            backfill(settings, ["BTC-USDT"], START, END, flush_rows=1000, interactive=False, client=client)
        partial = _table_ids(settings)
        assert 0 < len(partial) < len(_expected_ids(rows))
        saved = progress_file(settings).get(f"binance:BTC-USDT:{START_MS}:{START_MS + 7_200_000}")
        assert saved.last_id is not None
        assert not saved.done

        fake.fail_from_page = None
        before = len(fake.requests)
        [resumed] = backfill(settings, ["BTC-USDT"], START, END, flush_rows=1000, interactive=False)
        assert resumed.resumed_after == saved.last_id
        first_call = fake.requests[before]
        assert int(first_call["fromId"]) == saved.last_id + 1  # no re-read of committed pages
        ids = _table_ids(settings)
        assert len(ids) == len(set(ids))
        assert set(ids) == _expected_ids(rows)
        assert resumed.done
        assert resumed.added == len(ids) - len(partial)


def test_bad_arguments_are_one_line_errors(make_settings: LoadSettings) -> None:
    settings = make_settings()
    with pytest.raises(ValueError, match="must be after"):
        backfill(settings, ["BTC-USDT"], END, START)
    with pytest.raises(ValueError, match="not configured"):
        backfill(settings, ["DOGE-USDT"], START, END)


def test_terminal_progress_bar_and_plain_log_lines(
    make_settings: LoadSettings, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    rows = _history(1500)
    with serve_binance(FakeBinance({"BTCUSDT": rows})) as url:
        settings = make_settings(**{"connectors.binance.rest_url": url})
        backfill(settings, ["BTC-USDT"], START, START + timedelta(hours=1), interactive=True)
        assert "binance BTC-USDT" in capsys.readouterr().err  # rich renders the bar on stderr
        caplog.set_level("INFO", logger="jobs.batch")
        backfill(settings, ["BTC-USDT"], START + timedelta(hours=1), END, interactive=False)
    assert any("rows/s" in r.message for r in caplog.records)
    assert any("done," in r.message for r in caplog.records)
