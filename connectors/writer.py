"""One stream-writer interface, two real backends (Kafka, Kinesis), picked by ``stream.backend``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Literal

from coattail.contracts.onchain import BLOCKCHAINS, OnchainEvent
from coattail.errors import CoattailError
from coattail.settings import Settings
from connectors.base import DeadLetter, Item
from connectors.metrics import Metrics
from connectors.trade import Trade


class ProduceError(CoattailError, RuntimeError):
    """The stream refused records for good (after the retry limit); the message says how many and why."""


class StreamWriter(ABC):
    """Trades keyed by symbol to the trade stream; dead letters (reason + raw) to the dead-letter stream.

    ``write`` may block briefly for back-pressure (bounded client buffers), never grows without bound.
    """

    backend: str = ""

    @abstractmethod
    def write(self, trade: Trade) -> None: ...

    @abstractmethod
    def dead_letter(self, letter: DeadLetter) -> None: ...

    @abstractmethod
    def write_onchain(self, event: OnchainEvent) -> None:
        """One OnchainEvent (a writer built for the ``onchain`` stream), keyed by chain and pool/token."""

    @abstractmethod
    def flush(self, timeout: float) -> int:
        """Deliver everything buffered; returns how many records are still undelivered."""

    def tick(self) -> None:  # noqa: B027 - optional
        """Periodic upkeep while idle (serve callbacks, send lingering batches)."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release client resources (after ``flush``)."""

    def write_many(self, items: Iterable[Item]) -> None:
        for item in items:
            if type(item) is Trade:
                self.write(item)
            elif isinstance(item, DeadLetter):
                self.dead_letter(item)
            elif isinstance(item, OnchainEvent):
                self.write_onchain(item)


def onchain_key(event: OnchainEvent) -> str:
    """Stream key of an on-chain event: one pool's (or token's) events stay in order on one partition."""
    return f"{event.blockchain}:{event.pool or event.token or ''}"


Stream = Literal["trades", "onchain"]


class RoutedWriter(StreamWriter):
    """Trades to one writer, on-chain events to the other; dead letters follow their source (a chain's
    go to the on-chain dead-letter stream). For a process that runs exchanges and chains together."""

    def __init__(self, trades: StreamWriter, onchain: StreamWriter) -> None:
        self.trades, self.onchain = trades, onchain
        self.backend = trades.backend

    def write(self, trade: Trade) -> None:
        self.trades.write(trade)

    def write_onchain(self, event: OnchainEvent) -> None:
        self.onchain.write_onchain(event)

    def dead_letter(self, letter: DeadLetter) -> None:
        (self.onchain if letter.exchange in BLOCKCHAINS else self.trades).dead_letter(letter)

    def flush(self, timeout: float) -> int:
        return self.trades.flush(timeout / 2) + self.onchain.flush(timeout / 2)

    def tick(self) -> None:
        self.trades.tick()
        self.onchain.tick()

    def close(self) -> None:
        self.trades.close()
        self.onchain.close()


def build_writers(settings: Settings, metrics: Metrics, *, trades: bool, onchain: bool) -> StreamWriter:
    """One writer for what a connector process produces: trades, on-chain events or both."""
    if trades and onchain:
        return RoutedWriter(build_writer(settings, metrics), build_writer(settings, metrics, "onchain"))
    return build_writer(settings, metrics, "onchain" if onchain else "trades")


def build_writer(settings: Settings, metrics: Metrics, stream: Stream = "trades") -> StreamWriter:
    """The writer for the configured backend and ``stream`` (trades or on-chain events and their dead
    letters), with its topics/streams checked or created."""
    if settings.stream.backend == "kinesis":
        from connectors.kinesis_writer import KinesisWriter

        return KinesisWriter.from_settings(settings, metrics, stream)
    from coattail.settings.endpoints import kafka_bootstrap
    from connectors.kafka_writer import KafkaWriter

    k = settings.stream.kafka
    topics = (k.topic, k.dlq_topic) if stream == "trades" else (k.onchain_topic, k.onchain_dlq_topic)
    writer = KafkaWriter(kafka_bootstrap(settings), *topics, metrics=metrics)
    writer.ensure_topics(k.partitions)
    return writer
