"""AlertPublisher: every new alert once to the ``alerts`` topic (Kafka) or stream (Kinesis).

Called by the pipeline right after the hot-store write, so an alert leaves the system as soon as it
exists. The record key (Kafka) / partition key (Kinesis) is the ``alert_id``; the value is the alert's
JSON exactly as the API returns it (``GET /alerts/{id}``), so a consumer needs no second format.

Publish once. The pipeline replays a micro-batch after a crash, so the same alerts can arrive twice.
Each published alert leaves a marker item in the alerts table (``alert_id = "published#<id>"``,
``detected_at = "published"``); alerts whose marker exists are skipped. Markers carry neither
``alert_type`` nor ``symbol``, so neither GSI (sparse indexes) and no alert listing sees them, the same
way ``coattail.hotstore.windows`` keeps its points out of alert reads; ``GET /alerts/published#x``
finds no alert fields and answers 404. A marker is its own item (not an attribute on the alert's item)
because a replay's hot write *replaces* the alert's item and would erase an attribute.

The one crash window left: the broker acknowledged, the process died before the marker was written
(or the store stayed down past ``hot_store.retry_seconds``). The replay then publishes those alerts
again: one duplicate per alert, with the same key, which consumers drop by ``alert_id`` (the webhook
dispatcher does). Likewise, a Kafka delivery that timed out after the broker wrote it is re-sent once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coattail.contracts import Alert
from coattail.contracts.types import format_utc
from coattail.errors import CoattailError
from coattail.hotstore import DynamoAlertStore, Item, StoreUnavailableError, make_client
from coattail.hotstore.codec import alert_to_item, item_to_json
from coattail.hotstore.dynamodb import is_transient
from coattail.retry import Backoff, retry
from coattail.settings import ConfigError, Settings
from coattail.settings.endpoints import dynamodb_endpoint, kafka_bootstrap

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

log = logging.getLogger("jobs.outbound")
MARKER_PREFIX = "published#"
MARKER_SORT_KEY = "published"
# A marker outlives its alert by at least this long, so any replay of the pipeline still finds it.
MIN_MARKER_TTL = timedelta(hours=24)
GET_BATCH = 100  # BatchGetItem's limit
KINESIS_BATCH = 500  # put_records' limit (alerts are far below its 5 MiB)
KAFKA_ATTEMPTS = 3
FATAL_KAFKA_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
        KafkaError.INVALID_CONFIG,
    }
)


class PublishError(CoattailError):
    """Alerts could not be published within ``alerts_out.publish_timeout_seconds`` (one line)."""


class _SomeFailedError(Exception):
    """Some records were not acknowledged: only those are sent again."""


def alert_value(alert: Alert) -> bytes:
    """The alert's JSON as the API returns it (the hot store's item, read back)."""
    return orjson.dumps(item_to_json(alert_to_item(alert)))


def marker_key(alert_id: str) -> dict[str, Any]:
    return {"alert_id": {"S": MARKER_PREFIX + alert_id}, "detected_at": {"S": MARKER_SORT_KEY}}


def marker_item(alert: Alert, destination: str, now: datetime) -> Item:
    ttl = max(alert.ttl_epoch, int((now + MIN_MARKER_TTL).timestamp()))
    return {
        **marker_key(alert.alert_id),
        "ttl_epoch": {"N": str(ttl)},
        "published_at": {"S": format_utc(now)},
        "destination": {"S": destination},
    }


def unique_by_id(alerts: Iterable[Alert]) -> list[Alert]:
    """First alert of each id, in order: a micro-batch may hold one alert twice."""
    seen: dict[str, Alert] = {}
    for alert in alerts:
        seen.setdefault(alert.alert_id, alert)
    return list(seen.values())


class PublishedMarks:
    """The "already published" markers in the alerts table, through the hot store's client."""

    def __init__(self, store: DynamoAlertStore) -> None:
        self.store = store
        self.client: DynamoDBClient = store.client

    def published(self, alert_ids: Sequence[str]) -> set[str]:
        """Which of ``alert_ids`` carry a marker (strongly consistent reads: a marker just written counts)."""
        found: set[str] = set()
        for start in range(0, len(alert_ids), GET_BATCH):
            keys = [marker_key(i) for i in alert_ids[start : start + GET_BATCH]]
            for item in self._get_all(keys):
                found.add(item["alert_id"]["S"].removeprefix(MARKER_PREFIX))
        return found

    def _get_all(self, keys: list[dict[str, Any]]) -> list[Item]:
        table = self.store.table
        pending = keys
        items: list[Item] = []

        def attempt() -> None:
            nonlocal pending
            response: dict[str, Any] = self.client.batch_get_item(  # type: ignore[assignment]
                RequestItems={
                    table: {"Keys": pending, "ConsistentRead": True, "ProjectionExpression": "alert_id"}
                }
            )
            items.extend(response.get("Responses", {}).get(table, []))
            pending = list(response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
            if pending:
                raise _SomeFailedError(f"{len(pending)} key(s) left unprocessed")

        retry(
            attempt,
            what=f"hot store {self.store.name}: reading published markers",
            deadline_seconds=self.store.retry_seconds,
            retryable=lambda exc: isinstance(exc, _SomeFailedError) or is_transient(exc),
            give_up=StoreUnavailableError,
            logger=log,
        )
        return items

    def mark(self, alerts: Sequence[Alert], destination: str, now: datetime) -> int:
        items = [marker_item(a, destination, now) for a in alerts]
        return self.store.write_items(items, "published marker(s)")


def ensure_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 30) -> None:
    """Create ``topic`` if missing (idempotent; losing a creation race is fine): brokers in
    production often refuse to auto-create topics."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": log})
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise ConfigError(
            f"Kafka at {bootstrap} did not answer within {timeout:g} s ({exc.args[0].str()}); "
            "start it with `coattail dev up` or set COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS"
        ) from None
    if topic in existing:
        return
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions)]).values():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    log.info("topic %s ready", topic)


class AlertSink(Protocol):
    """Where alerts are published; ``send`` returns once every record is acknowledged, or raises."""

    @property
    def destination(self) -> str:
        """``kafka:<topic>`` or ``kinesis:<stream>``: stored on the markers, named in errors."""

    def send(self, records: Sequence[tuple[str, bytes]]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class KafkaAlertSink:
    """Idempotent producer, ``acks=all``: the broker has every record on all in-sync replicas once
    :meth:`send` returns. librdkafka retries inside ``message.timeout.ms``; a record still failing
    is produced again (through coattail.retry) up to :data:`KAFKA_ATTEMPTS` times."""

    def __init__(self, bootstrap: str, topic: str, *, timeout: float, partitions: int = 3) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout = timeout
        self.partitions = partitions
        per_attempt_ms = max(1000, int(timeout * 1000 / KAFKA_ATTEMPTS))
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,  # alerts are few and urgent: no batching delay
                "message.timeout.ms": per_attempt_ms,
                "error_cb": lambda err: log.warning("kafka client error: %s", err),
                "logger": log,
            }
        )

    @property
    def destination(self) -> str:
        return f"kafka:{self.topic}"

    def ensure_topic(self) -> None:
        ensure_topic(self.bootstrap, self.topic, self.partitions)

    def send(self, records: Sequence[tuple[str, bytes]]) -> None:
        pending = list(records)
        reasons: list[str] = []

        def attempt() -> None:
            nonlocal pending
            failed: list[tuple[str, bytes]] = []
            refused: list[str] = []  # errors no resend can fix (too large, not authorised)

            def on_delivery(record: tuple[str, bytes]) -> Any:
                def callback(err: KafkaError | None, _msg: Message) -> None:
                    if err is not None:
                        failed.append(record)
                        reasons.append(err.str())
                        if err.fatal() or err.code() in FATAL_KAFKA_CODES:
                            refused.append(err.str())

                return callback

            for record in pending:
                self._produce(record, on_delivery(record))
            left = self._producer.flush(self.timeout)
            if left:  # not even timed out by librdkafka: nothing more can be known now
                raise PublishError(f"{self.destination}: {left} alert(s) still unacknowledged")
            if refused:
                raise PublishError(f"{self.destination} refused {len(refused)} alert(s): {refused[0]}")
            pending = failed
            if failed:
                raise _SomeFailedError(f"{len(failed)} alert(s) not acknowledged ({reasons[-1]})")

        retry(
            attempt,
            what=f"{self.destination} at {self.bootstrap}: publish",
            deadline_seconds=math.inf,  # bounded by attempts, each by message.timeout.ms
            max_attempts=KAFKA_ATTEMPTS,
            retryable=lambda exc: isinstance(exc, _SomeFailedError),
            backoff=Backoff(initial=0.2, maximum=2.0),
            give_up=PublishError,
            logger=log,
        )

    def _produce(self, record: tuple[str, bytes], callback: Any) -> None:
        key, value = record
        while True:
            try:
                self._producer.produce(self.topic, value, key, on_delivery=callback)
                return
            except BufferError:
                self._producer.poll(0.05)  # the client buffer is full: serve deliveries first

    def flush(self) -> None:
        self._producer.flush(self.timeout)

    def close(self) -> None:
        self._producer.flush(min(self.timeout, 5))


class KinesisAlertSink:
    """``put_records`` (partition key = alert_id); only the records that failed are sent again."""

    def __init__(self, client: Any, stream: str, *, max_attempts: int, timeout: float) -> None:
        self.client = client
        self.stream = stream
        self.max_attempts = max_attempts
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> KinesisAlertSink:
        k = settings.stream.kinesis
        name = settings.alerts_out.kinesis_stream_name
        client = boto3.client(
            "kinesis",
            region_name=k.region,
            endpoint_url=k.endpoint_url or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        try:
            client.describe_stream_summary(StreamName=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise ConfigError(
                f"Kinesis stream {name!r} (alerts_out.kinesis_stream_name) is not usable in {k.region} "
                f"({code}); create it with Terraform (infra/) or set alerts_out.enabled: false"
            ) from None
        except BotoCoreError as exc:
            raise ConfigError(f"cannot reach Kinesis in {k.region}: {exc}") from None
        attempts = settings.producer.kinesis_max_attempts
        return cls(client, name, max_attempts=attempts, timeout=settings.alerts_out.publish_timeout_seconds)

    @property
    def destination(self) -> str:
        return f"kinesis:{self.stream}"

    def send(self, records: Sequence[tuple[str, bytes]]) -> None:
        for start in range(0, len(records), KINESIS_BATCH):
            self._send_batch(list(records[start : start + KINESIS_BATCH]))

    def _send_batch(self, batch: list[tuple[str, bytes]]) -> None:
        pending = batch

        def attempt() -> None:
            nonlocal pending
            entries = [{"Data": value, "PartitionKey": key} for key, value in pending]
            try:
                results = self.client.put_records(StreamName=self.stream, Records=entries)["Records"]
            except (ClientError, BotoCoreError) as exc:
                raise _SomeFailedError(f"put_records failed: {exc}") from None  # all of it again
            failed = [(r, res) for r, res in zip(pending, results, strict=True) if "ErrorCode" in res]
            pending = [r for r, _ in failed]
            if failed:
                code = failed[-1][1]
                raise _SomeFailedError(
                    f"{len(failed)} record(s) failed ({code['ErrorCode']}: {code.get('ErrorMessage', '')})"
                )

        retry(
            attempt,
            what=f"{self.destination}: put_records",
            deadline_seconds=self.timeout,
            max_attempts=self.max_attempts,
            retryable=lambda exc: isinstance(exc, _SomeFailedError),
            backoff=Backoff(initial=0.1, maximum=5.0),
            give_up=PublishError,
            logger=log,
        )

    def flush(self) -> None:
        """Nothing buffered: :meth:`send` returns once every record is in."""

    def close(self) -> None:
        self.client.close()


def sink_for(settings: Settings) -> AlertSink:
    out = settings.alerts_out
    if settings.stream.backend == "kinesis":
        return KinesisAlertSink.from_settings(settings)
    sink = KafkaAlertSink(
        kafka_bootstrap(settings),
        out.topic,
        timeout=out.publish_timeout_seconds,
        partitions=settings.stream.kafka.partitions,
    )
    sink.ensure_topic()
    return sink


def store_for(settings: Settings) -> DynamoAlertStore:
    """A store on the alerts table like the pipeline's (``jobs.sinks.hot.HotStore``) when none is given."""
    hs = settings.hot_store
    may_create = hs.create_if_missing and settings.profile != "eks"
    client = make_client(dynamodb_endpoint(settings), hs.region, pool=4, timeout=10, retries=2)
    store = DynamoAlertStore(client, hs.table, retry_seconds=hs.retry_seconds, create_if_missing=may_create)
    if may_create:
        store.ensure_table()
    else:
        store.wait_ready()
    return store


