"""The hot store on DynamoDB (or DynamoDB Local): table creation, retried writes, paged reads.

Reads fail fast (the API answers 503 well inside a client's or probe's timeout). Writes and table
creation retry transient failures (connection refused or reset, timeouts, throttling, 5xx) with
backoff for ``retry_seconds`` (the pipeline: ``hot_store.retry_seconds``), so a short store outage
delays alerts instead of stopping the pipeline; then they fail with one line naming the table, the
endpoint and the cause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, WaiterError
from botocore.exceptions import ConnectionError as BotoConnectionError

from coattail.contracts import Alert
from coattail.hotstore.codec import Item, alert_to_item, item_key, item_to_json
from coattail.hotstore.interface import StoreUnavailableError
from coattail.hotstore.paging import Fetched, Page, Position, StreamSpec, read_page, walk
from coattail.hotstore.table import ALERTS_TABLE, table_definition
from coattail.retry import Backoff, retry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_ROUNDS = 8  # Query calls per stream per page before the page is cut short at a frontier
BATCH = 25  # BatchWriteItem's limit
TRANSIENT_CODES = frozenset(
    {
        "InternalServerError",
        "LimitExceededException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ThrottlingException",
        "TransactionInProgressException",
    }
)


class UnprocessedItemsError(Exception):
    """BatchWriteItem accepted the request but left items unwritten (throttling); retried."""


def make_client(
    endpoint_url: str | None, region: str, *, pool: int = 20, timeout: float = 5.0, retries: int = 2
) -> DynamoDBClient:
    """A DynamoDB client with a bounded connection pool, short timeouts and few retries.

    botocore's own retries stay few: callers that must wait longer use :func:`coattail.retry.retry`,
    whose deadline is then the only one.
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


def error_code(exc: BaseException) -> str:
    return str(exc.response.get("Error", {}).get("Code", "error")) if isinstance(exc, ClientError) else ""


def is_transient(exc: BaseException) -> bool:
    """An outage or overload that may pass: worth retrying. A bad request or missing table is not."""
    if isinstance(exc, BotoConnectionError | HTTPClientError | WaiterError | UnprocessedItemsError):
        return True
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return error_code(exc) in TRANSIENT_CODES or status >= 500
    return False


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
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ALERTS_TABLE.ttl_attribute},
        )
    return created


def unique_items(alerts: Iterable[Alert]) -> list[Item]:
    """Items of the alerts with duplicate keys collapsed (last wins): BatchWriteItem rejects a batch
    that names one key twice."""
    unique: dict[tuple[str, str], Item] = {}
    for alert in alerts:
        item = alert_to_item(alert)
        unique[item_key(item)] = item
    return list(unique.values())


