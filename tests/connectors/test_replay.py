"""`coattail connectors replay` and `coattail simulate --to-kafka` write through normalise -> writer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from coattail.contracts import loads_trade
from connectors.registry import normalizer
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
