"""The DynamoDB hot store (``coattail.hotstore``) the pipeline writes through, against DynamoDB Local."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError

from coattail.hotstore import (
    ALERTS_TABLE,
    DynamoAlertStore,
    StoreUnavailableError,
    ensure_table,
    item_to_alert,
    make_client,
    streams_for,
    table_definition,
    time_key,
)
from coattail.hotstore.dynamodb import is_transient
from coattail.retry import Backoff
from tests.api.helpers import SYMBOLS, TYPES, free_socket, make_alert, mixed_alerts, newest_first

pytestmark = pytest.mark.services


def test_table_matches_seed_design(store: DynamoAlertStore) -> None:
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
    assert ttl.get("AttributeName") == "ttl_epoch" == ALERTS_TABLE.ttl_attribute
    assert ensure_table(store.client, store.table) is False  # idempotent


def test_write_is_idempotent_and_round_trips(store: DynamoAlertStore) -> None:
    alert = make_alert(1, alert_type="volume_spike")
    assert store.write([alert, alert]) == 1  # duplicate keys collapse
    store.write([alert])  # a replay rewrites the same item
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
    store: DynamoAlertStore, monkeypatch: pytest.MonkeyPatch
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
    store.write(alerts + expired)
    monkeypatch.setattr(store, "max_rounds", 1)
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


def test_write_waits_out_an_outage_then_fails_with_one_line(unique_name: str) -> None:
    closed = free_socket()  # bound but never listening: connections are refused
    endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    client = make_client(endpoint, "us-west-2", timeout=1, retries=1)
    store = DynamoAlertStore(
        client, unique_name, retry_seconds=1.5, backoff=Backoff(initial=0.1, maximum=0.3)
    )
    started = time.monotonic()
    with closed, pytest.raises(StoreUnavailableError) as caught:
        store.write([make_alert(1)])
    message = str(caught.value)
    assert time.monotonic() - started >= 1.5
    assert "\n" not in message
    assert f"DynamoDB table {unique_name!r} at {endpoint}" in message
    assert "still failing after 2 s" in message or "still failing after 1 s" in message
    assert "EndpointConnectionError" in message
    store.close()


def test_write_recreates_a_table_that_vanished(dynamodb_endpoint: str, unique_name: str) -> None:
    """A DynamoDB Local that restarted in memory has no table: with create_if_missing the write makes it."""
    client = make_client(dynamodb_endpoint, "us-west-2", timeout=10, retries=2)
    strict = DynamoAlertStore(client, unique_name, retry_seconds=5)
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        strict.write([make_alert(1)])  # not retried: nothing will create it
    store = DynamoAlertStore(client, unique_name, retry_seconds=30, create_if_missing=True)
    try:
        assert store.write([make_alert(1), make_alert(2)]) == 2
        assert len(client.scan(TableName=unique_name)["Items"]) == 2
    finally:
        client.delete_table(TableName=unique_name)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ReadTimeoutError(endpoint_url="http://x"), True),
        (_client_error("ThrottlingException", 400), True),
        (_client_error("ProvisionedThroughputExceededException", 400), True),
        (_client_error("InternalServerError", 500), True),
        (_client_error("SomethingNew", 503), True),
        (_client_error("ValidationException", 400), False),
        (_client_error("ResourceNotFoundException", 400), False),
        (_client_error("AccessDeniedException", 400), False),
        (NoCredentialsError(), False),
        (ValueError("a bug"), False),
    ],
)
def test_what_counts_as_an_outage(exc: Exception, transient: bool) -> None:
    assert is_transient(exc) is transient
