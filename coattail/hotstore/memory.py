"""The hot store in a dict: the same items, order, filters, TTL and cursors as DynamoDB.

For handler-level API tests (FastAPI dependency override) and tools that need no server. Streams are
read like the GSIs: one partition per ``alert_type``/``symbol`` value, newest first by the
``detected_at`` key text, ties in key order; a whole stream is read at once (no frontiers).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from coattail.contracts import Alert
from coattail.hotstore.codec import Item, item_key, item_to_json
from coattail.hotstore.dynamodb import unique_items
from coattail.hotstore.paging import Fetched, Page, Position, StreamSpec, read_page, walk


def _live(item: Item, now: datetime) -> bool:
    return int(item["ttl_epoch"]["N"]) > int(now.timestamp())  # as the Queries' ttl_epoch > :now


class MemoryAlertStore:
    def __init__(self, table: str = "memory-alerts") -> None:
        self._table = table
        self._items: dict[tuple[str, str], Item] = {}
        self._lock = threading.Lock()

    @property
    def table(self) -> str:
        return self._table

    @property
    def endpoint(self) -> str:
        return "memory"

    def close(self) -> None:
        pass

    def ensure_table(self) -> bool:
        return False

    def ping(self) -> None:
        pass

    def write(self, alerts: Iterable[Alert]) -> int:
        items = unique_items(alerts)
        with self._lock:
            self._items.update((item_key(i), i) for i in items)
        return len(items)

    def put_items(self, items: Iterable[Item]) -> None:
        """Raw items, as another writer could leave them (tests of how readers treat bad data)."""
        with self._lock:
            self._items.update((item_key(i), dict(i)) for i in items)

    def get(self, alert_id: str, now: datetime) -> dict[str, Any] | None:
        with self._lock:
            found = [i for (a, _), i in sorted(self._items.items()) if a == alert_id and _live(i, now)]
        for item in found:
            try:
                return item_to_json(item)
            except (KeyError, ValueError):
                continue
        return None

    def fetch(
        self, stream: StreamSpec, start: Item | None, since_key: str, now: datetime, want: int
    ) -> Fetched:
        with self._lock:
            matching = [
                i
                for i in self._items.values()
                if stream.matches(i) and i["detected_at"]["S"] >= since_key and _live(i, now)
            ]
        matching.sort(key=lambda i: (i["detected_at"]["S"], i["alert_id"]["S"]), reverse=True)
        if start is not None:
            after = (start["detected_at"]["S"], start["alert_id"]["S"])
            matching = [i for i in matching if (i["detected_at"]["S"], i["alert_id"]["S"]) < after]
        return Fetched(items=matching[: want + 1], exhausted=len(matching) <= want + 1)

    def page(
        self,
        streams: Sequence[StreamSpec],
        since: datetime,
        limit: int,
        now: datetime,
        positions: dict[str, Position] | None = None,
    ) -> Page:
        return read_page(self.fetch, streams, since, limit, now, positions)

    def walk(
        self, streams: Sequence[StreamSpec], since: datetime, now: datetime, max_items: int, chunk: int = 500
    ) -> Iterator[dict[str, Any]]:
        return walk(lambda s, n, p: self.page(streams, s, n, now, p), since, max_items, chunk)
