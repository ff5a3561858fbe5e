"""Item codec of the hot alerts table: Alert <-> low-level DynamoDB item, and the sort-key text.

Items use the low-level attribute format (``{"S": ...}``) because it is what queries return and it
avoids a Decimal round trip for every number; the in-memory store keeps the same items.

``detected_at`` is the contract's own text (``format_utc``: fixed-width ISO-8601 with microseconds
and ``Z``, 27 characters): DynamoDB orders the sort key as a string, and one fixed width makes that
order time order. Items of the older millisecond form (``...00.123Z``, never written as sort keys, but
possible in hand-made or migrated items) are still read: :func:`item_to_json` re-formats them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from coattail.contracts import Alert
from coattail.contracts.types import UTC_TEXT_WIDTH, format_utc

Item = dict[str, Any]  # a low-level item: {"alert_id": {"S": "..."}, ...}


# The sort key of an instant is its contract text: one formatter for both.
time_key = format_utc


def stored_time(text: str) -> str:
    """A stored time in the one fixed form; older forms (milliseconds, an offset) are re-formatted."""
    if len(text) == UTC_TEXT_WIDTH and text[-1] == "Z":
        return text
    return format_utc(datetime.fromisoformat(text))


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


def item_key(item: Mapping[str, Any]) -> tuple[str, str]:
    """The primary key (alert_id, detected_at) of an item."""
    return item["alert_id"]["S"], item["detected_at"]["S"]


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
        "detected_at": stored_time(item["detected_at"]["S"]),
        "message": item["message"]["S"],
        "ttl_epoch": int(item["ttl_epoch"]["N"]),
        "details": orjson.loads(item["details"]["S"]) if "details" in item else {},
    }


def item_to_alert(item: Mapping[str, Any]) -> Alert:
    """A validated Alert from an item (for the pipeline's tests and tools; the API uses item_to_json)."""
    return Alert.model_validate(item_to_json(item))
