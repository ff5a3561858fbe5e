"""Kinesis writer (boto3 ``put_records``): ≤ 500 records / 5 MiB per call, partition key = symbol.

``put_records`` is not atomic: some records can fail (throttling) while the rest succeed. Only the
failed ones are resent, with exponential backoff; after ``max_attempts`` the writer gives up loudly
(ProduceError + the failures metric) instead of dropping data silently.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from coattail.contracts import OnchainEvent, dumps
from coattail.retry import Backoff, retry
from coattail.settings import ConfigError, Settings
from connectors.base import DeadLetter, Item
from connectors.metrics import Metrics
from connectors.trade import Trade
from connectors.writer import ProduceError, StreamWriter, onchain_key

log = logging.getLogger("connectors")
MAX_RECORDS = 500
MAX_BYTES = 5 * 1024 * 1024


@dataclass(slots=True)
class _Batch:
    stream: str
    records: list[tuple[bytes, str, str]] = field(default_factory=list)  # data, partition key, exchange
    size: int = 0
    since: float = 0.0


class _SomeFailedError(Exception):
    """Some records of a put_records call failed: they are resent."""


class _GaveUpError(Exception):
    pass


class KinesisWriter(StreamWriter):
    backend = "kinesis"

    def __init__(
        self,
        client: Any,
        stream_name: str,
        dlq_stream_name: str,
        *,
        metrics: Metrics | None = None,
        max_attempts: int = 8,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        linger_seconds: float = 0.25,
    ) -> None:
        self.client = client
        self.metrics = metrics or Metrics()
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.linger = linger_seconds
        self._trades = _Batch(stream_name)
        self._dlq = _Batch(dlq_stream_name)
        self._latency = self.metrics.produce_latency.labels(self.backend)
        self._retries = self.metrics.produce_retries.labels(self.backend)
        self._failures = self.metrics.produce_failures.labels(self.backend)
        self.delivered = 0
        self.calls = 0
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics, stream: str = "trades") -> KinesisWriter:
        k = settings.stream.kinesis
        names = (
            (k.stream_name, k.dlq_stream_name)
            if stream == "trades"
            else (k.onchain_stream_name, k.onchain_dlq_stream_name)
        )
        client = boto3.client(
            "kinesis",
            region_name=k.region,
            endpoint_url=k.endpoint_url or None,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        for name in names:
            try:
                client.describe_stream_summary(StreamName=name)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                raise ConfigError(
                    f"Kinesis stream {name!r} is not usable in {k.region} ({code}); create it with "
                    "Terraform (infra/) or point COATTAIL_STREAM__KINESIS__ENDPOINT_URL at an emulator"
                ) from None
            except BotoCoreError as exc:
                raise ConfigError(f"cannot reach Kinesis in {k.region}: {exc}") from None
        attempts = settings.producer.kinesis_max_attempts
        return cls(client, *names, metrics=metrics, max_attempts=attempts)

    # The batches are plain lists: one lock keeps a shutdown flush from racing a late batch.
    def write(self, trade: Trade) -> None:
        with self._lock:
            self._add(self._trades, trade.to_json(), trade.symbol, trade.exchange)

    def write_onchain(self, event: OnchainEvent) -> None:
        with self._lock:
            self._add(self._trades, dumps(event), onchain_key(event), event.blockchain)

    def dead_letter(self, letter: DeadLetter) -> None:
        with self._lock:
            self._add(self._dlq, letter.to_json(), letter.exchange, "")

    def write_many(self, items: Iterable[Item]) -> None:
        with self._lock:
            super().write_many(items)

    def _add(self, batch: _Batch, data: bytes, key: str, exchange: str) -> None:
        size = len(data) + len(key.encode())
        if batch.records and (len(batch.records) >= MAX_RECORDS or batch.size + size > MAX_BYTES):
            self._send(batch)
        if not batch.records:
            batch.since = time.monotonic()
        batch.records.append((data, key, exchange))
        batch.size += size

    def tick(self) -> None:
        with self._lock:
            now = time.monotonic()
            for batch in (self._trades, self._dlq):
                if batch.records and now - batch.since >= self.linger:
                    self._send(batch)

    def flush(self, timeout: float) -> int:
        with self._lock:
            for batch in (self._trades, self._dlq):
                if batch.records:
                    self._send(batch)
        return 0

    def _send(self, batch: _Batch) -> None:
        pending = batch.records
        batch.records, batch.size = [], 0
        reason = ""

        def put_pending() -> None:
            nonlocal pending, reason
            failed, reason = self._put(batch.stream, pending)
            pending = failed
            if failed:
                raise _SomeFailedError(f"{len(failed)} records failed ({reason})")

        def wait(seconds: float) -> None:  # called only before a resend
            self._retries.inc(len(pending))
            time.sleep(seconds)

        try:
            retry(
                put_pending,
                what=f"kinesis stream {batch.stream}: put_records",
                deadline_seconds=math.inf,  # bounded by attempts
                max_attempts=self.max_attempts,
                retryable=lambda exc: isinstance(exc, _SomeFailedError),
                backoff=Backoff(
                    initial=self.initial_backoff,
                    maximum=max(self.max_backoff, self.initial_backoff),
                    jitter=0.5,
                ),
                give_up=_GaveUpError,
                logger=log,
                sleep=wait,
            )
        except _GaveUpError:
            self._failures.inc(len(pending))
            log.error(
                "kinesis gave up", extra={"stream": batch.stream, "records": len(pending), "error": reason}
            )
            raise ProduceError(
                f"kinesis stream {batch.stream}: {len(pending)} records still failing after "
                f"{self.max_attempts} attempts ({reason})"
            ) from None

    def _put(self, stream: str, pending: list[Any]) -> tuple[list[Any], str]:
        """One ``put_records`` call: the records that failed (all of them if the call did) and why."""
        started = time.monotonic()
        entries = [{"Data": data, "PartitionKey": key} for data, key, _ in pending]
        try:
            self.calls += 1
            results = self.client.put_records(StreamName=stream, Records=entries)["Records"]
        except (ClientError, BotoCoreError) as exc:
            return pending, str(exc)  # the whole call failed: all of it is resent
        elapsed = time.monotonic() - started
        failed = []
        reason = ""
        for record, result in zip(pending, results, strict=True):
            if "ErrorCode" in result:
                failed.append(record)
                reason = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}"
            else:
                self.delivered += 1
                self._latency.observe(elapsed)
                if record[2]:
                    self.metrics.produced.labels(record[2]).inc()
        return failed, reason
