"""The one timestamp format: UTC, microseconds, ``Z``, fixed width; string order is time order.

Readers still take the older forms (milliseconds, offsets), so data written before keeps loading.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.contracts import dumps, loads_alert, loads_trade
from coattail.contracts.types import (
    TIMESTAMP_CEILING,
    TIMESTAMP_FLOOR,
    UTC_TEXT_WIDTH,
    format_utc,
    parse_utc,
)
from coattail.hotstore import alert_to_item, item_to_alert, item_to_json, time_key
from coattail.panels import WindowPoint
from connectors.trade import (
    CEILING_MS,
    FLOOR_MS,
    FutureLimit,
    MillisFormatter,
    NormalizeError,
    iso_timestamp,
    now_iso,
)

pytestmark = pytest.mark.unit

# Every instant the contracts accept, at microsecond resolution, in any offset.
instants = st.datetimes(
    min_value=TIMESTAMP_FLOOR.replace(tzinfo=None),
    max_value=(TIMESTAMP_CEILING - timedelta(microseconds=1)).replace(tzinfo=None),
    timezones=st.just(UTC),
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timedelta(minutes=m))


@given(a=instants, b=instants)
@settings(max_examples=2000, deadline=None)
def test_string_order_is_time_order(a: datetime, b: datetime) -> None:
    ta, tb = format_utc(a), format_utc(b)
    assert len(ta) == len(tb) == UTC_TEXT_WIDTH
    assert (ta < tb) == (a < b)
    assert (ta == tb) == (a == b)


@given(t=instants, offset=offsets)
@settings(max_examples=1000, deadline=None)
def test_parse_of_format_is_the_instant_in_any_offset(t: datetime, offset: timedelta) -> None:
    shifted = t.astimezone(timezone(offset))
    text = format_utc(shifted)
    assert text.endswith("Z")
    assert text == format_utc(t)
    assert parse_utc(text) == t


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC), "2026-01-02T03:04:05.123000Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2026-01-02T03:04:05.123456Z"),
    ],
)
def test_one_width_whatever_the_digits(when: datetime, text: str) -> None:
    assert format_utc(when) == text
    # The bug this fixes: the ms form "...05.123Z" sorted after "...05.123456Z".
    assert format_utc(when) <= format_utc(datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC))


@pytest.mark.parametrize(
    "old",
    [
        "2025-02-05T10:30:00.123Z",
        "2025-02-05T10:30:00Z",
        "2025-02-05T12:30:00.123+02:00",
        "2025-02-05T10:30:00.123000Z",
    ],
)
def test_readers_take_the_older_forms(old: str) -> None:
    assert parse_utc(old) == datetime(2025, 2, 5, 10, 30, 0, 123000 if ".123" in old else 0, tzinfo=UTC)


def test_a_trade_event_written_in_the_millisecond_form_still_loads() -> None:
    payload = (
        b'{"event_id":"e-1","exchange":"binance","symbol":"BTC-USDT","price":"67432.50","quantity":"0.5",'
        b'"quote_volume":"33716.250","side":"buy","timestamp":"2025-02-05T10:30:00.123Z",'
        b'"ingestion_timestamp":"2025-02-05T10:30:00.456Z"}'
    )
    event = loads_trade(payload)
    assert event.timestamp == datetime(2025, 2, 5, 10, 30, 0, 123000, tzinfo=UTC)
    again = orjson.loads(dumps(event))
    assert again["timestamp"] == "2025-02-05T10:30:00.123000Z"
    assert again["ingestion_timestamp"] == "2025-02-05T10:30:00.456000Z"


def _old_alert_item() -> dict[str, dict[str, str]]:
    # An item as an earlier release could hold it: detected_at in the millisecond form, in details too.
    return {
        "alert_id": {"S": "a-1"},
        "detected_at": {"S": "2025-02-05T10:30:00.123Z"},
        "alert_type": {"S": "whale_trade"},
        "module_id": {"S": "MOD-002"},
        "symbol": {"S": "BTC-USDT"},
        "exchange": {"S": "binance"},
        "severity": {"S": "high"},
        "message": {"S": "whale buy"},
        "ttl_epoch": {"N": "1738837800"},
        "details": {"S": '{"window_end":"2025-02-05T10:30:00.000Z"}'},
    }


def test_an_alert_item_from_before_reads_in_the_one_form() -> None:
    item = _old_alert_item()
    assert item_to_json(item)["detected_at"] == "2025-02-05T10:30:00.123000Z"
    alert = item_to_alert(item)
    assert alert.detected_at == datetime(2025, 2, 5, 10, 30, 0, 123000, tzinfo=UTC)
    assert alert_to_item(alert)["detected_at"]["S"] == "2025-02-05T10:30:00.123000Z"
    assert loads_alert(dumps(alert)) == alert


def test_the_store_keys_are_the_contract_text() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)
    assert time_key(when) == format_utc(when) == "2026-01-02T03:04:05.120000Z"
    point = WindowPoint(module_id="MOD-001", symbol="BTC-USDT", series="volume", t=when, value=1.0)
    assert point.key.split("#", 1)[0] == point.as_json()["t"] == format_utc(when)


# -- the connectors' hot path writes the same text --------------------------------------------------
@given(ms=st.integers(min_value=FLOOR_MS, max_value=CEILING_MS - 1))
@settings(max_examples=2000, deadline=None)
def test_the_hot_path_formatters_write_format_utc_text(ms: int) -> None:
    when = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    assert MillisFormatter()(ms, "T") == format_utc(when)
    ms_form = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"  # how we wrote it before
    assert iso_timestamp(ms_form, "t") == iso_timestamp(format_utc(when), "t") == format_utc(when)
    assert iso_timestamp(when.astimezone(timezone(timedelta(hours=-5))).isoformat(), "t") == format_utc(when)


def test_received_at_must_be_the_one_form() -> None:
    assert len(now_iso()) == UTC_TEXT_WIDTH
    FutureLimit().load(now_iso())
    with pytest.raises(NormalizeError, match=r"received_at: .* is not canonical"):
        FutureLimit().load("2025-02-05T10:30:00.123Z")  # it becomes ingestion_timestamp verbatim
