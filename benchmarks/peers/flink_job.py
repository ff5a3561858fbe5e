"""MOD-002 whale alerts and MOD-001 volume anomaly as a PyFlink job (the Flink peer of our pipeline).

Run from the peers venv (benchmarks/peers/env.py), one process, a local mini-cluster:
    .cache/peers/venv/bin/python benchmarks/peers/flink_job.py --bootstrap HOST:PORT --topic T --alerts A

How it is built, the way a Flink user would write it: Flink SQL does what the JVM does best — the Kafka
source, JSON parsing, the whale filter and the 60 s tumbling-window sum with a 30 s watermark — and a
Python ``KeyedProcessFunction`` keeps each (symbol, exchange)'s last 60 window volumes in keyed state
for the z-score (SQL OVER windows cannot see the quiet windows that MOD-001 counts as zero). Both
branches write JSON alerts to one Kafka topic; ``alerted_at`` is the wall-clock time the alert row was
made, so trade time -> alerted_at is the detector's latency (plus the producer's linger).
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

WHALE_THRESHOLD = 100_000
WINDOW_MS = 60_000
BASELINE_WINDOWS = 60  # one hour of 60 s windows
MIN_HISTORY = 10  # ten minutes of history before flagging
Z_THRESHOLD = 2.5


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def z_score(history: list[float], volume: float) -> tuple[float | None, float | None, float | None]:
    """(z, mean, sample stddev) of ``volume`` against ``history``; z None below MIN_HISTORY or if flat."""
    n = len(history)
    if n < max(MIN_HISTORY, 2):
        return None, None, None
    mean = math.fsum(history) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in history) / (n - 1))
    if std == 0:
        return None, mean, 0.0
    return (volume - mean) / std, mean, std


def source_ddl(topic: str, bootstrap: str, group: str) -> str:
    """Trades as our connectors write them (TradeEvent JSON; decimals are strings, times ISO-8601 Z)."""
    return f"""
        CREATE TABLE trades (
            event_id STRING,
            exchange STRING,
            symbol STRING,
            quote_volume STRING,
            `timestamp` TIMESTAMP_LTZ(6),
            ts AS CAST(`timestamp` AS TIMESTAMP_LTZ(3)),
            WATERMARK FOR ts AS ts - INTERVAL '30' SECOND
        ) WITH (
            'connector' = 'kafka',
            'topic' = '{topic}',
            'properties.bootstrap.servers' = '{bootstrap}',
            'properties.group.id' = '{group}',
            'scan.startup.mode' = 'earliest-offset',
            'format' = 'json',
            'json.timestamp-format.standard' = 'ISO-8601',
            'json.ignore-parse-errors' = 'true'
        )"""


def sink_ddl(topic: str, bootstrap: str) -> str:
    return f"""
        CREATE TABLE alerts (
            module_id STRING,
            event_id STRING,
            symbol STRING,
            exchange STRING,
            quote_volume DOUBLE,
            trade_ts STRING,
            window_start_ms BIGINT,
            window_volume DOUBLE,
            z DOUBLE,
            rolling_mean DOUBLE,
            rolling_stddev DOUBLE,
            history_windows INT,
            alerted_at STRING
        ) WITH (
            'connector' = 'kafka',
            'topic' = '{topic}',
            'properties.bootstrap.servers' = '{bootstrap}',
            'properties.linger.ms' = '5',
            'sink.delivery-guarantee' = 'none',
            'format' = 'json',
            'json.encode.ignore-null-fields' = 'true'
        )"""


# A constant threshold, no outside input: not an injection vector.
WHALES = f"""
    SELECT 'MOD-002', event_id, symbol, exchange, CAST(quote_volume AS DOUBLE),
           DATE_FORMAT(`timestamp`, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''),
           CAST(NULL AS BIGINT), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE), CAST(NULL AS DOUBLE),
           CAST(NULL AS DOUBLE), CAST(NULL AS INT),
           DATE_FORMAT(CURRENT_ROW_TIMESTAMP(), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''')
    FROM trades
    WHERE CAST(quote_volume AS DECIMAL(38, 8)) > {WHALE_THRESHOLD}
"""  # noqa: S608

WINDOWS = """
    SELECT symbol, exchange, window_start, SUM(CAST(quote_volume AS DOUBLE)) AS volume
    FROM TABLE(TUMBLE(TABLE trades, DESCRIPTOR(ts), INTERVAL '60' SECOND))
    GROUP BY symbol, exchange, window_start, window_end
"""


def epoch_ms(value: Any) -> int:
    """A window_start from the Table -> DataStream bridge (naive datetime in the session zone, UTC)."""
    if isinstance(value, datetime):
        return int(value.replace(tzinfo=UTC).timestamp() * 1000)
    return int(value)


def build(args: argparse.Namespace) -> Any:
    from pyflink.common import Configuration, Row, Types
    from pyflink.datastream import (
        KeyedProcessFunction,
        RuntimeContext,
        StreamExecutionEnvironment,
    )
    from pyflink.datastream.state import ValueStateDescriptor
    from pyflink.table import StreamTableEnvironment

    class VolumeBaseline(KeyedProcessFunction):  # type: ignore[misc]
        """Per (symbol, exchange): the last BASELINE_WINDOWS window volumes, quiet windows as zero."""

        def open(self, runtime_context: RuntimeContext) -> None:
            self.state = runtime_context.get_state(
                ValueStateDescriptor("baseline", Types.PICKLED_BYTE_ARRAY())
            )

        def process_element(self, value: Any, ctx: Any) -> Any:
            raw = self.state.value()
            history, last = pickle.loads(raw) if raw is not None else ([], None)  # noqa: S301 (our own state)
            start = epoch_ms(value[2])
            if last is not None:
                if start <= last:  # a window this key already scored (cannot happen in append mode)
                    return
                history.extend([0.0] * min((start - last) // WINDOW_MS - 1, BASELINE_WINDOWS))
                del history[:-BASELINE_WINDOWS]
            volume = float(value[3])
            z, mean, std = z_score(history, volume)
            n = len(history)
            history.append(volume)
            del history[:-BASELINE_WINDOWS]
            self.state.update(pickle.dumps((history, start)))
            if z is not None and abs(z) > Z_THRESHOLD:
                yield Row(
                    "MOD-001", None, value[0], value[1], None, None, start, volume, z, mean, std, n, now_iso()
                )

    config = Configuration()
    # The Python workers must run the peers venv's interpreter, not whatever "python" is on PATH.
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    config.set_string("pipeline.jars", ";".join(Path(j).resolve().as_uri() for j in args.jars))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(args.parallelism)
    env.enable_checkpointing(10_000)  # as a deployment would run it (our pipeline checkpoints too)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.get_config().set("table.exec.source.idle-timeout", "5 s")  # an empty partition must not stall
    t_env.execute_sql(source_ddl(args.topic, args.bootstrap, args.group))
    t_env.execute_sql(sink_ddl(args.alerts, args.bootstrap))

    sink_type = t_env.from_path("alerts").get_schema().to_row_data_type()
    row_type = Types.ROW_NAMED(
        [f.name for f in sink_type.fields],
        [
            Types.STRING(),
            Types.STRING(),
            Types.STRING(),
            Types.STRING(),
            Types.DOUBLE(),
            Types.STRING(),
            Types.LONG(),
            Types.DOUBLE(),
            Types.DOUBLE(),
            Types.DOUBLE(),
            Types.DOUBLE(),
            Types.INT(),
            Types.STRING(),
        ],
    )
    windows = t_env.to_data_stream(t_env.sql_query(WINDOWS))
    spikes = windows.key_by(lambda r: f"{r[0]}|{r[1]}", key_type=Types.STRING()).process(
        VolumeBaseline(), output_type=row_type
    )
    statements = t_env.create_statement_set()
    statements.add_insert_sql(f"INSERT INTO alerts {WHALES}")
    statements.add_insert("alerts", t_env.from_data_stream(spikes))
    statements.attach_as_datastream()
    return env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--alerts", required=True)
    parser.add_argument("--group", default=f"peer-flink-{int(time.time())}")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--jars", nargs="+", required=True, help="the flink-sql-connector-kafka jar")
    args = parser.parse_args()
    env = build(args)
    print("flink: job built, executing", flush=True)
    env.execute("coattail-peer-flink")


if __name__ == "__main__":
    main()
