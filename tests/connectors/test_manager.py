"""`coattail connectors run` as a subprocess: /healthz, /metrics, SYMBOLS, SIGTERM -> flush, exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from coattail.contracts import loads_trade, trade_event_id
from coattail.settings import ConfigError, load_settings
from connectors.manager import plan_symbols
from tests.connectors.fakes import FakeExchange, Segment, binance_rest, binance_ws, consume_all

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.unit
def test_symbols_env_partitions_instruments() -> None:
    settings = load_settings()
    # the tier's venues (binance, coinbase) only; the other configured venues are not streamed
    assert plan_symbols(settings, "") == {ex: settings.instruments[ex] for ex in settings.active_connectors}
    assert plan_symbols(settings, "", ["okx"]) == {"okx": settings.instruments["okx"]}
    assert plan_symbols(settings, "btcusdt, ETH-USD") == {"binance": ["BTC-USDT"], "coinbase": ["ETH-USD"]}
    assert plan_symbols(settings, "binance:ETH-USDT") == {"binance": ["ETH-USDT"]}
    with pytest.raises(ConfigError, match="DOGEUSDT"):
        plan_symbols(settings, "DOGEUSDT")


@pytest.mark.services
def test_sigterm_flushes_and_exits_zero(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> None:
    history = [
        {"_index": i, "s": "BTCUSDT", "a": 900 + i, "p": f"{40000 + i}.25", "q": "0.5", "T": 1_763_900_000_000 + i,  # noqa: E501
         "m": i % 2 == 0}
        for i in range(300)
    ]  # fmt: skip
    fake = FakeExchange(
        history, binance_ws, binance_rest, [Segment(release=0, send_from=0, send_to=300, end="hold")]
    )
    port = _free_port()

    async def scenario() -> tuple[int, str, str]:
        await fake.start()
        env = os.environ | {
            "COATTAIL_CONNECTORS__BINANCE__WS_URL": fake.ws_url,
            "COATTAIL_CONNECTORS__BINANCE__REST_URL": fake.rest_url,
            "COATTAIL_STREAM__BACKEND": "kafka",
            "COATTAIL_STREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "COATTAIL_STREAM__KAFKA__TOPIC": unique_name,
            "COATTAIL_STREAM__KAFKA__DLQ_TOPIC": f"{unique_name}-dlq",
            "COATTAIL_PRODUCER__STATUS_PORT": str(port),
            "COATTAIL_PRODUCER__SHUTDOWN_GRACE_SECONDS": "20",
            "COATTAIL_STATE_DIR": str(tmp_path),
            "SYMBOLS": "btcusdt",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "coattail", "connectors", "run", "--exchange", "binance",
            cwd=REPO, env=env, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                health: Any = None
                for _ in range(1200):  # up to ~120 s for a cold interpreter on a busy machine
                    try:
                        health = await http.get("/healthz")
                        if (
                            health.status_code == 200
                            and 'trades_normalised_total{exchange="binance"} 300.0'
                            in (metrics := (await http.get("/metrics")).text)
                        ):
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                assert health is not None
                assert health.status_code == 200, health.text
                assert health.json()["connectors"] == {"binance": True, "writer": True}
                assert "coattail_producer_latency_seconds_bucket" in metrics
                assert "coattail_connector_messages_received_total" in metrics
                assert (await http.get("/nope")).status_code == 404
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 60)
            assert proc.stderr is not None
            log = (await proc.stderr.read()).decode()
            return code, log, metrics
        finally:
            if proc.returncode is None:
                proc.kill()
            await fake.stop()

    code, log, _ = asyncio.run(scenario())
    assert code == 0, log
    lines = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "stopped" and line["undelivered"] == 0 for line in lines)
    records = consume_all(kafka_bootstrap, unique_name, partitions=3)
    assert sorted(loads_trade(r.value()).event_id for r in records) == sorted(
        trade_event_id("binance", "BTC-USDT", f"agg:{t['a']}") for t in history
    )
