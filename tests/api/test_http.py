"""The REST API over HTTP (uvicorn on a free port) against DynamoDB Local."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from coattail.hotstore import DynamoAlertStore
from coattail.hotstore.windows import DynamoWindowStore
from coattail.panels import WindowPoint
from tests.api.helpers import (
    SYMBOLS,
    TYPES,
    LiveServer,
    api_settings,
    free_socket,
    local_store,
    make_alert,
    mixed_alerts,
    newest_first,
    seed,
    serve,
)

pytestmark = pytest.mark.services


def walk(client: httpx.Client, **params: object) -> list[dict[str, object]]:
    """Every page of GET /alerts with these filters, checking each page on the way."""
    items: list[dict[str, object]] = []
    query: dict[str, object] = dict(params)
    for _ in range(500):
        response = client.get("/alerts", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["items"]) <= int(str(params.get("limit", 50)))
        items += body["items"]
        if not body["next"]:
            return items
        query = {**params, "cursor": body["next"]}
    raise AssertionError("pagination did not end")


def test_filters_ordering_limits_and_cursor_walks(live: LiveServer, store: DynamoAlertStore) -> None:
    now = datetime.now(UTC)
    alerts = mixed_alerts(75, now)
    old = make_alert(900, age=timedelta(hours=30), ttl=timedelta(hours=48))  # older than the 24 h default
    seed(store, [*alerts, old])
    with live.client() as client:
        # Default: everything of the last 24 hours, newest first, 50 per page.
        first = client.get("/alerts").json()
        ordered = sorted(alerts, key=lambda a: a.detected_at, reverse=True)
        # Pairs share a detected_at (ties come in either order): compare times, then membership.
        assert [a["detected_at"] for a in first["items"]] == [
            a.model_dump(mode="json")["detected_at"] for a in ordered[:50]
        ]
        assert {a["alert_id"] for a in first["items"]} <= set(newest_first(alerts)[:51])
        assert first["next"]
        for params in [
            {},
            {"type": "whale_trade"},
            {"symbol": "ETH-USDT"},
            {"type": "volume_spike", "symbol": "BTC-USD"},
        ]:
            for limit in (1, 7, 200):
                got = walk(client, limit=limit, **params)
                expected = [
                    a
                    for a in alerts
                    if params.get("type") in (None, a.alert_type) and params.get("symbol") in (None, a.symbol)
                ]
                ids = [a["alert_id"] for a in got]
                assert len(ids) == len(set(ids)), f"duplicates for {params} limit={limit}"
                assert sorted(ids) == sorted(a.alert_id for a in expected), f"gap for {params} limit={limit}"
                times = [str(a["detected_at"]) for a in got]
                assert times == sorted(times, reverse=True)
        # since reaches back past 24 h and bounds from below.
        since = (now - timedelta(hours=31)).isoformat()
        assert old.alert_id in [a["alert_id"] for a in walk(client, since=since, limit=200)]
        recent = client.get(
            "/alerts", params={"since": (now - timedelta(hours=2)).isoformat(), "limit": 200}
        ).json()
        assert {a["alert_id"] for a in recent["items"]} == {
            a.alert_id for a in alerts if a.detected_at >= now - timedelta(hours=2)
        }
        # The item is the Alert contract, detected_at with microseconds and Z (27 characters).
        item = client.get(f"/alerts/{alerts[0].alert_id}").json()
        assert item == alerts[0].model_dump(mode="json")


def test_expired_alerts_are_never_returned(live: LiveServer, store: DynamoAlertStore) -> None:
    fresh = make_alert(1)
    expired = make_alert(2, age=timedelta(hours=2), ttl=timedelta(hours=1))  # TTL passed, not yet deleted
    seed(store, [fresh, expired])
    with live.client() as client:
        for params in [
            {},
            {"type": "whale_trade"},
            {"symbol": "BTC-USDT"},
            {"since": "2000-01-01T00:00:00Z"},
        ]:
            assert [a["alert_id"] for a in walk(client, **params)] == [fresh.alert_id]
        assert client.get(f"/alerts/{expired.alert_id}").status_code == 404
        assert client.get("/metrics/BTC-USDT").json()["anomaly_count"] == 1


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/alerts?limit=0", "limit"),
        ("/alerts?limit=201", "limit"),
        ("/alerts?limit=ten", "limit"),
        ("/alerts?since=yesterday", "since"),
        ("/alerts?since=2026-01-02T03:04:05", "UTC offset"),
        ("/alerts?cursor=garbage", "cursor"),
        ("/alerts?type=Not-A-Type", "type"),
        ("/alerts?symbol=btcusdt", "symbol"),
        ("/metrics/btc?since=x", "symbol"),
        ("/alerts/" + "x" * 65, "alert_id"),
    ],
)
def test_bad_parameters_are_422_with_a_reason(live: LiveServer, path: str, fragment: str) -> None:
    with live.client() as client:
        response = client.get(path)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert fragment in detail


def test_cursor_is_tamper_evident_and_bound_to_its_query(live: LiveServer, store: DynamoAlertStore) -> None:
    seed(store, mixed_alerts(12, datetime.now(UTC)))
    with live.client() as client:
        token = client.get("/alerts", params={"limit": 2, "type": "whale_trade"}).json()["next"]
        body, mac = token.split(".")
        forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
        cases = [
            ({"type": "whale_trade", "cursor": forged}, "altered"),
            ({"type": "volume_spike", "cursor": token}, "other type/symbol"),
            ({"cursor": token}, "other type/symbol"),
            ({"type": "whale_trade", "cursor": token, "since": "2020-01-01T00:00:00Z"}, "since"),
        ]
        for params, fragment in cases:
            response = client.get("/alerts", params=params)
            assert response.status_code == 422, params
            assert fragment in response.json()["detail"]
        assert (
            client.get("/alerts", params={"type": "whale_trade", "cursor": token, "limit": 2}).status_code
            == 200
        )


def test_unknown_alert_is_404(live: LiveServer) -> None:
    with live.client() as client:
        response = client.get("/alerts/no-such-alert")
    assert response.status_code == 404
    assert "no-such-alert" in response.json()["detail"]


def test_symbol_metrics_and_alert_types(live: LiveServer, store: DynamoAlertStore) -> None:
    now = datetime.now(UTC)
    alerts = [
        make_alert(1, alert_type="volume_spike", symbol="BTC-USDT", age=timedelta(minutes=9), now=now),
        make_alert(2, alert_type="volume_spike", symbol="BTC-USDT", age=timedelta(minutes=3), now=now),
        make_alert(3, alert_type="whale_trade", symbol="BTC-USDT", age=timedelta(minutes=5), now=now),
        make_alert(4, alert_type="spread_divergence", symbol="BTC-USDT", age=timedelta(minutes=1), now=now),
        make_alert(5, alert_type="whale_trade", symbol="ETH-USDT", age=timedelta(minutes=1), now=now),
    ]
    seed(store, alerts)
    # Every window of the last hour (flagged or not) through the real recent-windows partition.
    windows = DynamoWindowStore(store)
    start = now.replace(second=0, microsecond=0)
    points = [
        WindowPoint("MOD-001", "BTC-USDT", "volume binance", start - timedelta(minutes=m), 1000.0 + m, m == 3)
        for m in range(90)  # 90 minutes: the chart keeps the last hour only
    ]
    assert windows.put_points(points, timedelta(hours=2), now) == 90
    with live.client() as client:
        body = client.get("/metrics/BTC-USDT").json()
        assert body["anomaly_count"] == 4
        assert body["counts_by_type"] == {"volume_spike": 2, "whale_trade": 1, "spread_divergence": 1}
        modules = {m["module_id"]: m for m in body["modules"]}
        assert list(modules) == ["MOD-001", "MOD-002", "MOD-003"]  # every active module, in order
        assert modules["MOD-001"]["latest"]["window_volume"] == alerts[1].details["window_volume"]
        assert modules["MOD-001"]["alert_count"] == 2
        assert modules["MOD-002"]["latest"]["alert_id"] == alerts[2].alert_id
        assert {f["label"]: f["value"] for f in modules["MOD-003"]["figures"]} == {
            "Spread": alerts[3].details["spread_pct"]
        }
        (series,) = body["series"]
        assert (series["module_id"], series["series"]) == ("MOD-001", "volume binance")
        assert [p["value"] for p in series["points"]] == [
            1000.0 + m for m in range(59, -1, -1)
        ]  # oldest first
        assert [p["value"] for p in series["points"] if p["flagged"]] == [1003.0]
        assert body["complete"] is True
        empty = client.get("/metrics/DOGE-USDT").json()
        assert empty["anomaly_count"] == 0
        assert all(m["latest"] is None for m in empty["modules"])
        assert empty["series"] == []
        types = client.get("/alert-types").json()
        assert [t["alert_type"] for t in types["alert_types"]] == list(TYPES)
        assert client.get("/symbols").json()["symbols"] == sorted(
            [*SYMBOLS, "ETH-USD", "SOL-USD", "SOL-USDT"]
        )
        # Window points are no alerts: neither listings nor the by-id lookup return them.
        listed = client.get("/alerts", params={"limit": 200}).json()["items"]
        assert sorted(a["alert_id"] for a in listed) == sorted(a.alert_id for a in alerts)
        assert client.get("/alerts/windows%23BTC-USDT").status_code == 404


def test_store_outage_is_503_without_a_trace(unique_name: str) -> None:
    closed = free_socket()  # bound but never listening: connections are refused
    endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    app = create_app(api_settings(endpoint, unique_name), store=local_store(endpoint, unique_name))
    try:
        with serve(app) as server, server.client() as client:
            assert client.get("/healthz").status_code == 200
            for path in [
                "/alerts",
                "/alerts?type=whale_trade",
                "/alerts/abc",
                "/metrics/BTC-USDT",
                "/readyz",
            ]:
                response = client.get(path)
                assert response.status_code == 503, path
                detail = response.json()["detail"]
                assert "unreachable" in detail
                assert "Traceback" not in detail
                assert "\n" not in detail
            assert client.get("/alerts/stream").status_code == 503
            metrics = client.get("/internal/metrics").text
            assert "coattail_api_store_errors_total" in metrics
    finally:
        closed.close()


def test_missing_table_is_503_and_readyz_names_it(dynamodb_endpoint: str, unique_name: str) -> None:
    settings = api_settings(dynamodb_endpoint, unique_name, **{"hot_store.create_if_missing": False})
    app = create_app(settings, store=local_store(dynamodb_endpoint, unique_name))
    with serve(app) as server, server.client() as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert unique_name in response.json()["detail"]


def test_table_is_created_on_start_when_allowed(dynamodb_endpoint: str, unique_name: str) -> None:
    store = local_store(dynamodb_endpoint, unique_name)
    app = create_app(api_settings(dynamodb_endpoint, unique_name), store=store)
    with serve(app) as server, server.client() as client:
        assert client.get("/readyz").json() == {"status": "ready", "table": unique_name}
    store.client.delete_table(TableName=unique_name)


def test_api_keys_from_a_secret_file(dynamodb_endpoint: str, store: DynamoAlertStore, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# mounted from a Secret\nkey-one\n\nkey-two\n")
    settings = api_settings(dynamodb_endpoint, store.table, **{"api.api_keys_file": str(keys)})
    with serve(create_app(settings, store=store)) as server, server.client() as client:
        assert client.get("/alerts").status_code == 401
        assert client.get("/alerts", headers={"X-API-Key": "nope"}).json()["detail"] == "invalid API key"
        assert client.get("/alerts", headers={"X-API-Key": "key-two"}).status_code == 200
        assert client.get("/alert-types", headers={"X-API-Key": "key-one"}).status_code == 200
        for open_path in ["/healthz", "/readyz", "/", "/internal/metrics", "/static/dashboard.js"]:
            assert client.get(open_path).status_code == 200, open_path


def test_compression_cors_and_prometheus(dynamodb_endpoint: str, store: DynamoAlertStore) -> None:
    seed(store, mixed_alerts(60, datetime.now(UTC)))
    settings = api_settings(dynamodb_endpoint, store.table, **{"api.cors_origins": ["http://dash.example"]})
    with serve(create_app(settings, store=store)) as server, server.client() as client:
        response = client.get("/alerts", headers={"Accept-Encoding": "gzip", "Origin": "http://dash.example"})
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["access-control-allow-origin"] == "http://dash.example"
        assert len(response.json()["items"]) == 50
        with client.stream("GET", "/alerts", headers={"Accept-Encoding": "gzip"}) as streamed:
            raw = b"".join(streamed.iter_raw())
        assert len(json.loads(gzip.decompress(raw))["items"]) == 50
        metrics = client.get("/internal/metrics").text
        assert 'coattail_api_requests_total{method="GET",route="/alerts",status="200"}' in metrics
