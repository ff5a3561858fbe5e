"""The hot store's typed seam: what the pipeline writes through and what the API reads through.

Two implementations: :class:`~coattail.hotstore.dynamodb.DynamoAlertStore` (the real one, DynamoDB or
DynamoDB Local) and :class:`~coattail.hotstore.memory.MemoryAlertStore` (same semantics in a dict,
for handler-level API tests). Reads are synchronous; the API runs them in its threadpool.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from coattail.contracts import Alert
from coattail.errors import CoattailError
from coattail.hotstore.codec import Item
from coattail.hotstore.paging import Fetched, Page, Position, StreamSpec


class StoreUnavailableError(CoattailError):
    """The hot store could not be reached or refused the request; the message is one short sentence."""


class AlertWriter(Protocol):
    """The pipeline's side: idempotent writes (the key is (alert_id, detected_at))."""

    @property
    def table(self) -> str: ...

    @property
    def endpoint(self) -> str: ...

    def ensure_table(self) -> bool:
        """Create the table unless it exists; True when this call created it."""
        ...

    def write(self, alerts: Iterable[Alert]) -> int:
        """Write alerts (replays overwrite); how many distinct items were written."""
        ...

    def close(self) -> None: ...


class AlertReader(Protocol):
    """The API's side: lookups and newest-first pages that never return expired alerts."""

    @property
    def table(self) -> str: ...

    @property
    def endpoint(self) -> str: ...

    def ensure_table(self) -> bool: ...

    def ping(self) -> None:
        """Raise StoreUnavailableError unless the table answers."""
        ...

    def get(self, alert_id: str, now: datetime) -> dict[str, Any] | None:
        """The alert with this id (API JSON form), unless it does not exist or has expired."""
        ...

    def fetch(
        self, stream: StreamSpec, start: Item | None, since_key: str, now: datetime, want: int
    ) -> Fetched:
        """At least ``want`` items of one stream after ``start`` (or to its end, or to a frontier)."""
        ...

    def page(
        self,
        streams: Sequence[StreamSpec],
        since: datetime,
        limit: int,
        now: datetime,
        positions: dict[str, Position] | None = None,
    ) -> Page:
        """Up to ``limit`` alerts newest first, continuing from ``positions`` (from the previous page)."""
        ...

    def walk(
        self, streams: Sequence[StreamSpec], since: datetime, now: datetime, max_items: int, chunk: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Every alert of the streams since ``since``, newest first, stopping after ``max_items``."""
        ...

    def close(self) -> None: ...


class AlertStore(AlertReader, AlertWriter, Protocol):
    """Both sides (the implementations, and tests that seed what they read)."""
