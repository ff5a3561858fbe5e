"""Stream writers against real local servers: Kafka, and Kinesis on moto with injected partial failures."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import boto3
import orjson
import pytest
from moto.server import ThreadedMotoServer

from coattail.contracts import loads_trade
from connectors.base import DeadLetter
from connectors.binance import BinanceNormalizer
from connectors.kafka_writer import KafkaWriter
from connectors.kinesis_writer import KinesisWriter
from connectors.metrics import Metrics
from connectors.trade import Trade
from connectors.writer import ProduceError
from tests.connectors.fakes import consume_all, counter

pytestmark = pytest.mark.services


def _trades(n: int) -> list[Trade]:
    norm = BinanceNormalizer()
    out: list[Trade] = []
    for i in range(n):
        msg = {"e": "aggTrade", "s": "BTCUSDT" if i % 2 else "ETHUSDT", "a": i, "p": f"{100 + i}.5", "q": "0.25",  # noqa: E501
               "T": 1_763_900_000_000 + i, "m": bool(i % 3)}  # fmt: skip
        out += norm.message(msg, "2025-11-23T12:14:00.000000Z")
    return out


def test_kafka_writer_keys_by_symbol_counts_deliveries_and_dead_letters(
    kafka_bootstrap: str, unique_name: str
) -> None:
    metrics = Metrics()
    # A tiny client buffer forces the BufferError back-pressure path many times.
    writer = KafkaWriter(
        kafka_bootstrap, unique_name, f"{unique_name}-dlq", metrics=metrics, max_buffered_messages=50
    )
    writer.ensure_topics(3)
    writer.ensure_topics(3)  # idempotent
    trades = _trades(2000)
    for t in trades:
        writer.write(t)
    writer.dead_letter(DeadLetter("binance", "p: missing", '{"e":"aggTrade"}', "2025-11-23T12:00:00.000000Z"))
    assert writer.flush(60) == 0
    assert writer.delivered == 2001
    assert writer.failed == 0
    assert counter(metrics, "produced", "binance") == 2000
    records = consume_all(kafka_bootstrap, unique_name, partitions=3)
    assert sorted(loads_trade(r.value()).event_id for r in records) == sorted(t.event_id for t in trades)
    assert {r.key() for r in records} == {b"BTC-USDT", b"ETH-USDT"}
    for key in (b"BTC-USDT", b"ETH-USDT"):  # same key -> same partition -> per-symbol order
        assert len({r.partition() for r in records if r.key() == key}) == 1
    [dead] = consume_all(kafka_bootstrap, f"{unique_name}-dlq", partitions=3)
    assert orjson.loads(dead.value())["reason"] == "p: missing"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _kinesis(endpoint: str) -> Any:
    return boto3.client("kinesis", region_name="us-west-2", endpoint_url=endpoint)


def _create(client: Any, name: str) -> None:
    client.create_stream(StreamName=name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})


def _read_all(client: Any, name: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for shard in client.describe_stream(StreamName=name)["StreamDescription"]["Shards"]:
        it = client.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        iterator = it["ShardIterator"]
        while iterator:
            resp = client.get_records(ShardIterator=iterator, Limit=10000)
            out += resp["Records"]
            if not resp["Records"]:
                break
            iterator = resp.get("NextShardIterator")
    return out


class FlakyPutRecords:
    """botocore ``before-call`` hook: the first time a record is seen it "fails" (never reaches moto).

    The remaining records go to the real moto server through a second, unhooked client, and the
    response is stitched together the way Kinesis reports partial failures (ErrorCode per entry).
    """

    def __init__(self, real: Any, fail_every: int = 3, always_fail: bool = False) -> None:
        self.real = real
        self.fail_every = fail_every
        self.always_fail = always_fail
        self.seen: set[bytes] = set()
        self.sent_per_call: list[int] = []

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        body = json.loads(params["body"])
        import base64

        records = body["Records"]
        self.sent_per_call.append(len(records))
        results: list[dict[str, Any] | None] = [None] * len(records)
        passing = []
        for i, rec in enumerate(records):
            data = base64.b64decode(rec["Data"])
            first_time = data not in self.seen
            self.seen.add(data)
            bucket = int(hashlib.sha1(data, usedforsecurity=False).hexdigest(), 16) % self.fail_every == 0
            if self.always_fail or (first_time and bucket):
                results[i] = {
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "Rate exceeded",
                }
            else:
                passing.append((i, {"Data": data, "PartitionKey": rec["PartitionKey"]}))
        if passing:
            resp = self.real.put_records(StreamName=body["StreamName"], Records=[r for _, r in passing])
            for (i, _), result in zip(passing, resp["Records"], strict=True):
                results[i] = result
        failed = sum(1 for r in results if r and "ErrorCode" in r)
        return _Http(), {"FailedRecordCount": failed, "Records": results}


class _Http:
    status_code = 200
    headers: ClassVar[dict[str, str]] = {}


def test_kinesis_writer_batches_and_resends_only_failed_records(
    moto_endpoint: str, aws_local_env: None, unique_name: str
) -> None:
    real, hooked = _kinesis(moto_endpoint), _kinesis(moto_endpoint)
    _create(real, unique_name)
    _create(real, f"{unique_name}-dlq")
    flaky = FlakyPutRecords(real)
    hooked.meta.events.register("before-call.kinesis.PutRecords", flaky)
    metrics = Metrics()
    writer = KinesisWriter(hooked, unique_name, f"{unique_name}-dlq", metrics=metrics, initial_backoff=0.01)
    trades = _trades(1203)
    for t in trades:
        writer.write(t)
    writer.dead_letter(
        DeadLetter("coinbase", "side: expected buy or sell", "{}", "2025-11-23T12:00:00.000000Z")
    )
    assert writer.flush(30) == 0
    first_round = flaky.sent_per_call[0]
    assert first_round == 500
    assert max(flaky.sent_per_call) <= 500
    failed_first = sum(
        1
        for t in trades[:500]
        if int(hashlib.sha1(t.to_json(), usedforsecurity=False).hexdigest(), 16) % 3 == 0
    )
    assert flaky.sent_per_call[1] == failed_first  # the retry carried only the failed records
    stored = _read_all(real, unique_name)
    assert sorted(loads_trade(r["Data"]).event_id for r in stored) == sorted(t.event_id for t in trades)
    assert {r["PartitionKey"] for r in stored} == {"BTC-USDT", "ETH-USDT"}
    assert counter(metrics, "produce_retries", "kinesis") > 0
    assert counter(metrics, "produced", "binance") == 1203
    [dead] = _read_all(real, f"{unique_name}-dlq")
    assert orjson.loads(dead["Data"])["reason"] == "side: expected buy or sell"


def test_kinesis_writer_gives_up_loudly(moto_endpoint: str, aws_local_env: None, unique_name: str) -> None:
    real, hooked = _kinesis(moto_endpoint), _kinesis(moto_endpoint)
    _create(real, unique_name)
    flaky = FlakyPutRecords(real, always_fail=True)
    hooked.meta.events.register("before-call.kinesis.PutRecords", flaky)
    metrics = Metrics()
    writer = KinesisWriter(
        hooked, unique_name, "unused", metrics=metrics, max_attempts=3, initial_backoff=0.01
    )
    for t in _trades(10):
        writer.write(t)
    started = time.monotonic()
    with pytest.raises(ProduceError, match="10 records still failing after 3 attempts"):
        writer.flush(10)
    assert time.monotonic() - started < 10
    assert flaky.sent_per_call == [10, 10, 10]
    assert counter(metrics, "produce_failures", "kinesis") == 10


def test_kinesis_from_settings_checks_the_streams(
    moto_endpoint: str, aws_local_env: None, unique_name: str
) -> None:
    from coattail.settings import ConfigError, load_settings
    from connectors.writer import build_writer

    overrides = {
        "stream.backend": "kinesis",
        "stream.kinesis.endpoint_url": moto_endpoint,
        "stream.kinesis.stream_name": unique_name,
        "stream.kinesis.dlq_stream_name": f"{unique_name}-dlq",
    }
    settings = load_settings(overrides=overrides)
    with pytest.raises(ConfigError, match=f"Kinesis stream '{unique_name}' is not usable"):
        build_writer(settings, Metrics())
    real = _kinesis(moto_endpoint)
    _create(real, unique_name)
    _create(real, f"{unique_name}-dlq")
    writer = build_writer(settings, Metrics())
    assert isinstance(writer, KinesisWriter)
    writer.write(_trades(1)[0])
    assert writer.flush(10) == 0
    assert len(_read_all(real, unique_name)) == 1


def _onchain_events(n: int) -> list[Any]:
    from coattail.contracts import OnchainEvent

    return [
        OnchainEvent.create(
            blockchain="ethereum",
            block_number=100 + i,
            block_hash=f"0x{i:064x}",
            block_timestamp="2026-03-01T12:00:00Z",
            tx_hash=f"0x{i + 1:064x}",
            log_index=i % 3,
            event_type="transfer",
            token="0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
            token_symbol="USDC",
            amount=f"{i}.000001",
            from_address="0x" + "11" * 20,
            to_address="0x" + "22" * 20,
            ingestion_timestamp="2026-03-01T12:00:30Z",
        )
        for i in range(n)
    ]


def test_the_onchain_writer_uses_the_onchain_topics(kafka_bootstrap: str, unique_name: str) -> None:
    from coattail.contracts import loads_onchain
    from coattail.settings import load_settings
    from connectors.writer import build_writer

    settings = load_settings(
        overrides={
            "stream.kafka.bootstrap_servers": kafka_bootstrap,
            "stream.kafka.onchain_topic": unique_name,
            "stream.kafka.onchain_dlq_topic": f"{unique_name}-dlq",
        }
    )
    writer = build_writer(settings, Metrics(), "onchain")
    events = _onchain_events(50)
    writer.write_many(
        [*events, DeadLetter("ethereum", "topics: not a Transfer", "{}", "2026-03-01T12:00:00Z")]
    )
    assert writer.flush(30) == 0
    records = consume_all(kafka_bootstrap, unique_name, partitions=3)
    got = {e.event_id: e for e in (loads_onchain(r.value()) for r in records)}
    assert got == {e.event_id: e for e in events}  # exact round trip, each once
    assert {r.key() for r in records} == {b"ethereum:0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"}
    [dead] = consume_all(kafka_bootstrap, f"{unique_name}-dlq", partitions=3)
    assert orjson.loads(dead.value())["exchange"] == "ethereum"


def test_the_price_feed_reads_recent_trades_from_kafka(kafka_bootstrap: str, unique_name: str) -> None:
    from datetime import UTC, datetime

    from coattail.contracts.types import format_utc
    from coattail.settings import load_settings
    from connectors.price_feed import TradePriceFeed

    settings = load_settings(
        overrides={"stream.kafka.bootstrap_servers": kafka_bootstrap, "stream.kafka.topic": unique_name}
    )
    writer = KafkaWriter(kafka_bootstrap, unique_name, f"{unique_name}-dlq")
    writer.ensure_topics(3)
    now = datetime.now(UTC)
    norm = BinanceNormalizer()
    stamp = int(now.timestamp() * 1000)
    for i, price in enumerate(("3000.10", "3000.20")):  # before the feed starts: read back by time
        raw = {"e": "aggTrade", "s": "ETHUSDT", "a": i, "p": price, "q": "1", "T": stamp + i, "m": False}
        for trade in norm.message(raw, format_utc(now)):
            writer.write(trade)
    writer.produce_raw("ETH-USDT", b"not json", "binance")  # ignored, not fatal
    assert writer.flush(30) == 0
    feed = TradePriceFeed(settings).start()
    try:
        assert feed.wait_ready(60)
        assert feed.applied == 2  # ready means the look-back is in the book, not "started"
        assert str(feed.book.price("binance:ETH-USDT", datetime.now(UTC))) == "3000.20"
    finally:
        feed.stop()


def test_the_price_feed_reads_recent_trades_from_kinesis(
    moto_endpoint: str, aws_local_env: None, unique_name: str
) -> None:
    from datetime import UTC, datetime

    from coattail.settings import load_settings
    from connectors.price_feed import TradePriceFeed

    real = _kinesis(moto_endpoint)
    _create(real, unique_name)
    trade = _trades(1)[0]
    real.put_record(StreamName=unique_name, Data=trade.to_json(), PartitionKey=trade.symbol)
    settings = load_settings(
        overrides={
            "stream.backend": "kinesis",
            "stream.kinesis.endpoint_url": moto_endpoint,
            "stream.kinesis.stream_name": unique_name,
        }
    )
    feed = TradePriceFeed(settings).start()
    try:
        deadline = time.monotonic() + 30
        while feed.applied < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert feed.applied == 1
        assert (
            feed.book.price(f"binance:{trade.symbol}", datetime(2025, 11, 23, 12, 14, tzinfo=UTC)) is not None
        )
    finally:
        feed.stop()
