"""WebhookDispatcher: the ``alerts`` topic → the webhooks whose rules match, at least once.

A consumer of its own group (``alerts_out.consumer_group``) with manual commits: an alert's offset is
committed (synchronously) only after every matching target has it or its dead letter is written. A
crash or restart resumes at the first uncommitted alert, so nothing is lost; what was delivered and
not yet committed is delivered again (the documented duplicates). Alert ids delivered recently are
remembered (``alerts_out.dedupe_window``), so the publisher's one possible duplicate (same key) and a
redelivery within one process are skipped.

Records that are not alerts are dead-lettered with the reason and committed: one bad record must not
stop every later alert. Kafka only for now; Kinesis would need a checkpointed shard reader of its own.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from coattail.contracts import Alert, ContractError, loads_alert
from coattail.contracts.types import format_utc
from coattail.errors import CoattailError
from coattail.settings import ConfigError, Settings
from coattail.settings.endpoints import kafka_bootstrap
from jobs.outbound.publisher import ensure_topic
from jobs.outbound.webhooks import WebhookSender

log = logging.getLogger("jobs.outbound")
POLL_SECONDS = 0.5


class DispatcherError(CoattailError):
    """The dispatcher cannot run (one line)."""


def require_kafka(settings: Settings) -> None:
    if settings.stream.backend != "kafka":
        raise ConfigError(
            "the webhook dispatcher needs the Kafka stream backend for now (stream.backend is "
            f"{settings.stream.backend}); webhooks are not dispatched on Kinesis yet"
        )


class RecentIds:
    """The last ``size`` alert ids seen, oldest evicted first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._ids

    def add(self, alert_id: str) -> None:
        self._ids[alert_id] = None
        self._ids.move_to_end(alert_id)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)


class WebhookDispatcher:
    """Consume ``alerts_out.topic`` and hand each alert to the :class:`WebhookSender`.

    ``run(stop_event)`` returns after the alert in hand is done once ``stop_event`` is set; call
    :meth:`close` afterwards (it leaves the group, so a successor gets the partitions at once).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sender: WebhookSender | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        require_kafka(settings)
        out = settings.alerts_out
        self.topic = out.topic
        self.sender = sender or WebhookSender.from_settings(settings)
        self.recent = RecentIds(out.dedupe_window)
        self.handled = 0  # alerts delivered or dead-lettered (every target done)
        self.skipped = 0  # redeliveries of alerts already handled
        self.bootstrap = kafka_bootstrap(settings)
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "group.id": out.consumer_group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",  # a new group starts with every retained alert
            "error_cb": lambda err: log.warning("kafka client error: %s", err),
            "logger": log,
        }
        partitions = settings.stream.kafka.partitions
        for topic in (self.topic, out.dead_letter_topic):  # before the consumer: a missing one is made
            ensure_topic(self.bootstrap, topic, partitions)
        self._consumer = Consumer(conf | (extra or {}))
        self._consumer.subscribe([self.topic])

    def run(self, stop_event: threading.Event) -> None:
        log.info("webhook dispatcher: %d target(s) on topic %s", len(self.sender.targets), self.topic)
        while not stop_event.is_set():
            msg = self._consumer.poll(POLL_SECONDS)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    if error.fatal():
                        raise DispatcherError(f"Kafka consumer of {self.topic!r} failed: {error.str()}")
                    log.warning("consumer error on %s: %s", self.topic, error.str())
                continue
            self.handle(msg)

    def handle(self, msg: Message) -> None:
        """Deliver (or dead-letter) one record, then commit its offset."""
        alert = self._parse(msg)
        if alert is not None:
            if alert.alert_id in self.recent:
                self.skipped += 1
            else:
                self.sender.send(alert)  # returns once every target has it or its dead letter
                self.recent.add(alert.alert_id)
                self.handled += 1
        self._commit(msg)

    def _parse(self, msg: Message) -> Alert | None:
        try:
            return loads_alert(msg.value() or b"")
        except ContractError as exc:
            key = (msg.key() or b"").decode(errors="replace")
            record = {
                "raw": (msg.value() or b"").decode(errors="replace")[:10_000],
                "target": None,
                "reason": f"not an Alert: {exc}",
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "failed_at": format_utc(datetime.now(UTC)),
            }
            self.sender.dead_letter.write(key or "unknown", record)
            log.error(
                "record at %s[%s]@%s is not an alert: %s", msg.topic(), msg.partition(), msg.offset(), exc
            )
            return None

    def _commit(self, msg: Message) -> None:
        try:
            self._consumer.commit(message=msg, asynchronous=False)
        except KafkaException as exc:
            # e.g. the partition moved to another member during a rebalance: it redelivers (dedupe).
            log.warning("commit of %s[%s]@%s failed: %s", msg.topic(), msg.partition(), msg.offset(), exc)

    def close(self) -> None:
        self._consumer.close()
        self.sender.close()


def check_runnable(settings: Settings) -> None:
    """One line (ConfigError) when there is nothing for a dispatcher to do or no way to do it."""
    out = settings.alerts_out
    if not out.enabled:
        raise ConfigError(
            "alerts_out.enabled is false, so the pipeline publishes no alerts to dispatch; "
            "set COATTAIL_ALERTS_OUT__ENABLED=true"
        )
    if not out.webhooks:
        raise ConfigError(
            "alerts_out.webhooks is empty: configure at least one webhook target to dispatch to"
        )
    require_kafka(settings)


def start_thread(settings: Settings, stop_event: threading.Event) -> threading.Thread:
    """The dispatcher in a thread of its own (``coattail pipeline run``): built here, so a bad
    webhook config fails the caller at once; closed by the thread when ``stop_event`` is set."""
    dispatcher = WebhookDispatcher(settings)

    def main() -> None:
        try:
            dispatcher.run(stop_event)
        except Exception:
            log.exception("webhook dispatcher stopped on an error")
            raise
        finally:
            dispatcher.close()

    thread = threading.Thread(target=main, name="webhook-dispatcher", daemon=True)
    thread.start()
    return thread
