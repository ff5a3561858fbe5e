"""The table helpers the pipeline writes through, against DynamoDB Local."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.store import (
    AlertStore,
    ensure_table,
    item_to_alert,
    put_alerts,
    streams_for,
    table_definition,
    time_key,
)
from api.store import alerts as alerts_module
from tests.api.helpers import SYMBOLS, TYPES, make_alert, mixed_alerts, newest_first

pytestmark = pytest.mark.services


def test_table_matches_seed_design(store: AlertStore) -> None:
    table = store.client.describe_table(TableName=store.table)["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["alert_id", "detected_at"]
    indexes = {
        i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in table["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        "type-time-index": ["alert_type", "detected_at"],
        "symbol-time-index": ["symbol", "detected_at"],
    }
    assert all(i["Projection"]["ProjectionType"] == "ALL" for i in table["GlobalSecondaryIndexes"])
    assert table_definition("x")["BillingMode"] == "PAY_PER_REQUEST"
    ttl = store.client.describe_time_to_live(TableName=store.table)["TimeToLiveDescription"]
    assert ttl.get("AttributeName") == "ttl_epoch"
    assert ensure_table(store.client, store.table) is False  # idempotent


def test_put_alerts_is_idempotent_and_round_trips(store: AlertStore) -> None:
    alert = make_alert(1, alert_type="volume_spike")
    assert put_alerts(store.client, store.table, [alert, alert]) == 1  # duplicate keys collapse
    put_alerts(store.client, store.table, [alert])  # a replay rewrites the same item
    items = store.client.scan(TableName=store.table)["Items"]
    assert len(items) == 1
    assert item_to_alert(items[0]) == alert
    assert isinstance(items[0]["details"]["S"], str)  # details is a JSON string (seed §3.2)


def test_time_key_sorts_like_time() -> None:
    base = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    later = base + timedelta(microseconds=456)
    assert time_key(base) < time_key(later)
    assert len(time_key(base)) == len(time_key(later)) == 27


def test_short_pages_at_a_frontier_still_walk_everything(
    store: AlertStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one Query per page, filters leave pages short; the cursor must still skip nothing."""
    now = datetime.now(UTC)
    alerts = mixed_alerts(90, now)
    # Expired alerts interleaved with live ones, so the TTL filter empties whole Query responses.
    expired = [
        make_alert(
            1000 + n, alert_type=list(TYPES)[n % 3], age=timedelta(hours=n % 20, minutes=3), ttl=timedelta(0)
        )
        for n in range(60)
    ]
    put_alerts(store.client, store.table, alerts + expired)
    monkeypatch.setattr(alerts_module, "MAX_ROUNDS", 1)
    for alert_type, symbol in [
        (None, None),
        ("whale_trade", None),
        ("whale_trade", SYMBOLS[1]),
        (None, SYMBOLS[2]),
    ]:
        streams = streams_for(alert_type, symbol, list(TYPES))
        expected = newest_first(
            [a for a in alerts if alert_type in (None, a.alert_type) and symbol in (None, a.symbol)]
        )
        got = [a["alert_id"] for a in store.walk(streams, now - timedelta(hours=24), now, 10_000, chunk=4)]
        assert sorted(got) == sorted(expected), (alert_type, symbol)
        assert len(got) == len(set(got))
        when = {a.alert_id: a.detected_at for a in alerts}
        times = [when[alert_id] for alert_id in got]
        assert times == sorted(times, reverse=True)
