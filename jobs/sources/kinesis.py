"""Kinesis as a Spark 4 Python streaming data source (boto3), offsets = last sequence number per shard.

No maintained Kinesis connector fits Spark 4.1, and a trade stream (a few MB/s at most) is well within
what the driver can read itself, so this is a ``SimpleDataSourceStreamReader``: ``read`` fetches new
records and returns the new offset; ``readBetweenOffsets`` re-reads exactly the same records when a
batch is replayed after a restart. The offset (checkpointed by Spark) is JSON::

    {"start": "TRIM_HORIZON" | "AT_TIMESTAMP:<epoch ms>", "shards": {"shardId-000": "<sequence>"}}

A shard without a sequence yet starts at ``start``; shards that appear later (resharding) are picked
up by the next ``read``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pyspark.sql.datasource import DataSource, SimpleDataSourceStreamReader

FORMAT = "coattail-kinesis"
SCHEMA = "shard string, sequence string, arrival timestamp, data string"
MAX_CALLS_PER_SHARD = 20  # GetRecords calls per shard per trigger (Kinesis allows 5/s/shard)

Row = tuple[str, str, datetime, str]


class KinesisDataSource(DataSource):  # type: ignore[misc]
    """``spark.readStream.format("coattail-kinesis").option("streamName", ...)``."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> str:
        return SCHEMA

    def simpleStreamReader(self, schema: Any) -> KinesisStreamReader:  # noqa: N802 - Spark's API name
        return KinesisStreamReader(dict(self.options))


class KinesisStreamReader(SimpleDataSourceStreamReader):  # type: ignore[misc]
    def __init__(self, options: dict[str, str]) -> None:
        opts = {k.lower(): v for k, v in options.items()}  # Spark hands options over lower-cased
        self.stream = opts["streamname"]
        self.region = opts.get("region") or "us-west-2"
        self.endpoint = opts.get("endpointurl") or None
        self.position = opts.get("startingposition", "TRIM_HORIZON").upper()
        self.limit = int(opts.get("maxrecordspertrigger", "100000"))
        self._client: Any = None

    # -- boto3 ------------------------------------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:  # created lazily: the reader is pickled to a Python worker
            import boto3

            session = boto3.session.Session(region_name=self.region)
            local = self.endpoint and session.get_credentials() is None
            # A local emulator accepts any key; the worker need not inherit AWS_* from the driver.
            key = "local" if local else None
            self._client = session.client(
                "kinesis", endpoint_url=self.endpoint, aws_access_key_id=key, aws_secret_access_key=key
            )
        return self._client

    def shards(self) -> list[str]:
        ids: list[str] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            page = self.client().list_shards(**kwargs)
            ids += [s["ShardId"] for s in page["Shards"]]
            if not page.get("NextToken"):
                return sorted(ids)
            kwargs = {"NextToken": page["NextToken"]}

    def iterator(self, shard: str, after: str | None, start: str) -> str | None:
        kwargs: dict[str, Any] = {"StreamName": self.stream, "ShardId": shard}
        if after:
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
        elif start.startswith("AT_TIMESTAMP:"):
            at = datetime.fromtimestamp(int(start.split(":", 1)[1]) / 1000, UTC)
            kwargs |= {"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": at}
        else:
            kwargs |= {"ShardIteratorType": "TRIM_HORIZON"}
        it: str | None = self.client().get_shard_iterator(**kwargs).get("ShardIterator")
        return it

    def fetch(self, shard: str, after: str | None, start: str, budget: int, stop_at: str | None) -> list[Row]:
        """Records of ``shard`` after ``after``: up to ``budget``, or up to sequence ``stop_at``."""
        rows: list[Row] = []
        it = self.iterator(shard, after, start)
        for _ in range(MAX_CALLS_PER_SHARD):
            if it is None or len(rows) >= budget:
                break
            page = self.client().get_records(ShardIterator=it, Limit=min(10_000, budget - len(rows)))
            for rec in page["Records"]:
                seq = rec["SequenceNumber"]
                if stop_at is not None and int(seq) > int(stop_at):
                    return rows
                data = rec["Data"]
                text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
                rows.append((shard, seq, rec["ApproximateArrivalTimestamp"], text))
                if stop_at is not None and seq == stop_at:
                    return rows
            it = page.get("NextShardIterator")
            if not page["Records"] and (stop_at is None or page.get("MillisBehindLatest", 0) == 0):
                break
        return rows

    # -- Spark's API ------------------------------------------------------------------------------
    def initialOffset(self) -> dict[str, Any]:  # noqa: N802
        start = (
            "TRIM_HORIZON" if self.position == "TRIM_HORIZON" else f"AT_TIMESTAMP:{int(time.time() * 1000)}"
        )
        return {"start": start, "shards": {}}

    def read(self, start: dict[str, Any]) -> tuple[Iterator[Row], dict[str, Any]]:
        positions: dict[str, str | None] = dict(start["shards"])
        rows: list[Row] = []
        for shard in self.shards():
            positions.setdefault(shard, None)
            got = self.fetch(shard, positions[shard], start["start"], self.limit - len(rows), None)
            if got:
                positions[shard] = got[-1][1]
            rows += got
            if len(rows) >= self.limit:
                break
        end = {"start": start["start"], "shards": {k: v for k, v in sorted(positions.items()) if v}}
        return iter(rows), end

    def readBetweenOffsets(self, start: dict[str, Any], end: dict[str, Any]) -> Iterator[Row]:  # noqa: N802
        rows: list[Row] = []
        for shard, last in sorted(end["shards"].items()):
            first = start["shards"].get(shard)
            if first != last:
                rows += self.fetch(shard, first, start["start"], 10**9, last)
        return iter(rows)

    def commit(self, end: dict[str, Any]) -> None:
        """Nothing to acknowledge: Kinesis keeps records for the retention period."""