class DynamoAlertStore:
    """One per process: a boto3 client (thread-safe) plus a thread pool for multi-stream fan-out.

    ``retry_seconds`` bounds how long writes and :meth:`ensure_table` wait out transient failures (0:
    one attempt). With ``create_if_missing`` a write that finds no table creates it first (a DynamoDB
    Local that restarted empty), otherwise a missing table is an error at once.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        *,
        retry_seconds: float = 0.0,
        create_if_missing: bool = False,
        fanout_threads: int = 8,
        max_rounds: int = MAX_ROUNDS,
        backoff: Backoff = Backoff(),  # noqa: B008 - frozen, so one shared default is safe
    ) -> None:
        self.client = client
        self._table = table
        self.retry_seconds = retry_seconds
        self.create_if_missing = create_if_missing
        self.max_rounds = max_rounds
        self.backoff = backoff
        self._pool = ThreadPoolExecutor(max_workers=fanout_threads, thread_name_prefix="alert-store")
        self._endpoint = str(client.meta.endpoint_url)

    @property
    def table(self) -> str:
        return self._table

    @property
    def endpoint(self) -> str:
        return self._endpoint

    @property
    def name(self) -> str:
        """How messages name this store: ``DynamoDB table 'x' at http://…``."""
        return f"DynamoDB table {self.table!r} at {self.endpoint}"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    # -- failures -> StoreUnavailableError (one line) -------------------------------------------------
    def _translate(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                raise StoreUnavailableError(f"alerts table {self.table!r} does not exist") from None
            if code == "ValidationException":
                raise  # our request was wrong: a bug, not an outage
            raise StoreUnavailableError(f"DynamoDB refused {what}: {code}") from None
        except BotoCoreError as exc:
            raise StoreUnavailableError(
                f"DynamoDB at {self.endpoint} is unreachable ({type(exc).__name__})"
            ) from None
        except UnprocessedItemsError as exc:  # only without retries (retry_seconds 0)
            raise StoreUnavailableError(f"{self.name}: {what}: {exc}") from None

    def _retried(self, what: str, fn: Callable[[], T], retryable: Callable[[BaseException], bool]) -> T:
        if self.retry_seconds <= 0:
            return self._translate(what, fn)
        return self._translate(
            what,
            lambda: retry(
                fn,
                what=f"hot store {self.name}: {what}",
                deadline_seconds=self.retry_seconds,
                retryable=retryable,
                backoff=self.backoff,
                give_up=StoreUnavailableError,
                logger=log,
            ),
        )

    # -- writes -------------------------------------------------------------------------------------
    def ensure_table(self) -> bool:
        return self._retried("create_table", lambda: ensure_table(self.client, self.table), is_transient)

    def wait_ready(self) -> None:
        """Wait (``retry_seconds``) until the table answers; for a table someone else creates."""
        self._retried(
            "describe_table", lambda: self.client.describe_table(TableName=self.table), is_transient
        )

    def write(self, alerts: Iterable[Alert]) -> int:
        """Write alerts in batches of 25; returns how many distinct items were written.

        Idempotent: the key is (alert_id, detected_at) and alert ids are deterministic, so a replay
        overwrites the same item. One deadline for the whole call; a retry resumes where it stopped.
        """
        return self.write_items(unique_items(alerts), "alert(s)")

    def write_items(self, items: list[Item], what: str = "item(s)") -> int:
        """Put ``items`` (distinct keys) in batches of 25 under one retry deadline; returns how many."""
        batches: list[list[Any]] = [
            [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH]]
            for start in range(0, len(items), BATCH)
        ]

        def attempt() -> None:
            while batches:
                try:
                    response = self.client.batch_write_item(RequestItems={self.table: batches[0]})
                except ClientError as exc:
                    if error_code(exc) == "ResourceNotFoundException" and self.create_if_missing:
                        log.warning("alerts table %s is missing; creating it", self.table)
                        ensure_table(self.client, self.table)
                    raise
                left = list(response.get("UnprocessedItems", {}).get(self.table, []))
                if left:
                    batches[0] = left
                    raise UnprocessedItemsError(f"{len(left)} item(s) left unprocessed")
                batches.pop(0)

        def retryable(exc: BaseException) -> bool:
            missing = error_code(exc) == "ResourceNotFoundException" and self.create_if_missing
            return missing or is_transient(exc)

        if items:
            self._retried(f"writing {len(items)} {what}", attempt, retryable)
        return len(items)

    def delete(self, alerts: Iterable[Alert]) -> int:
        """Delete the items of ``alerts`` (their keys), under the write retry deadline; returns how many."""
        return self.delete_keys([item_key(alert_to_item(a)) for a in alerts], "alert(s)")

    def delete_keys(self, keys: Iterable[tuple[str, str]], what: str = "item(s)") -> int:
        """Delete items by (alert_id, detected_at) key, under the write retry deadline; returns how many."""
        unique = list(dict.fromkeys(keys))
        batches: list[list[Any]] = [
            [{"DeleteRequest": {"Key": {"alert_id": {"S": k[0]}, "detected_at": {"S": k[1]}}}} for k in part]
            for part in (unique[i : i + BATCH] for i in range(0, len(unique), BATCH))
        ]

        def attempt() -> None:
            while batches:
                response = self.client.batch_write_item(RequestItems={self.table: batches[0]})
                left = list(response.get("UnprocessedItems", {}).get(self.table, []))
                if left:
                    batches[0] = left
                    raise UnprocessedItemsError(f"{len(left)} item(s) left unprocessed")
                batches.pop(0)

        if unique:
            self._retried(f"deleting {len(unique)} {what}", attempt, is_transient)
        return len(unique)

    # -- reads (fail fast) --------------------------------------------------------------------------
    def ping(self) -> None:
        self._translate("describe_table", lambda: self.client.describe_table(TableName=self.table))

    def get(self, alert_id: str, now: datetime) -> dict[str, Any] | None:
        response = self._translate(
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
        return read_page(self.fetch, streams, since, limit, now, positions, fan_out=self._pool.map)

    def walk(
        self, streams: Sequence[StreamSpec], since: datetime, now: datetime, max_items: int, chunk: int = 500
    ) -> Iterator[dict[str, Any]]:
        return walk(lambda s, n, p: self.page(streams, s, n, now, p), since, max_items, chunk)

    def fetch(
        self, stream: StreamSpec, start: Item | None, since_key: str, now: datetime, want: int
    ) -> Fetched:
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
        out = Fetched()
        for _ in range(self.max_rounds):
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self._translate("query", lambda: self.client.query(**kwargs))
            out.items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start:
                out.exhausted = True
                return out
            if len(out.items) >= want:
                return out
        out.frontier = start
        return out
