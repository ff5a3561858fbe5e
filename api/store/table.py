"""The hot alerts table (seed §3.4): its definition, idempotent creation, writes and item codec.

The pipeline's AlertRouter writes through :func:`put_alerts`; the alert service reads the same items.
Items use the low-level DynamoDB attribute format (a boto3 *client*, not a resource) because it is
what the queries return and it avoids a Decimal round trip for every number.

``detected_at`` is stored as fixed-width ISO-8601 with microseconds and ``Z`` (27 characters, see
:func:`time_key`): DynamoDB orders the sort key as a string, and the contract's serialisation drops
to milliseconds when the microseconds are zero, so ``...00.123Z`` would sort after ``...00.123456Z``.
Readers get the contract form back through :func:`item_to_json`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from coattail.contracts import Alert

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

TYPE_INDEX = "type-time-index"
SYMBOL_INDEX = "symbol-time-index"
TTL_ATTRIBUTE = "ttl_epoch"
Item = dict[str, Any]  # a low-level item: {"alert_id": {"S": "..."}, ...}
_BATCH = 25  # BatchWriteItem's limit


def table_definition(name: str) -> dict[str, Any]:
    """Keyword arguments for ``create_table``: PK alert_id, SK detected_at, two GSIs, on demand."""

    def gsi(index: str, hash_attr: str) -> dict[str, Any]:
        return {
            "IndexName": index,
            "KeySchema": [
                {"AttributeName": hash_attr, "KeyType": "HASH"},
                {"AttributeName": "detected_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }

    return {
        "TableName": name,
        "AttributeDefinitions": [
            {"AttributeName": attr, "AttributeType": "S"}
            for attr in ("alert_id", "detected_at", "alert_type", "symbol")
        ],
        "KeySchema": [
            {"AttributeName": "alert_id", "KeyType": "HASH"},
            {"AttributeName": "detected_at", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [gsi(TYPE_INDEX, "alert_type"), gsi(SYMBOL_INDEX, "symbol")],
        "BillingMode": "PAY_PER_REQUEST",
    }


def ensure_table(client: DynamoDBClient, name: str, *, wait_seconds: float = 60) -> bool:
    """Create the table (and its TTL setting) unless it exists. True when this call created it.

    Safe to race with another process: losing the create race is treated like "it exists".
    """
    try:
        client.describe_table(TableName=name)
        return False
    except client.exceptions.ResourceNotFoundException:
        pass
    try:
        client.create_table(**table_definition(name))
        created = True
    except client.exceptions.ResourceInUseException:
        created = False
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": max(1, int(wait_seconds))}
    )
    if created:
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
    return created


def put_alerts(client: DynamoDBClient, table: str, alerts: Iterable[Alert], *, max_retries: int = 8) -> int:
    """Write alerts in batches of 25; returns how many distinct items were written.

    Idempotent: the key is (alert_id, detected_at) and alert ids are deterministic, so a replay
    overwrites the same item. Duplicate keys inside one call are collapsed (last wins), because
    BatchWriteItem rejects a batch that names one key twice. Unprocessed items are retried with
    exponential backoff; RuntimeError when they still are not written after ``max_retries``.
    """
    unique: dict[tuple[str, str], Item] = {}
    for alert in alerts:
        item = alert_to_item(alert)
        unique[(item["alert_id"]["S"], item["detected_at"]["S"])] = item
    items = list(unique.values())
    for start in range(0, len(items), _BATCH):
        pending: list[Any] = [{"PutRequest": {"Item": item}} for item in items[start : start + _BATCH]]
        for attempt in range(max_retries + 1):
            response = client.batch_write_item(RequestItems={table: pending})
            pending = list(response.get("UnprocessedItems", {}).get(table, []))
            if not pending:
                break
            if attempt == max_retries:
                raise RuntimeError(
                    f"DynamoDB left {len(pending)} alert(s) unprocessed after {attempt} retries"
                )
            time.sleep(min(2.0, 0.05 * 2**attempt))
    return len(items)


def time_key(value: datetime) -> str:
    """Fixed-width sort key text for a UTC instant: ``2026-01-02T03:04:05.678000Z``."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def display_time(key: str) -> str:
    """Contract form of a stored time key: milliseconds unless the microseconds matter."""
    if len(key) == 27 and key.endswith("000Z"):
        return key[:23] + "Z"
    return key


def alert_to_item(alert: Alert) -> Item:
    """Low-level DynamoDB item of an alert; ``details`` is stored as a JSON string (seed §3.2)."""
    item: Item = {
        "alert_id": {"S": alert.alert_id},
        "detected_at": {"S": time_key(alert.detected_at)},
        "alert_type": {"S": alert.alert_type},
        "module_id": {"S": alert.module_id},
        "symbol": {"S": alert.symbol},
        "severity": {"S": alert.severity},
        "message": {"S": alert.message},
        "ttl_epoch": {"N": str(alert.ttl_epoch)},
        "details": {"S": orjson.dumps(alert.details).decode()},
    }
    if alert.exchange is not None:
        item["exchange"] = {"S": alert.exchange}
    return item


def item_to_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """The API's JSON form of an item (the Alert contract's field names and formats).

    Raises KeyError/ValueError on an item that is not an alert; callers skip and count those.
    """
    exchange = item.get("exchange")
    return {
        "alert_id": item["alert_id"]["S"],
        "alert_type": item["alert_type"]["S"],
        "module_id": item["module_id"]["S"],
        "symbol": item["symbol"]["S"],
        "exchange": exchange.get("S") if exchange else None,
        "severity": item["severity"]["S"],
        "detected_at": display_time(item["detected_at"]["S"]),
        "message": item["message"]["S"],
        "ttl_epoch": int(item["ttl_epoch"]["N"]),
        "details": orjson.loads(item["details"]["S"]) if "details" in item else {},
    }


def item_to_alert(item: Mapping[str, Any]) -> Alert:
    """A validated Alert from an item (for the pipeline's tests and tools; the API uses item_to_json)."""
    return Alert.model_validate(item_to_json(item))