class AlertPublisher:
    """Publish alerts once each (see the module docstring for the markers and the crash window).

    ``store``: the pipeline's hot store (``HotStore(settings).store``) to share its client; without
    one the publisher opens its own. ``sink``: the destination, by default from ``stream.backend``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: DynamoAlertStore | None = None,
        sink: AlertSink | None = None,
    ) -> None:
        self._owns_store = store is None
        self.store = store or store_for(settings)
        self.marks = PublishedMarks(self.store)
        self.sink = sink or sink_for(settings)
        self.published = 0  # alerts this publisher sent (skipped replays not counted)
        self.skipped = 0  # alerts handed in again after they were published

    @property
    def destination(self) -> str:
        return self.sink.destination

    def publish(self, alerts: list[Alert]) -> int:
        """Publish the alerts not published before; returns how many were sent now.

        Raises PublishError (or StoreUnavailableError) when the destination or the store stays down:
        the caller's micro-batch fails and is replayed, and the markers make that replay safe.
        """
        unique = unique_by_id(alerts)
        if not unique:
            return 0
        done = self.marks.published([a.alert_id for a in unique])
        fresh = [a for a in unique if a.alert_id not in done]
        self.skipped += len(unique) - len(fresh)
        if not fresh:
            return 0
        self.sink.send([(a.alert_id, alert_value(a)) for a in fresh])
        # <- the crash window: acknowledged, not yet marked (a replay re-sends these, same keys)
        self.marks.mark(fresh, self.sink.destination, datetime.now(UTC))
        self.published += len(fresh)
        log.info("published %d alert(s) to %s", len(fresh), self.sink.destination)
        return len(fresh)

    def flush(self) -> None:
        self.sink.flush()

    def close(self) -> None:
        self.sink.close()
        if self._owns_store:
            self.store.close()
