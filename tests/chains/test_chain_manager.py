"""`coattail connectors run --exchange solana` as a subprocess against the fake Solana node and the
suite's Kafka: events on the on-chain topic exactly once, a restart resumes from the stream's newest
event (a margin re-read, never a gap), SIGTERM exits 0; plus the plan of mixed exchange/chain runs."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from coattail.contracts import loads_onchain
from coattail.settings import ConfigError, load_settings
from connectors.chain_resume import RESUME_MARGIN, newest_block, resume_point
from connectors.manager import plan_connectors
from tests.chains.solana_fake import FakeSolana
from tests.connectors.fakes import consume_all

REPO = Path(__file__).resolve().parents[2]
EVENTS_PER_BLOCK = 11  # the fixture block: 9 transfers and 2 swaps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.unit
def test_a_run_plans_exchanges_and_chains_apart() -> None:
    settings = load_settings("large")
    plan, chains = plan_connectors(settings, "", ["solana"])
    assert (plan, chains) == ({}, ["solana"])
    plan, chains = plan_connectors(settings, "btcusdt", ["binance", "ethereum"])
    assert (plan, chains) == ({"binance": ["BTC-USDT"]}, ["ethereum"])
    plan, chains = plan_connectors(settings)  # the tier's: its venues and its chains
    assert set(plan) == {"binance", "coinbase"}
    assert chains == ["ethereum", "solana"]
    with pytest.raises(
        ConfigError, match="unknown connector 'bitcoin'; known: binance, bybit, coinbase, ethereum"
    ):
        plan_connectors(settings, "", ["bitcoin"])


async def _run_once(env: dict[str, str], port: int, ready: int) -> tuple[int, str]:
    """Start the connector process, wait until ``ready`` events were normalised, SIGTERM it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coattail", "connectors", "run", "--exchange", "solana", "--tier", "large",
        cwd=REPO, env=env | {"COATTAIL_PRODUCER__STATUS_PORT": str(port)}, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            for _ in range(1800):
                try:
                    metrics = (await http.get("/metrics")).text
                    line = [
                        x
                        for x in metrics.splitlines()
                        if x.startswith('coattail_connector_trades_normalised_total{exchange="solana"}')
                    ]
                    if line and float(line[0].split()[-1]) >= ready:
                        health = await http.get("/healthz")
                        assert health.json()["connectors"] == {"solana": True, "writer": True}
                        break
                except httpx.TransportError:
                    if proc.returncode is not None:
                        break
                await asyncio.sleep(0.1)
            else:
                if proc.returncode is None:
                    proc.kill()
                assert proc.stderr is not None
                tail = (await proc.stderr.read()).decode()[-3000:]
                raise AssertionError(f"the connector did not normalise the fake's blocks in 180 s: {tail}")
        if proc.returncode is not None:
            assert proc.stderr is not None
            raise AssertionError(f"the connector exited: {(await proc.stderr.read()).decode()[-3000:]}")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        assert proc.stderr is not None
        return code, (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()


@pytest.mark.services
def test_connectors_run_streams_a_chain_and_resumes_from_the_stream(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    fake = FakeSolana(5000, 5019, skipped={5004}, finalized=5009)
    env = os.environ | {
        "COATTAIL_STREAM__BACKEND": "kafka",
        "COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "COATTAIL_STREAM__KAFKA__TOPIC": f"{unique_name}-trades",
        "COATTAIL_STREAM__KAFKA__ONCHAIN_TOPIC": unique_name,
        "COATTAIL_STREAM__KAFKA__ONCHAIN_DLQ_TOPIC": f"{unique_name}-dlq",
        "COATTAIL_CONNECTORS__SOLANA__START_SLOT": "5000",
        "COATTAIL_CONNECTORS__SOLANA__REQUESTS_PER_SECOND": "1000",
        "COATTAIL_STATE_DIR": str(tmp_path),
    }

    async def scenario() -> list[tuple[int, str]]:
        await fake.start()
        try:
            run_env = env | {
                "COATTAIL_CONNECTORS__SOLANA__RPC_URL": fake.rpc_url,
                "COATTAIL_CONNECTORS__SOLANA__WS_URL": fake.ws_url,
            }
            first = await _run_once(run_env, _free_port(), EVENTS_PER_BLOCK * 9)  # 5000..5009 without 5004
            await fake.finalize_to(5019)  # the chain moves on while the connector is down
            second = await _run_once(run_env, _free_port(), EVENTS_PER_BLOCK * 19)  # re-read from 5000
            return [first, second]
        finally:
            await fake.stop()

    for code, log in asyncio.run(scenario()):
        assert code == 0, log[-2000:]
    settings = load_settings(
        overrides={
            "stream.kafka.bootstrap_servers": kafka_bootstrap,
            "stream.kafka.onchain_topic": unique_name,
        }
    )
    events = [loads_onchain(r.value()) for r in consume_all(kafka_bootstrap, unique_name, partitions=3)]
    per_slot = Counter(e.block_number for e in events)
    produced = [s for s in range(5000, 5020) if s != 5004]
    assert sorted(per_slot) == produced  # nothing lost across the restart
    # The restart re-read from (newest - margin), here the start: each event at most twice, never lost.
    assert len({e.event_id for e in events}) == EVENTS_PER_BLOCK * len(produced)
    assert set(Counter(e.event_id for e in events).values()) <= {1, 2}
    assert newest_block(settings, "solana") == 5019
    assert resume_point(settings, "solana") == max(0, 5019 - RESUME_MARGIN["solana"])
    assert resume_point(settings, "ethereum") is None  # nothing of that chain on the topic
