"""Read side of the hot alerts table: the access patterns of seed §9.1/§9.2, newest first, paged.

Every listing is a merge of one or more *streams*; a stream is one Query of a GSI partition
(``alert_type = X`` on type-time-index, or ``symbol = Y`` on symbol-time-index) with the range
condition ``detected_at >= since``, newest first, expired items (``ttl_epoch <= now``) filtered out:

* ``type`` → one stream on type-time-index; ``symbol`` → one stream on symbol-time-index;
* ``type`` + ``symbol`` → the type stream with a FilterExpression on ``symbol``;
* no filter → one type stream per alert type of the active tier, merged newest first (a Scan
  cannot return newest first, so seed §9.1's "Scan with limit" would page in arbitrary order).
  Alerts of types the tier does not register are reachable only with ``type=``.

A page takes at most ``limit`` items from the merge. The cursor records, per stream, the key of the
last item handed out (or that the stream is finished), so walking the pages returns every item once.
FilterExpressions (TTL, the second attribute) can make a Query return fewer items than asked for;
a stream then keeps querying up to ``MAX_ROUNDS`` times per page, after which its last evaluated key
is a *frontier*: other streams' items at or below it wait for a later page, so a page can be short
(and still carry a cursor) but never skips an item.

Blocking boto3 calls: the methods here are synchronous; the routers run them in a threadpool and the
fan-out over several streams uses this store's own small thread pool.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from anyio import to_thread
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from api.store.table import SYMBOL_INDEX, TYPE_INDEX, Item, ensure_table, item_to_json, time_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ROUNDS = 8  # Query calls per stream per page before the page is cut short at a frontier
DONE = "done"


class StoreUnavailableError(RuntimeError):
    """DynamoDB could not be reached or refused the request; the message is one short sentence."""


@dataclass(frozen=True)
class StreamSpec:
    """One Query source: a GSI partition, optionally filtered on a second attribute."""

    name: str  # stable id used in cursors, e.g. "type:whale_trade"
    index: str
    hash_attr: str
    hash_value: str
    filter_attr: str | None = None
    filter_value: str | None = None


# A stream's position in a cursor: [alert_id, detected_at] of the last item handed out, "done", or None.
Position = list[str] | str | None


@dataclass
class Page:
    items: list[dict[str, Any]]
    positions: dict[str, Position] | None  # None: no further page
    skipped: int = 0  # items that were not alerts (bad data) and were left out


@dataclass
class _Fetched:
    items: list[Item] = field(default_factory=list)
    frontier: Item | None = None  # LastEvaluatedKey when the stream stopped early
    exhausted: bool = False


def streams_for(alert_type: str | None, symbol: str | None, all_types: Sequence[str]) -> list[StreamSpec]:
    """The streams that answer a listing with these filters (see the module docstring)."""
    if alert_type and symbol:
        return [StreamSpec(f"type:{alert_type}", TYPE_INDEX, "alert_type", alert_type, "symbol", symbol)]
    if alert_type:
        return [StreamSpec(f"type:{alert_type}", TYPE_INDEX, "alert_type", alert_type)]
    if symbol:
        return [StreamSpec(f"symbol:{symbol}", SYMBOL_INDEX, "symbol", symbol)]
    return [StreamSpec(f"type:{t}", TYPE_INDEX, "alert_type", t) for t in all_types]


def make_client(
    endpoint_url: str | None, region: str, *, pool: int = 20, timeout: float = 5.0, retries: int = 2
) -> DynamoDBClient:
    """A DynamoDB client with a bounded connection pool, short timeouts and few retries.

    A request must fail fast enough to answer 503 well inside a client's or probe's timeout.
    """
    config = Config(
        max_pool_connections=pool,
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": retries, "mode": "standard"},
        tcp_keepalive=True,
    )
    session = boto3.session.Session(region_name=region)
    key_id = secret = None
    if endpoint_url and session.get_credentials() is None:
        # A local endpoint (DynamoDB Local) accepts any key; a newcomer should not need AWS credentials.
        key_id = secret = "local"  # noqa: S105 - DynamoDB Local ignores credentials
    client: DynamoDBClient = session.client(
        "dynamodb",
        endpoint_url=endpoint_url or None,
        config=config,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    return client


class AlertStore:
    """One per process: a boto3 client (thread-safe) plus a thread pool for multi-stream fan-out."""

    def __init__(self, client: DynamoDBClient, table: str, *, fanout_threads: int = 8) -> None:
        self.client = client
        self.table = table
        self._pool = ThreadPoolExecutor(max_workers=fanout_threads, thread_name_prefix="alert-store")
        self.endpoint = str(client.meta.endpoint_url)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # -- calls that translate failures into StoreUnavailableError --------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            if code == "ResourceNotFoundException":
                raise StoreUnavailableError(f"alerts table {self.table!r} does not exist") from None
            if code == "ValidationException":
                raise  # our request was wrong: a bug, not an outage
            raise StoreUnavailableError(f"DynamoDB refused {what}: {code}") from None
        except BotoCoreError as exc:
            raise StoreUnavailableError(
                f"DynamoDB at {self.endpoint} is unreachable ({type(exc).__name__})"
            ) from None

    def ensure_table(self) -> bool:
        return self._call("create_table", lambda: ensure_table(self.client, self.table))

    def ping(self) -> None:
        """Raise StoreUnavailableError unless the table answers."""
        self._call("describe_table", lambda: self.client.describe_table(TableName=self.table))

    # -- reads ------------------------------------------------------------------------------------
    def get(self, alert_id: str, now: datetime) -> dict[str, Any] | None:
        """The alert with this id, unless it does not exist or has expired."""
        response = self._call(
            "query",
            lambda: self.client.query(
                TableName=self.table,
                KeyConditionExpression="alert_id = :id",
                FilterExpression="ttl_epoch > :now",
                ExpressionAttributeValues={":id": {"S": alert_id}, ":now": {"N": str(int(now.timestamp()))}},
                Limit=4,
            ),
        )
        for item in response.get("Items", []):
            try:
                return item_to_json(item)
            except (KeyError, ValueError):
                log.warning("item %s is not an alert; ignored", alert_id)
        return None

    def page(
        self,
        streams: Sequence[StreamSpec],
        since: datetime,
        limit: int,
        now: datetime,
        positions: dict[str, Position] | None = None,
    ) -> Page:
        """Up to ``limit`` alerts newest first, continuing from ``positions`` (from the previous page)."""
        positions = positions or {}
        since_key = time_key(since)
        live = [s for s in streams if positions.get(s.name) != DONE]
        jobs = [(s, _start_key(s, positions.get(s.name))) for s in live]
        if len(jobs) == 1:
            fetched = [self._fetch(jobs[0][0], jobs[0][1], since_key, now, limit)]
        else:
            fetched = list(
                self._pool.map(lambda job: self._fetch(job[0], job[1], since_key, now, limit), jobs)
            )
        return _merge(live, fetched, positions, limit, streams)

    async def page_async(
        self,
        streams: Sequence[StreamSpec],
        since: datetime,
        limit: int,
        now: datetime,
        positions: dict[str, Position] | None = None,
    ) -> Page:
        """:meth:`page` for the event loop: each stream's Queries in a worker thread, merged on the loop.

        One thread hop per stream and back, rather than a hop into a worker that then fans out again:
        on a busy node every extra thread wake-up costs scheduler latency.
        """
        positions = positions or {}
        since_key = time_key(since)
        live = [s for s in streams if positions.get(s.name) != DONE]
        fetched = await asyncio.gather(
            *(
                to_thread.run_sync(
                    self._fetch, s, _start_key(s, positions.get(s.name)), since_key, now, limit
                )
                for s in live
            )
        )
        return _merge(live, fetched, positions, limit, streams)

    def walk(
        self, streams: Sequence[StreamSpec], since: datetime, now: datetime, max_items: int, chunk: int = 500
    ) -> Iterator[dict[str, Any]]:
        """Every alert of the streams since ``since``, newest first, stopping after ``max_items``."""
        positions: dict[str, Position] | None = None
        produced = 0
        while produced < max_items:
            page = self.page(streams, since, min(chunk, max_items - produced), now, positions)
            yield from page.items
            produced += len(page.items)
            if page.positions is None:
                return
            positions = page.positions

    def _fetch(
        self, stream: StreamSpec, start: Item | None, since_key: str, now: datetime, want: int
    ) -> _Fetched:
        names = {"#h": stream.hash_attr}
        values: dict[str, Any] = {
            ":h": {"S": stream.hash_value},
            ":since": {"S": since_key},
            ":now": {"N": str(int(now.timestamp()))},
        }
        condition = "ttl_epoch > :now"
        # Ask for one more than needed so an exactly-full last page says "no more" (no LastEvaluatedKey);
        # with a second-attribute filter most evaluated items are dropped, so read more per call.
        batch = want + 1
        if stream.filter_attr:
            names["#f"] = stream.filter_attr
            values[":f"] = {"S": stream.filter_value}
            condition += " AND #f = :f"
            batch = min(1000, max(4 * want, 100))
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": stream.index,
            "KeyConditionExpression": "#h = :h AND detected_at >= :since",
            "FilterExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": batch,
        }
        out = _Fetched()
        for _ in range(MAX_ROUNDS):
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._call("query", lambda: self.client.query(**kwargs))
            out.items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start:
                out.exhausted = True
                return out
            if len(out.items) >= want:
                return out
        out.frontier = start
        return out


def _start_key(stream: StreamSpec, position: Position) -> Item | None:
    if not isinstance(position, list):
        return None
    alert_id, detected_at = position
    return {
        "alert_id": {"S": alert_id},
        "detected_at": {"S": detected_at},
        stream.hash_attr: {"S": stream.hash_value},
    }


def _key_of(item: Item) -> list[str]:
    return [item["alert_id"]["S"], item["detected_at"]["S"]]


def _merge(
    live: Sequence[StreamSpec],
    fetched: Sequence[_Fetched],
    positions: dict[str, Position],
    limit: int,
    streams: Sequence[StreamSpec],
) -> Page:
    # A stream that stopped at a frontier may still hold items at or below the frontier's time, so
    # another stream's item is only safe to hand out when it is strictly newer than that frontier.
    frontiers = {i: f.frontier["detected_at"]["S"] for i, f in enumerate(fetched) if f.frontier is not None}

    def floor_for(i: int) -> str:
        return max((t for j, t in frontiers.items() if j != i), default="")

    floors = [floor_for(i) for i in range(len(fetched))]
    merged = heapq.merge(
        *[[(item["detected_at"]["S"], i, item) for item in f.items] for i, f in enumerate(fetched)],
        key=lambda entry: entry[0],
        reverse=True,
    )
    emitted_per_stream = [0] * len(fetched)
    last: list[Item | None] = [None] * len(fetched)
    items: list[dict[str, Any]] = []
    skipped = 0
    for detected_at, i, item in merged:
        if len(items) >= limit:
            break
        if floors[i] and detected_at <= floors[i]:
            continue  # eligibility is a prefix of each stream, so the rest of stream i waits too
        emitted_per_stream[i] += 1
        last[i] = item
        try:
            items.append(item_to_json(item))
        except (KeyError, ValueError):
            skipped += 1
            log.warning("item %s is not an alert; left out", item.get("alert_id"))

    new_positions: dict[str, Position] = {s.name: positions.get(s.name) for s in streams}
    for i, stream in enumerate(live):
        f = fetched[i]
        all_out = emitted_per_stream[i] == len(f.items)
        if all_out and f.exhausted:
            new_positions[stream.name] = DONE
        elif all_out and f.frontier is not None:
            new_positions[stream.name] = _key_of(f.frontier)
        elif (last_item := last[i]) is not None:
            new_positions[stream.name] = _key_of(last_item)
    finished = all(p == DONE for p in new_positions.values())
    return Page(items=items, positions=None if finished else new_positions, skipped=skipped)
