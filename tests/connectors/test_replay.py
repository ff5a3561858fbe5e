"""`coattail connectors replay` and `coattail simulate --to-kafka` write through normalise -> writer."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from coattail.contracts import loads_trade
from connectors.kafka_writer import KafkaWriter
from connectors.registry import normalizer
from connectors.replay import ReplayStats, undelivered
from connectors.simulator import simulate
from tests.connectors.fakes import consume_all

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[2]


def _env(kafka_bootstrap: str, topic: str, state: Path) -> dict[str, str]:
    return os.environ | {
        "COATTAIL_STREAM__BACKEND": "kafka",
        "COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "COATTAIL_STREAM__KAFKA__TOPIC": topic,
        "COATTAIL_STREAM__KAFKA__DLQ_TOPIC": f"{topic}-dlq",
        "COATTAIL_STATE_DIR": str(state),
    }


def test_replay_fast_writes_every_trade_once_and_dead_letters_junk(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    lines, _ = simulate(seed=5, minutes=2, rate=10)
    expected = set()
    for line in lines:
        norm = normalizer(str(line["exchange"]))
        expected |= {t.event_id for t in norm.message(line["raw"], str(line["received_at"]))}
    raw = tmp_path / "raw.jsonl"
    body = b"\n".join(orjson.dumps(line) for line in lines)
    # a duplicated line (replay overlap) and a truncated one
    raw.write_bytes(body + b"\n" + orjson.dumps(lines[0]) + b'\n{"exchange":"binance","raw":{"e":\n')
    result = subprocess.run(
        [sys.executable, "-m", "coattail", "connectors", "replay", str(raw), "--fast"],
        env=_env(kafka_bootstrap, unique_name, tmp_path),
        cwd=REPO, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert b"1 dead-lettered" in result.stderr
    records = consume_all(kafka_bootstrap, unique_name, partitions=3)
    ids = [loads_trade(r.value()).event_id for r in records]
    assert len(ids) == len(set(ids))
    assert set(ids) == expected
    [dead] = consume_all(kafka_bootstrap, f"{unique_name}-dlq", partitions=3)
    assert orjson.loads(dead.value())["reason"].startswith("not JSON")


def test_replay_missing_file_is_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coattail", "connectors", "replay", str(tmp_path / "nope.jsonl")],
        cwd=REPO, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.decode().count("\n") == 1
    assert "does not exist" in result.stderr.decode()


def test_simulate_to_kafka(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    args = ["--seed", "3", "--minutes", "1", "--rate", "5", "--out", str(out), "--to-kafka"]
    result = subprocess.run(
        [sys.executable, "-m", "coattail", "simulate", *args],
        env=_env(kafka_bootstrap, unique_name, tmp_path),
        cwd=REPO, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    trades = sum(1 for line in out.read_bytes().splitlines() if b'"heartbeat"' not in line)
    assert len(consume_all(kafka_bootstrap, unique_name, partitions=3)) == trades
    assert (tmp_path / "sim.jsonl.truth.json").is_file()


REPORT = re.compile(
    r"replayed (\d+) lines: (\d+) trades written \(from (\d+) lines\), (\d+) duplicates dropped, "
    r"(\d+) ignored .*?, (\d+) dead-lettered"
)


def _report(stderr: bytes) -> dict[str, int]:
    match = REPORT.search(stderr.decode())
    assert match, stderr
    keys = ("lines", "trades", "trade_lines", "duplicates", "ignored", "dead_lettered")
    return dict(zip(keys, map(int, match.groups()), strict=True))


def _poison_lines() -> list[bytes]:
    """One line per poison class of issue 18 (each becomes a dead letter)."""
    received = "2025-06-01T00:00:10.000Z"
    agg = {"e": "aggTrade", "s": "BTCUSDT", "a": 1, "p": "1.5", "q": "2", "T": 1_748_736_000_000, "m": True}
    match = {"type": "match", "trade_id": 1, "product_id": "BTC-USD", "price": "1", "size": "1",
             "side": "buy", "time": "2025-06-01T00:00:00.000000Z"}  # fmt: skip
    binance = [agg | {"T": 253_402_300_799_999}, agg | {"T": 1_748_736_000 * 1_000_000},
               agg | {"T": 4_102_444_800_000}, agg | {"p": "1e999999"}, agg | {"q": "1E+999999"},
               agg | {"p": "١٢٣"}, agg | {"p": "1_000"}, agg | {"a": True}, agg | {"e": {}},
               agg | {"e": "unknownKind"}]  # fmt: skip
    coinbase = [match | {"time": "9999-12-31T23:59:59-05:00"}, match | {"time": "0001-01-01T00:00:00+01:00"},
                match | {"time": "2100-01-01T00:00:00Z"}, match | {"product_id": "BTC-USD\n"},
                match | {"trade_id": "9" * 5000}, match | {"trade_id": []}, match | {"type": {}},
                match | {"size": "1e999999999"}]  # fmt: skip
    lines = [orjson.dumps({"exchange": "binance", "received_at": received, "raw": m}) for m in binance]
    lines += [orjson.dumps({"exchange": "coinbase", "received_at": received, "raw": m}) for m in coinbase]
    lines.append(
        orjson.dumps({"exchange": "binance", "received_at": "9999-12-31T23:59:59-05:00", "raw": agg})
    )
    lines.append(b'{"exchange":"binance","raw":{"e":"trade","t":' + b"9" * 5000 + b"}}")
    return lines


def test_replay_accounts_for_every_line_and_survives_every_poison_class(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    lines, _ = simulate(seed=6, minutes=1, rate=10)
    good = [orjson.dumps(line) for line in lines]
    poison = _poison_lines()
    first_binance = next(line for line in lines if line["exchange"] == "binance")
    mixed = [*good[:20], *poison, b"", *good[20:], orjson.dumps({**first_binance, "exchange": "BINANCE"})]
    raw = tmp_path / "raw.jsonl"
    raw.write_bytes(b"\n".join(mixed) + b"\n")
    result = subprocess.run(
        [sys.executable, "-m", "coattail", "connectors", "replay", str(raw), "--fast"],
        env=_env(kafka_bootstrap, unique_name, tmp_path),
        cwd=REPO, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = _report(result.stderr)
    assert report["lines"] == len(mixed)
    assert report["trade_lines"] + report["ignored"] + report["dead_lettered"] == report["lines"]
    assert report["dead_lettered"] == len(poison)
    heartbeats = sum(1 for line in lines if line["raw"].get("type") == "heartbeat")
    assert report["ignored"] == heartbeats + 1  # + the blank line
    trades = consume_all(kafka_bootstrap, unique_name, partitions=3)
    assert len(trades) == report["trades"] == len(good) - heartbeats  # the BINANCE line is a duplicate
    assert report["duplicates"] == 1
    dead = consume_all(kafka_bootstrap, f"{unique_name}-dlq", partitions=3)
    assert len(dead) == len(poison)
    assert all(orjson.loads(d.value())["reason"] for d in dead)


def _written(bootstrap: str, topic: str) -> int:
    """Records on ``topic`` so far (0 while the replay has not created it yet)."""
    try:
        return len(consume_all(bootstrap, topic, partitions=3, timeout=20))
    except RuntimeError:  # unknown topic: the replay is still starting
        time.sleep(0.5)
        return 0


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_replay_flushes_and_reports_on_a_signal_while_waiting_for_input(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    lines, _ = simulate(seed=8, minutes=1, rate=5)
    trades = [orjson.dumps(line) for line in lines if line["raw"].get("type") != "heartbeat"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "coattail", "connectors", "replay", "-", "--fast"],
        env=_env(kafka_bootstrap, unique_name, tmp_path), cwd=REPO,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None
    proc.stdin.write(b"\n".join(trades) + b"\n")
    proc.stdin.flush()  # stdin stays open: replay blocks reading the next line
    deadline = time.monotonic() + 90
    while _written(kafka_bootstrap, unique_name) < len(trades):
        assert time.monotonic() < deadline, "the replay did not write its input"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert f"interrupted by {sig.name}" in stderr.decode()
    report = _report(stderr)
    assert report["lines"] == report["trades"] == len(trades)
    assert "not delivered" not in stderr.decode()
    assert "Traceback" not in stderr.decode()


def test_replay_stops_pacing_at_once_on_sigterm(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    lines, _ = simulate(seed=9, minutes=1, rate=5)
    first, later = lines[0], dict(lines[1])
    later["received_at"] = "2099-01-01T00:00:00.000Z"  # an hour-long (decades) pause at recorded pace
    raw = tmp_path / "paced.jsonl"
    raw.write_bytes(orjson.dumps(first) + b"\n" + orjson.dumps(later) + b"\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "coattail", "connectors", "replay", str(raw)],
        env=_env(kafka_bootstrap, unique_name, tmp_path),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not _written(kafka_bootstrap, unique_name):
        assert time.monotonic() < deadline, "the replay did not write its first line"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert _report(stderr)["lines"] == 2


def test_the_loss_report_counts_records_not_client_events(kafka_bootstrap: str, unique_name: str) -> None:
    """Undelivered = records handed to the writer minus records the stream acknowledged: a dead broker's
    queued client events (which Kafka's flush result includes) are not counted as lost records."""
    norm = normalizer("binance")
    msgs = [{"e": "aggTrade", "s": "BTCUSDT", "a": i, "p": "1", "q": "1", "T": 1_700_000_000_000, "m": True}
            for i in range(5)]  # fmt: skip
    trades = [t for m in msgs for t in norm.message(m, "2023-11-14T22:14:00.000000Z")]
    stats = ReplayStats(trades=len(trades))
    for bootstrap, lost in (("127.0.0.1:1", len(trades)), (kafka_bootstrap, 0)):
        writer = KafkaWriter(bootstrap, unique_name, f"{unique_name}-dlq")
        for trade in trades:
            writer.write(trade)
        time.sleep(1)  # a dead broker piles up connection-error events meanwhile
        remaining = writer.flush(5 if lost else 60)
        assert undelivered(writer, stats, remaining) == lost
        writer.close()
