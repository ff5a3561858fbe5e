"""The API writes one time form (µs, ``Z``, 27 characters) and still reads the older ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.params import parse_since
from api.sse import parse_event_id, position
from coattail.hotstore import item_to_json

pytestmark = pytest.mark.unit

WHEN = datetime(2026, 1, 5, 10, 0, 0, 123000, tzinfo=UTC)
KEY = "2026-01-05T10:00:00.123000Z"


@pytest.mark.parametrize(
    "text", ["2026-01-05T10:00:00.123Z", KEY, "2026-01-05T12:00:00.123+02:00", "2026-01-05 10:00:00.123z"]
)
def test_since_takes_milliseconds_microseconds_and_offsets(text: str) -> None:
    assert parse_since(text, datetime.now(UTC)) == WHEN


@pytest.mark.parametrize("stamp", ["2026-01-05T10:00:00.123Z", KEY, "2026-01-05T11:00:00.123+01:00"])
def test_a_last_event_id_of_either_form_resumes_at_the_same_key(stamp: str) -> None:
    assert parse_event_id(f"{stamp}|a-1") == (KEY, "a-1")


def test_an_old_item_sorts_where_its_time_is() -> None:
    # An item stored with the millisecond form must not sort after a later µs one (the old bug).
    old = {"alert_id": {"S": "a"}, "detected_at": {"S": "2026-01-05T10:00:00.123Z"},
           "alert_type": {"S": "t_t"}, "module_id": {"S": "MOD-001"}, "symbol": {"S": "BTC-USDT"},
           "severity": {"S": "low"}, "message": {"S": "m"}, "ttl_epoch": {"N": "0"}}  # fmt: skip
    new = old | {"alert_id": {"S": "b"}, "detected_at": {"S": "2026-01-05T10:00:00.123456Z"}}
    assert position(item_to_json(old)) < position(item_to_json(new))
    assert item_to_json(old)["detected_at"] == KEY


def test_a_cursor_with_a_millisecond_since_or_position_still_decodes() -> None:
    from api import cursor

    old = cursor.CursorState("2026-01-05T10:00:00.123Z", {"type:t_t": ["a-1", "2026-01-05T10:00:00.123Z"]})
    token = cursor.encode(b"k" * 32, "q", old)
    state = cursor.decode(b"k" * 32, "q", token, ["type:t_t"])
    assert state.since == KEY  # the listing's since is then in the one form
    assert state.positions == old.positions  # the position is the item's own key, kept as stored
    for bad in ("2026-01-05T10:00:00.12Z", "2026-01-05T10:00:00.123+00:00", "2026-01-05T10:00:00.1230Z"):
        with pytest.raises(cursor.CursorError):
            cursor.decode(b"k" * 32, "q", cursor.encode(b"k" * 32, "q", cursor.CursorState(bad, {})), [])
