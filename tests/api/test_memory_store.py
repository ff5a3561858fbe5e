"""Handler-level API tests on the in-memory hot store, injected with a FastAPI dependency override.

No server at all for the handler tests (TestClient, in process); the DynamoDB Local tests in
test_http.py and test_store.py remain the real check. The last test holds the two implementations to
the same answers, so these handler tests mean something.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import get_store
from coattail.hotstore import AlertStore, DynamoAlertStore, MemoryAlertStore, alert_to_item, streams_for
from tests.api.helpers import SYMBOLS, TYPES, api_settings, make_alert, mixed_alerts, newest_first, seed

UNREACHABLE = "http://127.0.0.1:9"  # never contacted: every store access goes to the memory store


@pytest.fixture
def memory() -> MemoryAlertStore:
    return MemoryAlertStore("alerts-in-memory")


@pytest.fixture
def app(memory: MemoryAlertStore) -> FastAPI:
    application = create_app(api_settings(UNREACHABLE, memory.table), store=MemoryAlertStore(memory.table))
    application.dependency_overrides[get_store] = lambda: memory  # the handlers' store
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def walk(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query = dict(params)
    for _ in range(500):
        response = client.get("/alerts", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["items"]) <= int(params.get("limit", 50))
        items += body["items"]
        if not body["next"]:
            return items
        query = {**params, "cursor": body["next"]}
    raise AssertionError("pagination did not end")


def test_listing_is_newest_first_filtered_and_paged(client: TestClient, memory: MemoryAlertStore) -> None:
    now = datetime.now(UTC)
    alerts = mixed_alerts(40, now)
    seed(memory, alerts)
    for params in [
        {},
        {"type": "whale_trade"},
        {"symbol": SYMBOLS[1]},
        {"type": "volume_spike", "symbol": SYMBOLS[0]},
    ]:
        expected = [
            a
            for a in alerts
            if params.get("type") in (None, a.alert_type) and params.get("symbol") in (None, a.symbol)
        ]
        got = walk(client, limit=7, **params)
        assert sorted(a["alert_id"] for a in got) == sorted(newest_first(expected)), params
        times = [a["detected_at"] for a in got]
        assert times == sorted(times, reverse=True)


def test_expired_and_old_alerts_are_left_out(client: TestClient, memory: MemoryAlertStore) -> None:
    fresh = make_alert(1)
    expired = make_alert(2, age=timedelta(hours=2), ttl=timedelta(hours=1))
    old = make_alert(3, age=timedelta(hours=30), ttl=timedelta(hours=48))
    seed(memory, [fresh, expired, old])
    assert [a["alert_id"] for a in walk(client)] == [fresh.alert_id]
    assert {a["alert_id"] for a in walk(client, since="2000-01-01T00:00:00Z")} == {
        fresh.alert_id,
        old.alert_id,
    }
    assert client.get(f"/alerts/{fresh.alert_id}").json()["alert_id"] == fresh.alert_id
    assert client.get(f"/alerts/{expired.alert_id}").status_code == 404
    assert client.get("/metrics/BTC-USDT").json()["anomaly_count"] == 1


def test_an_item_that_is_not_an_alert_is_skipped(client: TestClient, memory: MemoryAlertStore) -> None:
    good = make_alert(1)
    broken = alert_to_item(make_alert(2))
    del broken["message"]
    memory.put_items([broken])
    seed(memory, [good])
    assert [a["alert_id"] for a in walk(client)] == [good.alert_id]


def test_cursor_from_another_query_is_422(client: TestClient, memory: MemoryAlertStore) -> None:
    seed(memory, mixed_alerts(12, datetime.now(UTC)))
    first = client.get("/alerts", params={"limit": 2, "type": "whale_trade"}).json()
    assert first["next"]
    other = client.get("/alerts", params={"limit": 2, "type": "volume_spike", "cursor": first["next"]})
    assert other.status_code == 422
    assert "cursor" in other.json()["detail"]


def test_readyz_names_the_table(client: TestClient, memory: MemoryAlertStore) -> None:
    assert client.get("/readyz").json() == {"status": "ready", "table": memory.table}


@pytest.mark.services
def test_memory_store_answers_like_dynamodb(store: DynamoAlertStore, memory: MemoryAlertStore) -> None:
    """Same items, same pages: order, filters, TTL and cursors of both implementations agree."""
    now = datetime.now(UTC)
    alerts = mixed_alerts(60, now) + [
        make_alert(500 + n, alert_type=list(TYPES)[n % 3], age=timedelta(hours=n % 5), ttl=timedelta(0))
        for n in range(15)
    ]
    both: list[AlertStore] = [store, memory]
    for s in both:
        seed(s, alerts)
    since = now - timedelta(hours=24)
    for alert_type, symbol in [
        (None, None),
        ("whale_trade", None),
        ("whale_trade", SYMBOLS[1]),
        (None, SYMBOLS[2]),
    ]:
        streams = streams_for(alert_type, symbol, list(TYPES))
        walks = [[a["alert_id"] for a in s.walk(streams, since, now, 10_000, chunk=5)] for s in both]
        assert sorted(walks[0]) == sorted(walks[1]), (alert_type, symbol)
        pages = [s.page(streams, since, 9, now) for s in both]
        assert [a["detected_at"] for a in pages[0].items] == [a["detected_at"] for a in pages[1].items]
        assert (pages[0].positions is None) == (pages[1].positions is None)
    for alert in alerts[:3] + alerts[-2:]:
        assert store.get(alert.alert_id, now) == memory.get(alert.alert_id, now)
