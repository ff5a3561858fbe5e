"""The recent-windows store: every window's figures (flagged or not) for the last hour, per symbol.

The dashboard's per-symbol charts need price, volume and spread for *every* window, not only the
flagged ones (which are alerts). Points live in the alerts table itself, as short-lived items of
their own partition per symbol: ``alert_id = "windows#<symbol>"``, ``detected_at = <time>#<module>#
<series>``, with ``ttl_epoch`` a couple of hours ahead. They carry neither ``alert_type`` nor
``symbol``, so neither GSI (sparse indexes) and no alert listing ever sees them; one Query of one
partition answers "the last hour of BTC-USDT". No extra table, Terraform resource or IAM grant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from coattail.contracts.types import format_utc
from coattail.hotstore.codec import Item
from coattail.panels import WindowPoint

if TYPE_CHECKING:
    from coattail.hotstore.dynamodb import DynamoAlertStore

PARTITION_PREFIX = "windows#"
MAX_PAGES = 20  # per read: 20 × 1 MB is far more than an hour of windows of one symbol


def partition(symbol: str) -> str:
    return PARTITION_PREFIX + symbol


def point_to_item(point: WindowPoint, ttl_epoch: int) -> Item | None:
    """The item of one point; None for a value DynamoDB cannot hold (NaN, infinity)."""
    if not math.isfinite(point.value):
        return None
    item: Item = {
        "alert_id": {"S": partition(point.symbol)},
        "detected_at": {"S": point.key},
        "ttl_epoch": {"N": str(ttl_epoch)},
        "module_id": {"S": point.module_id},
        "series": {"S": point.series},
        "t": {"S": point.key.split("#", 1)[0]},
        "value": {"N": repr(float(point.value))},
        "flagged": {"BOOL": point.flagged},
    }
    if point.severity:
        item["severity"] = {"S": point.severity}
    return item


def item_to_point(item: Item) -> WindowPoint:
    return WindowPoint(
        module_id=item["module_id"]["S"],
        symbol=item["alert_id"]["S"].removeprefix(PARTITION_PREFIX),
        series=item["series"]["S"],
        t=datetime.fromisoformat(item["t"]["S"]).astimezone(UTC),
        value=float(item["value"]["N"]),
        flagged=bool(item.get("flagged", {}).get("BOOL", False)),
        severity=item.get("severity", {}).get("S"),
    )


class WindowStore(Protocol):
    """Write side (the pipeline) and read side (the API) of the recent-windows store."""

    def put_points(self, points: Iterable[WindowPoint], ttl: timedelta, now: datetime) -> int:
        """Upsert the points (same window, module and series → same item); returns how many."""

    def points(self, symbol: str, since: datetime, now: datetime) -> list[WindowPoint]:
        """The symbol's unexpired points with window start ≥ ``since``, oldest first."""


def _items(points: Iterable[WindowPoint], ttl: timedelta, now: datetime) -> list[Item]:
    ttl_epoch = int((now + ttl).timestamp())
    unique: dict[tuple[str, str], Item] = {}
    for point in points:
        item = point_to_item(point, ttl_epoch)
        if item is not None:  # BatchWriteItem refuses one key twice in a batch: last wins
            unique[(item["alert_id"]["S"], item["detected_at"]["S"])] = item
    return list(unique.values())


class DynamoWindowStore:
    """Points in the alerts table on DynamoDB, written and read through the alert store's client.

    Writes use the alert store's retried batch writes, so an outage is waited out exactly as for alerts.
    """

    def __init__(self, store: DynamoAlertStore) -> None:
        self.store = store
        self.client = store.client
        self.table = store.table

    def put_points(self, points: Iterable[WindowPoint], ttl: timedelta, now: datetime) -> int:
        return self.store.write_items(_items(points, ttl, now), "window point(s)")

    def points(self, symbol: str, since: datetime, now: datetime) -> list[WindowPoint]:
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "alert_id = :p AND detected_at >= :since",
            "FilterExpression": "ttl_epoch > :now",
            "ExpressionAttributeValues": {
                ":p": {"S": partition(symbol)},
                ":since": {"S": format_utc(since)},
                ":now": {"N": str(int(now.timestamp()))},
            },
        }
        out: list[WindowPoint] = []
        for _ in range(MAX_PAGES):
            response = self.client.query(**args)
            out += [item_to_point(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            args["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return out


class MemoryWindowStore:
    """The same semantics in a dict, for handler-level tests and ``coattail detect``."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Item] = {}

    def put_points(self, points: Iterable[WindowPoint], ttl: timedelta, now: datetime) -> int:
        items = _items(points, ttl, now)
        for item in items:
            self._items[(item["alert_id"]["S"], item["detected_at"]["S"])] = item
        return len(items)

    def points(self, symbol: str, since: datetime, now: datetime) -> list[WindowPoint]:
        key, since_key, now_epoch = partition(symbol), format_utc(since), int(now.timestamp())
        return [
            item_to_point(item)
            for (p, sk), item in sorted(self._items.items())
            if p == key and sk >= since_key and int(item["ttl_epoch"]["N"]) > now_epoch
        ]
