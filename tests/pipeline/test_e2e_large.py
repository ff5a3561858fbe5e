"""End to end on the large tier: a real chain (anvil) driven by the chain simulator → the Ethereum
connector (`coattail connectors run`, valuing events from the CEX prices on the trades topic) → Kafka →
the pipeline (killed mid-run, restarted from its checkpoint) → every planted large transfer, swap and
liquidity change in Iceberg and its alerts in DynamoDB Local, nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from coattail.contracts import Alert
from coattail.devservices.anvil import AnvilNode
from coattail.settings import Settings
from jobs.framework.runner import ONCHAIN_ALERTS_QUERY, PipelineRunner
from tests.chains.conftest import anvil_node
from tests.pipeline.helpers import line, trade
from tests.pipeline.streamkit import create_topic, dynamo_alerts, iceberg_rows, produce, stream_settings

__all__ = ["anvil_node"]  # the session's anvil (tests/chains/conftest.py)

pytestmark = [pytest.mark.spark, pytest.mark.services]
REPO = Path(__file__).resolve().parents[2]
ETH_PRICE = Decimal(3000)
DOLLARS = {"USDC", "DAI"}  # the simulator's stablecoins (price_ref usd in its token overlay)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _usd(entry: dict[str, Any]) -> Decimal:
    """The dollar value the pipeline must find for a planted event (stablecoins 1, ETH at ETH_PRICE)."""
    if entry["kind"] == "transfer":
        amount = Decimal(entry["amount"])
        return amount if entry["token_symbol"] in DOLLARS else amount * ETH_PRICE
    side = "in" if entry["token_in_symbol"] in DOLLARS else "out"
    return Decimal(entry[f"amount_{side}"])


def _rpc(url: str, method: str, *params: Any) -> Any:
    answer = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    ).json()
    assert "error" not in answer, answer
    return answer["result"]


async def _connector_until(env: dict[str, str], port: int, done: Callable[[str], bool]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coattail", "connectors", "run", "--exchange", "ethereum", "--tier", "large",
        cwd=REPO, env=env | {"COATTAIL_PRODUCER__STATUS_PORT": str(port)}, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            for _ in range(2400):
                if proc.returncode is not None:
                    break
                try:
                    if done((await http.get("/metrics")).text):
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        if proc.returncode is not None:
            assert proc.stderr is not None
            raise AssertionError(
                f"the Ethereum connector exited: {(await proc.stderr.read()).decode()[-3000:]}"
            )
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
        assert proc.stderr is not None
        return code, (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()


def test_chain_to_alerts_on_the_large_tier(
    spark: Any,
    anvil_node: AnvilNode,
    make_settings: Callable[..., Settings],
    kafka_bootstrap: str,
    dynamodb_endpoint: str,
    unique_name: str,
    aws_local_env: None,
    tmp_path: Path,
) -> None:
    onchain_topic = f"{unique_name}-onchain"
    create_topic(kafka_bootstrap, unique_name)
    create_topic(kafka_bootstrap, onchain_topic)
    settings = stream_settings(
        make_settings, kafka_bootstrap, dynamodb_endpoint, unique_name,
        **{"tier": "large", "stream.kafka.onchain_topic": onchain_topic},
    )  # fmt: skip
    assert {"MOD-008", "MOD-009"} <= set(settings.active_modules)

    # The CEX side: ETH-USDT trades at 3000 just before the chain starts (the connector's price feed).
    now = datetime.now(UTC)
    prices = [
        trade(at=now - timedelta(seconds=90 - i), price=ETH_PRICE, symbol="ETH-USDT", trade_id=i)
        for i in range(3)
    ]
    produce(kafka_bootstrap, unique_name, [line(t) for t in prices])

    # The chain side: the simulator deploys Uniswap V2 and the tokens, then plants its activity.
    truth_file, tokens, deployment = (
        tmp_path / "truth.json",
        tmp_path / "tokens.yaml",
        tmp_path / "world.json",
    )
    sim = subprocess.run(
        [sys.executable, "-m", "coattail", "simulate-chain", "--rpc-url", anvil_node.url, "--steps", "45",
         "--eth-price", str(ETH_PRICE), "--seed", "11", "--truth", str(truth_file),
         "--tokens-out", str(tokens), "--deployment", str(deployment)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert sim.returncode == 0, sim.stderr[-2000:]
    planted = json.loads(truth_file.read_text())["events"]
    kinds = {e["kind"] for e in planted}
    assert kinds == {"transfer", "swap", "liquidity_add", "liquidity_remove"}, kinds
    # A later block closes MOD-009's last windows (60 s + 30 s watermark), two more confirm it.
    _rpc(anvil_node.url, "evm_increaseTime", 150)
    accounts = _rpc(anvil_node.url, "eth_accounts")
    _rpc(
        anvil_node.url, "eth_sendTransaction", {"from": accounts[9], "to": accounts[8], "value": hex(10**15)}
    )
    for _ in range(3):
        _rpc(anvil_node.url, "evm_mine")
    head = int(_rpc(anvil_node.url, "eth_blockNumber"), 16)

    env = os.environ | {
        "COATTAIL_STREAM__BACKEND": "kafka",
        "COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "COATTAIL_STREAM__KAFKA__TOPIC": unique_name,
        "COATTAIL_STREAM__KAFKA__ONCHAIN_TOPIC": onchain_topic,
        "COATTAIL_STREAM__KAFKA__ONCHAIN_DLQ_TOPIC": f"{onchain_topic}-dlq",
        "COATTAIL_CONNECTORS__ETHEREUM__RPC_URL": anvil_node.url,
        "COATTAIL_CONNECTORS__ETHEREUM__TOKEN_FILES": json.dumps([str(tokens)]),
        "COATTAIL_CONNECTORS__ETHEREUM__CONFIRMATIONS": "2",
        "COATTAIL_CONNECTORS__ETHEREUM__START_BLOCK": "0",
        "COATTAIL_STATE_DIR": str(tmp_path / "connector-state"),
    }
    # Blocks 0..head-2 are confirmed; the connector is stopped once it emitted the closing transfer.
    code, log = asyncio.run(_connector_until(env, _free_port(), lambda m: _caught_up(m, head - 2)))
    assert code == 0, log[-3000:]

    runner = PipelineRunner(spark, settings)
    runner.start()
    alerts_query = next(q for q in runner.queries if q.name == ONCHAIN_ALERTS_QUERY)
    deadline = time.monotonic() + 240
    while (alerts_query.lastProgress or {}).get("batchId", -1) < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    for query in runner.queries:  # "kill": whatever batch is running is interrupted
        query.stop()
    restarted = PipelineRunner(spark, settings)
    restarted.start()
    try:
        restarted.drain(max_rounds=40)
    finally:
        restarted.stop()

    landed = iceberg_rows(spark, settings, "onchain_events")
    ids = [r["event_id"] for r in landed]
    assert len(ids) == len(set(ids)), "an on-chain event landed twice"
    by_tx = {(r["tx_hash"].lower(), r["event_type"]) for r in landed}
    missing = [e for e in planted if (e["tx_hash"].lower(), e["kind"]) not in by_tx]
    assert not missing, f"planted events not in onchain_events: {missing[:3]}"

    lake = [
        Alert.model_validate(
            r | {"details": json.loads(r["details"]), "detected_at": r["detected_at"].replace(tzinfo=UTC)}
        )
        for r in iceberg_rows(spark, settings, "anomaly_alerts")
    ]
    hot = dynamo_alerts(settings)
    assert sorted(a.alert_id for a in hot) == sorted(a.alert_id for a in lake)
    assert len({a.alert_id for a in lake}) == len(lake)

    def txs(alert_type: str) -> set[str]:
        return {
            a.details["tx_hash"].lower()
            for a in lake
            if a.alert_type == alert_type and "tx_hash" in a.details
        }

    planted_txs = {e["tx_hash"].lower() for e in planted}
    large_transfers = {e["tx_hash"].lower() for e in planted if e["kind"] == "transfer" and _usd(e) > 50_000}
    assert large_transfers
    unalerted = [
        (e, [r.get("usd_value") for r in landed if r["tx_hash"].lower() == e["tx_hash"].lower()])
        for e in planted
        if e["tx_hash"].lower() in large_transfers - txs("large_transfer")
    ]
    assert not unalerted, (
        f"planted large transfers without a large_transfer alert (and their usd_value): {unalerted}"
    )
    # The Transfer logs inside planted swaps and liquidity changes are large transfers too, and so is a
    # token's mint in its constructor (a contract creation); nothing else.
    for tx in txs("large_transfer") - planted_txs:
        receipt = _rpc(anvil_node.url, "eth_getTransactionReceipt", tx)
        assert receipt["contractAddress"], f"a large_transfer alert for {tx}, which planted nothing"
    swaps = [e for e in planted if e["kind"] == "swap"]
    assert {e["tx_hash"].lower() for e in swaps} == txs("dex_swap")
    large_swaps = {e["tx_hash"].lower() for e in swaps if _usd(e) > 100_000}
    assert large_swaps
    assert large_swaps == txs("large_dex_swap")
    liquidity = [a for a in lake if a.alert_type == "liquidity_change"]
    pools_changed = {e["pool"].lower() for e in planted if e["kind"].startswith("liquidity")}
    assert all(a.details.get("pool", "").lower() in pools_changed for a in liquidity)
    dex_rows = iceberg_rows(spark, settings, "dex_trades")
    assert {r["tx_hash"].lower() for r in dex_rows} == {e["tx_hash"].lower() for e in swaps}
    print(
        f"\nE2E large: {len(planted)} planted events ({len(swaps)} swaps, {len(large_transfers)} large "
        f"transfers, {len(large_swaps)} large swaps), {len(landed)} events landed, {len(lake)} alerts, "
        f"{len(liquidity)} liquidity_change"
    )


def _caught_up(metrics: str, block: int) -> bool:
    """The connector has read up to ``block`` (its last-block gauge)."""
    for row in metrics.splitlines():
        if row.startswith('coattail_connector_last_block{exchange="ethereum"}'):
            return float(row.split()[-1]) >= block
    return False
