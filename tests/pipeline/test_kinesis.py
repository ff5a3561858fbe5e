"""The Kinesis backend: the Python streaming data source against a local emulator (moto server)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from coattail.devservices.process import free_port
from coattail.settings import Settings
from jobs import quality
from jobs.sources import raw_stream
from tests.pipeline.helpers import line, trade

pytestmark = [pytest.mark.spark, pytest.mark.services]


@pytest.fixture
def kinesis(aws_local_env: None) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _put(client: Any, stream: str, values: list[str]) -> None:
    records = [{"Data": v.encode(), "PartitionKey": str(i)} for i, v in enumerate(values)]
    assert client.put_records(StreamName=stream, Records=records)["FailedRecordCount"] == 0


def test_kinesis_source_resumes_from_per_shard_sequence_numbers(
    spark: Any, make_settings: Callable[..., Settings], kinesis: str, unique_name: str, tmp_path: Path
) -> None:
    client = boto3.client("kinesis", endpoint_url=kinesis, region_name="us-west-2")
    client.create_stream(StreamName=unique_name, ShardCount=2)
    client.get_waiter("stream_exists").wait(StreamName=unique_name)
    settings = make_settings(
        **{
            "stream.backend": "kinesis",
            "stream.kinesis.stream_name": unique_name,
            "stream.kinesis.endpoint_url": kinesis,
        }
    )
    first = [trade(at=i, quote_volume=1000 + i) for i in range(12)]
    second = [trade(at=100 + i, quote_volume=2000 + i) for i in range(8)]
    _put(client, unique_name, [line(e) for e in first] + ["junk"])

    seen: list[tuple[str, str | None]] = []
    checkpoint = tmp_path / "kinesis-checkpoint"

    def run() -> None:
        classified = quality.classify(raw_stream(spark, settings), settings)
        query = (
            classified.select("event_id", "dq_reason", "source_pos")
            .writeStream.option("checkpointLocation", str(checkpoint))
            .foreachBatch(lambda df, _: seen.extend((r.event_id, r.dq_reason) for r in df.collect()))
            .start()
        )
        try:
            query.processAllAvailable()
        finally:
            query.stop()

    run()
    assert sorted(e for e, reason in seen if reason is None) == sorted(e.event_id for e in first)
    assert [r for _, r in seen if r is not None] == ["malformed: not a TradeEvent JSON object"]

    _put(client, unique_name, [line(e) for e in second])
    seen.clear()
    run()  # restart from the checkpoint: only what arrived since
    assert sorted(e for e, _ in seen) == sorted(e.event_id for e in second)

    offsets = sorted(
        (checkpoint / "offsets").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1
    )
    last = json.loads(offsets[-1].read_text().splitlines()[-1])
    assert len(last["shards"]) == 2  # one sequence number per shard
    assert all(seq.isdigit() for seq in last["shards"].values())
