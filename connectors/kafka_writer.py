"""Kafka writer (confluent-kafka): idempotent, acks=all, lz4, key = symbol, bounded in-flight buffer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from coattail.contracts import OnchainEvent, dumps
from coattail.settings import ConfigError
from connectors.base import DeadLetter
from connectors.metrics import Metrics
from connectors.trade import Trade
from connectors.writer import StreamWriter, onchain_key

log = logging.getLogger("connectors")
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class KafkaWriter(StreamWriter):
    backend = "kafka"

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        dlq_topic: str,
        *,
        metrics: Metrics | None = None,
        max_buffered_messages: int = 100_000,
        max_buffered_kbytes: int = 65_536,
        linger_ms: int = 10,
        compression: str = "lz4",
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.metrics = metrics or Metrics()
        # Bounded client buffer: produce() raises BufferError when full and we wait for deliveries.
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": compression,
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": max_buffered_messages,
            "queue.buffering.max.kbytes": max_buffered_kbytes,
            "error_cb": self._on_error,
            "logger": log,  # librdkafka's own log lines go through our JSON logging
        }
        self._producer = Producer(conf | (extra or {}))
        self._callbacks: dict[str, DeliveryCallback] = {}
        self._delivered_cells: dict[str, list[int]] = {}
        self._latency = self.metrics.produce_latency.labels(self.backend)
        self._failures = self.metrics.produce_failures.labels(self.backend)
        self._dlq_callback = self._callback_for("")
        self.failed = 0
        self.last_error: str | None = None
        self._since_poll = 0

    def ensure_topics(self, partitions: int, timeout: float = 30) -> None:
        """Create the trade and dead-letter topics if missing (idempotent)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "logger": log})
        try:
            existing = admin.list_topics(timeout=timeout).topics
        except KafkaException as exc:
            raise ConfigError(
                f"Kafka at {self.bootstrap} did not answer within {timeout:g} s ({exc.args[0].str()}); "
                "start it with `coattail dev up` or set COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS"
            ) from None
        wanted = [
            NewTopic(t, num_partitions=partitions) for t in (self.topic, self.dlq_topic) if t not in existing
        ]
        for name, future in admin.create_topics(wanted, operation_timeout=timeout).items() if wanted else []:
            try:
                future.result(timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            log.info("topic ready", extra={"topic": name})

    def write(self, trade: Trade) -> None:
        self.produce_raw(trade.symbol, trade.to_json(), trade.exchange)

    def write_onchain(self, event: OnchainEvent) -> None:
        self.produce_raw(onchain_key(event), dumps(event), event.blockchain)

    def dead_letter(self, letter: DeadLetter) -> None:
        self._produce_waiting(self.dlq_topic, letter.exchange, letter.to_json(), self._dlq_callback)

    def produce_raw(self, key: str, value: bytes, exchange: str) -> None:
        """One serialised trade to the trade topic, keyed by symbol (the hot path: kept flat)."""
        callback = self._callbacks.get(exchange) or self._callback_for(exchange)
        try:
            self._producer.produce(self.topic, value, key, on_delivery=callback)
        except BufferError:
            self._produce_waiting(self.topic, key, value, callback)
            return
        self._since_poll += 1
        if self._since_poll >= 1000:  # serve delivery callbacks regularly, not per message
            self._since_poll = 0
            self._producer.poll(0)
            self._publish()

    def _produce_waiting(self, topic: str, key: str, value: bytes, callback: DeliveryCallback) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=callback)
                return
            except BufferError:
                self._producer.poll(0.05)  # back-pressure: serve deliveries until there is room

    def _callback_for(self, exchange: str) -> DeliveryCallback:
        # One callback per exchange (not per message) that only bumps a plain int: Prometheus counters
        # are synced in batches (``_publish``) and latency is sampled 1 in 16, because per-message metric
        # calls would cost as much as the produce itself.
        cell = self._delivered_cells.setdefault(exchange, [0, 0])  # [delivered, published]
        latency = self._latency
        on_failure = self._on_failure

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                n = cell[0] = cell[0] + 1
                if not n & 15:
                    seconds = msg.latency()
                    if seconds is not None:
                        latency.observe(seconds)
            else:
                on_failure(err, msg)

        self._callbacks[exchange] = on_delivery
        return on_delivery

    def _on_failure(self, err: KafkaError, msg: Message) -> None:
        self.failed += 1
        self.last_error = str(err)
        self._failures.inc()
        log.error("delivery failed", extra={"topic": msg.topic(), "error": str(err)})

    @property
    def delivered(self) -> int:
        return sum(cell[0] for cell in self._delivered_cells.values())

    def _publish(self) -> None:
        for exchange, cell in self._delivered_cells.items():
            if exchange and cell[0] > cell[1]:
                self.metrics.produced.labels(exchange).inc(cell[0] - cell[1])
                cell[1] = cell[0]

    def _on_error(self, err: KafkaError) -> None:
        log.warning("kafka client error", extra={"error": str(err)})

    def tick(self) -> None:
        self._producer.poll(0)
        self._publish()

    def flush(self, timeout: float) -> int:
        remaining = int(self._producer.flush(timeout))
        self._publish()
        return remaining

    def close(self) -> None:
        self._producer.flush(0)
