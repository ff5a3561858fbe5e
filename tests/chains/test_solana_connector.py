"""The Solana connector against a fake RPC node (real HTTP JSON-RPC + WebSocket on 127.0.0.1).

Every block of the fake is the fixture block re-issued per slot (11 events: 9 transfers and 2 swaps),
so "every transfer and swap exactly once" is: 11 distinct events per produced slot, none twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from coattail.contracts.onchain import OnchainEvent
from coattail.settings.errors import ConfigError
from coattail.settings.models import ReconnectSettings
from connectors.base import DeadLetter
from connectors.metrics import Metrics
from connectors.solana.connector import OnchainItem, SolanaConnector
from connectors.solana.rpc import RpcError, SolanaRpc
from connectors.solana.settings import SolanaSettings, redact_url
from tests.chains.solana_fake import FakeSolana
from tests.connectors.fakes import counter

pytestmark = pytest.mark.services
EVENTS_PER_BLOCK = 11
SWAPS_PER_BLOCK = 2
FAST = ReconnectSettings(initial_backoff_seconds=0.05, max_backoff_seconds=0.2, jitter=0)


async def until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def drain(queue: asyncio.Queue[OnchainItem]) -> list[OnchainItem]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def run_against(
    fake: FakeSolana,
    settings: dict[str, Any],
    script: Callable[[SolanaConnector], Awaitable[None]],
    metrics: Metrics | None = None,
    path: str = "",
) -> tuple[SolanaConnector, list[OnchainItem]]:
    await fake.start()
    try:
        config = {"type": "solana", "rpc_url": fake.rpc_url + path, "ws_url": fake.ws_url + path}
        config |= {"requests_per_second": 1000} | settings
        connector = SolanaConnector(SolanaSettings.model_validate(config), FAST, metrics=metrics or Metrics())
        queue: asyncio.Queue[OnchainItem] = asyncio.Queue()
        task = asyncio.create_task(connector.stream(queue))
        try:
            await script(connector)
        finally:
            connector.shutdown()
            await asyncio.wait_for(task, 10)
        return connector, drain(queue)
    finally:
        await fake.stop()


def assert_exactly_once(items: list[OnchainItem], slots: list[int]) -> list[OnchainEvent]:
    events = [i for i in items if isinstance(i, OnchainEvent)]
    assert [i for i in items if isinstance(i, DeadLetter)] == []
    keys = Counter((e.tx_hash, e.log_index) for e in events)
    assert max(keys.values()) == 1, "an event was emitted twice"
    per_slot = Counter(e.block_number for e in events)
    assert sorted(per_slot) == slots
    assert set(per_slot.values()) == {EVENTS_PER_BLOCK}
    assert sum(e.event_type == "swap" for e in events) == SWAPS_PER_BLOCK * len(slots)
    assert [e.block_number for e in events] == sorted(e.block_number for e in events), "out of slot order"
    return events


def test_follows_finalized_slots_across_skips_and_a_dropped_connection() -> None:
    fake = FakeSolana(1000, 1039, skipped={1003, 1010, 1011, 1025}, storage_gaps={1017}, finalized=1005)
    fake.drop_get_block.add(1020)  # the HTTP connection dies once mid-request: retried, not skipped
    metrics = Metrics()

    async def script(c: SolanaConnector) -> None:
        await until(lambda: c.last_slot == 1005, "the first finalized slots")
        await fake.finalize_to(1015)
        await until(lambda: c.last_slot == 1015, "the notified roots")
        await asyncio.sleep(0.3)  # wake-ups that arrived during that pass run their (empty) pass
        fake.ws_refuse = True
        fake.drop_websockets()
        await fake.finalize_to(1030)  # nobody hears these roots
        await asyncio.sleep(0.5)
        assert c.last_slot == 1015, "progress without a WebSocket: the poll interval should be long here"
        fake.ws_refuse = False
        await until(lambda: c.last_slot == 1030, "the gap fill after the reconnect")
        await fake.finalize_to(1039)
        await until(lambda: c.last_slot == 1039, "the last roots")

    connector, items = asyncio.run(
        run_against(fake, {"start_slot": 1000, "poll_interval_seconds": 60}, script, metrics)
    )
    produced = [s for s in fake.produced() if s != 1017]  # 1017: listed, but missing in storage (-32009)
    events = assert_exactly_once(items, produced)
    assert len(events) == EVENTS_PER_BLOCK * 35
    # getBlocks lists produced slots: skipped ones are never asked for, each produced one once
    # (1020 twice: its first answer was a dropped connection)
    calls = Counter(fake.block_calls())
    assert not {1003, 1010, 1011, 1025} & set(calls)
    assert calls[1020] == 2
    assert all(n == 1 for slot, n in calls.items() if slot != 1020)
    assert counter(metrics, "reconnects", "solana") == 1
    assert counter(metrics, "ignored", "solana") == 5  # 4 skipped + 1 missing in long-term storage
    assert counter(metrics, "normalised", "solana") == len(events)
    # the first catch-up after the reconnect: 1016..1030 without 1025 (skipped) and 1017 (missing)
    assert counter(metrics, "gap_filled", "solana") == EVENTS_PER_BLOCK * 13
    assert connector.ws_connections == 2


def test_get_block_per_slot_handles_skipped_slot_errors_without_retrying() -> None:
    fake = FakeSolana(500, 520, skipped={503, 504, 511}, storage_gaps={515}, finalized=520)

    async def script(c: SolanaConnector) -> None:
        await until(lambda: c.last_slot == 520, "the tip")

    _, items = asyncio.run(run_against(fake, {"start_slot": 500, "use_get_blocks": False}, script))
    assert_exactly_once(items, [s for s in fake.produced() if s != 515])
    assert fake.block_calls() == list(range(500, 521)), "every slot asked once, skipped ones included"


def test_polls_get_slot_without_a_websocket() -> None:
    fake = FakeSolana(10, 30, skipped={12}, finalized=15)

    async def script(c: SolanaConnector) -> None:
        await until(lambda: c.last_slot == 15, "the first slots")
        await fake.finalize_to(30)
        await until(lambda: c.last_slot == 30, "polled progress")
        assert c.health_check()

    connector, items = asyncio.run(
        run_against(fake, {"start_slot": 10, "ws_url": "", "poll_interval_seconds": 0.05}, script)
    )
    assert_exactly_once(items, fake.produced())
    assert connector.ws_connections == 0


def test_falls_back_to_polling_when_subscriptions_are_refused() -> None:
    fake = FakeSolana(10, 20, finalized=12, offer_subscriptions=False)

    async def script(c: SolanaConnector) -> None:
        await until(lambda: c.last_slot == 12, "the first slots")
        await fake.finalize_to(20)
        await until(lambda: c.last_slot == 20, "polled progress")

    connector, items = asyncio.run(
        run_against(fake, {"start_slot": 10, "poll_interval_seconds": 0.05}, script)
    )
    assert_exactly_once(items, fake.produced())
    assert connector.ws_connections == 0
    assert fake.ws_connections == 1


def test_starts_at_the_tip_without_a_start_slot_and_rides_out_503s() -> None:
    fake = FakeSolana(100, 140, finalized=130)

    async def script(c: SolanaConnector) -> None:
        await until(lambda: c.last_slot == 130, "the tip")
        fake.fail_http = 2  # backoff 0.5 s, then 1 s
        await fake.finalize_to(133)
        await until(lambda: c.last_slot == 133, "progress after the 503s")

    _, items = asyncio.run(run_against(fake, {"poll_interval_seconds": 0.05}, script))
    assert_exactly_once(items, [130, 131, 132, 133])


def test_api_key_header_is_sent_and_never_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "k3y-s3cr3t-0123456789"
    fake = FakeSolana(1, 5, finalized=5, api_key=("x-api-key", secret))
    monkeypatch.setenv("SOLANA_RPC_KEY", secret)

    async def script(c: SolanaConnector) -> None:
        await until(lambda: c.last_slot == 5, "the tip")

    settings = {"start_slot": 1, "api_key_header": "x-api-key", "api_key_env": "SOLANA_RPC_KEY"}
    # Other tests (the JSON log set-up) quiet these libraries' loggers: open them up for this one.
    for name in ("httpx", "websockets.client"):
        caplog.set_level(logging.DEBUG, logger=name)
    with caplog.at_level(logging.DEBUG):
        # the URLs carry a token path as well, as QuickNode's do: only the host may be shown
        _, items = asyncio.run(run_against(fake, settings, script, path=f"/{secret}/"))
    assert_exactly_once(items, fake.produced())
    client_side = [r for r in caplog.records if not r.name.startswith("websockets.server")]  # not the fake's
    assert any(r.name == "httpx" for r in client_side)
    assert any(r.name == "websockets.client" for r in client_side)
    assert not [r.getMessage() for r in client_side if secret in r.getMessage()]


def test_wrong_api_key_is_one_line_without_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "path-token-abcdef"
    fake = FakeSolana(1, 5, finalized=5, api_key=("x-api-key", "right"))

    async def main() -> str:
        await fake.start()
        rpc = SolanaRpc(f"{fake.rpc_url}/{secret}/", headers={"x-api-key": "wrong"})
        try:
            with pytest.raises(RpcError) as caught:
                await rpc.get_slot("finalized")
            return str(caught.value)
        finally:
            await rpc.aclose()
            await fake.stop()

    message = asyncio.run(main())
    assert "HTTP 401" in message
    assert "api_key_header" in message
    assert secret not in message
    assert "\n" not in message


def test_get_block_sends_the_parameters_the_node_needs() -> None:
    fake = FakeSolana(1, 3, finalized=3)

    async def main() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        await fake.start()
        rpc = SolanaRpc(fake.rpc_url)
        try:
            return await rpc.get_block(2, "finalized"), await rpc.get_transaction(
                fake.blocks[2]["transactions"][2]["transaction"]["signatures"][0], "finalized"
            )
        finally:
            await rpc.aclose()
            await fake.stop()

    block, tx = asyncio.run(main())
    assert block is not None
    assert "rewards" not in block
    assert tx is not None
    assert tx["slot"] == 2
    method, params = fake.calls[0]
    assert (method, params) == (
        "getBlock",
        [2, {"commitment": "finalized", "encoding": "jsonParsed", "maxSupportedTransactionVersion": 0,
             "transactionDetails": "full", "rewards": False}],
    )  # fmt: skip


def test_settings_check_urls_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="must be a http or https URL"):
        SolanaSettings.model_validate({"type": "solana", "rpc_url": "ftp://x"})
    with pytest.raises(ValueError, match="go together"):
        SolanaSettings.model_validate({"type": "solana", "api_key_header": "x-api-key"})
    settings = SolanaSettings.model_validate({"type": "solana", "rpc_url_env": "SOLANA_RPC_URL"})
    monkeypatch.delenv("SOLANA_RPC_URL", raising=False)
    with pytest.raises(ConfigError, match="SOLANA_RPC_URL, which is not set"):
        settings.resolved_rpc_url()
    monkeypatch.setenv("SOLANA_RPC_URL", "https://mainnet.helius-rpc.com/?api-key=abc")
    assert settings.resolved_rpc_url().endswith("abc")
    assert redact_url("https://mainnet.helius-rpc.com/?api-key=abc") == "https://mainnet.helius-rpc.com/…"
    assert redact_url("wss://user:pw@node.example:8900") == "wss://node.example:8900/…"


def test_a_restart_resumes_after_the_last_slot_without_doubles() -> None:
    fake = FakeSolana(50, 70, skipped={55}, finalized=60)
    first: dict[str, int | None] = {}

    async def stop_at_60(c: SolanaConnector) -> None:
        await until(lambda: c.last_slot == 60, "slot 60")
        first["last"] = c.last_slot

    async def continue_to_70(c: SolanaConnector) -> None:
        await fake.finalize_to(70)
        await until(lambda: c.last_slot == 70, "slot 70")

    async def main() -> list[OnchainItem]:
        _, before = await run_against(fake, {"start_slot": 50}, stop_at_60)
        last = first["last"]
        assert last is not None
        await fake.start()
        try:
            config = {"type": "solana", "rpc_url": fake.rpc_url, "ws_url": fake.ws_url, "start_slot": 50}
            connector = SolanaConnector(SolanaSettings.model_validate(config), FAST, resume_from=last + 1)
            queue: asyncio.Queue[OnchainItem] = asyncio.Queue()
            task = asyncio.create_task(connector.stream(queue))
            try:
                await continue_to_70(connector)
            finally:
                connector.shutdown()
                await asyncio.wait_for(task, 10)
        finally:
            await fake.stop()
        return before + drain(queue)

    assert_exactly_once(asyncio.run(main()), fake.produced())


def test_the_fake_refuses_what_a_node_refuses() -> None:
    """The fake is only worth its tests if it answers like a node: v0 transactions need the version."""
    fake = FakeSolana(1, 3, skipped={2}, finalized=3)

    async def main() -> list[int | None]:
        await fake.start()
        rpc = SolanaRpc(fake.rpc_url)
        codes: list[int | None] = []
        try:
            for params in ([1, {"encoding": "jsonParsed"}], [2, {"encoding": "jsonParsed"}]):
                with pytest.raises(RpcError) as caught:
                    await rpc.call("getBlock", params)
                codes.append(caught.value.code)
            assert await rpc.get_block(2, "finalized") is None  # skipped: an answer, not an error
            assert await rpc.get_blocks(1, 3, "finalized") == [1, 3]
        finally:
            await rpc.aclose()
            await fake.stop()
        return codes

    assert asyncio.run(main()) == [-32015, -32007]
