"""The Ethereum connector against a real anvil with real Uniswap V2 contracts (tests/chains/conftest.py).

Planted through the real Router02: token swaps both ways, an ETH->token swap (a value transaction that
calls code), ERC-20 and native transfers, a liquidity add and remove. Checked: every planted event
arrives exactly once across a forced WebSocket drop (the blocks mined while disconnected are filled),
amounts are exact for the 6-decimal USDC and the 18-decimal WETH/DAI, the Sync reserves and prices match
the constant-product formula; after ``anvil_reorg`` nothing of the orphaned block is emitted, and a
reorg deeper than the confirmations is re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from coattail.chains.tokens import load_registry, scale
from coattail.chains.valuation import PriceBook
from coattail.contracts.onchain import NATIVE_LOG_INDEX, NATIVE_TOKEN, OnchainEvent
from coattail.settings.models import ReconnectSettings
from connectors.base import DeadLetter
from connectors.chainsim import amm
from connectors.chainsim.deploy import NO_DEADLINE, contract, reserves, send
from connectors.ethereum import abi
from connectors.ethereum.connector import EthereumConnector
from connectors.ethereum.settings import EthereumSettings
from connectors.metrics import Metrics
from tests.chains.conftest import ChainWorld

pytestmark = pytest.mark.services
CONFIRMATIONS = 2
ETH_USDT = Decimal("3000.5")


def overlay(world: ChainWorld, tmp_path: Path) -> Path:
    """The local USDC and WETH with their price references; DAI and the pools left to the chain (eth_call)."""
    d = world.deployment
    path = tmp_path / "local-tokens.yaml"
    path.write_text(
        "tokens:\n"
        f'  "{d.usdc.address}": {{symbol: USDC, decimals: 6, price_ref: usd}}\n'
        f'  "{d.weth}": {{symbol: WETH, decimals: 18, price_ref: "binance:ETH-USDT"}}\n'
    )
    return path


def make_connector(world: ChainWorld, tmp_path: Path, start: int, **extra: Any) -> EthereumConnector:
    settings = EthereumSettings(
        rpc_url=world.node.url, confirmations=CONFIRMATIONS, start_block=start, poll_interval_seconds=0.3,
        token_files=[str(overlay(world, tmp_path))], **extra,
    )  # fmt: skip
    book = PriceBook(max_age=timedelta(days=3650))
    book.update("binance", "ETH-USDT", ETH_USDT, datetime(2020, 1, 1, tzinfo=UTC))
    reconnect = ReconnectSettings(initial_backoff_seconds=2.0, max_backoff_seconds=2.0, jitter=0)
    return EthereumConnector(settings, reconnect, metrics=Metrics(), book=book)


class Run:
    """The connector streaming in the background; ``items`` fills as it emits."""

    def __init__(self, connector: EthereumConnector) -> None:
        self.connector = connector
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.items: list[OnchainEvent | DeadLetter] = []

    async def __aenter__(self) -> Run:
        self._stream = asyncio.create_task(self.connector.stream(self.queue))
        self._drain = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        while True:
            self.items.append(await self.queue.get())

    async def __aexit__(self, *exc: object) -> None:
        self.connector.shutdown()
        await asyncio.wait_for(self._stream, 15)
        while not self.queue.empty():
            self.items.append(self.queue.get_nowait())
        self._drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._drain

    @property
    def events(self) -> list[OnchainEvent]:
        return [i for i in self.items if isinstance(i, OnchainEvent)]

    async def until(self, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self._stream.done():
                self._stream.result()  # a crash shows its error
                raise AssertionError(f"the connector stopped before {what}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}; emitted up to block {self.connector.next_block}"
                )
            await asyncio.sleep(0.05)

    async def emitted_through(self, block: int) -> None:
        await self.until(f"block {block}", lambda: (self.connector.next_block or 0) > block)


def mine(w3: Web3, blocks: int) -> None:
    w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[attr-defined]


async def on_chain(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking web3 call off the event loop (the connector keeps running meanwhile)."""
    return await asyncio.to_thread(fn, *args)


# -- planting through the real router, with the expected amounts worked out before sending ------------
class Planter:
    def __init__(self, world: ChainWorld) -> None:
        self.w3: Web3 = world.w3  # type: ignore[assignment]
        self.d = world.deployment
        self.me = self.d.deployer
        self.router = contract(self.w3, "UniswapV2Router02", self.d.router)
        self.usdc = contract(self.w3, "TestToken", self.d.usdc.address)
        self.dai = contract(self.w3, "TestToken", self.d.dai.address)
        self.expected: list[dict[str, Any]] = []  # the swaps / liquidity events / transfers planted
        self.blocks: list[int] = []

    def _plant(self, receipt: Any, **expect: Any) -> None:
        self.blocks.append(int(receipt["blockNumber"]))
        self.expected.append({"tx_hash": receipt["transactionHash"].to_0x_hex(), **expect})

    def swap_usdc_for_weth(self, usdc_raw: int) -> None:
        pool = self.d.usdc_weth
        r0, r1 = reserves(self.w3, pool)
        usdc_is_0 = pool.token0 == self.d.usdc.address
        r_in, r_out = (r0, r1) if usdc_is_0 else (r1, r0)
        out = amm.amount_out(usdc_raw, r_in, r_out)
        call = self.router.functions.swapExactTokensForTokens(
            usdc_raw, 0, [self.d.usdc.address, self.d.weth], self.me, NO_DEADLINE
        )
        receipt = send(self.w3, call, self.me, what="USDC->WETH swap")
        self._plant(
            receipt, event_type="swap", pool=pool.address, token_in=self.d.usdc.address, raw_in=usdc_raw,
            dec_in=6,
            token_out=self.d.weth, raw_out=out, dec_out=18, reserves_before=(r_in, r_out),
        )  # fmt: skip

    def swap_eth_for_dai(self, wei: int) -> None:
        pool = self.d.pools["DAI/WETH"]
        r0, r1 = reserves(self.w3, pool)
        weth_is_0 = pool.token0 == self.d.weth
        r_in, r_out = (r0, r1) if weth_is_0 else (r1, r0)
        out = amm.amount_out(wei, r_in, r_out)
        call = self.router.functions.swapExactETHForTokens(
            0, [self.d.weth, self.d.dai.address], self.me, NO_DEADLINE
        )
        receipt = send(self.w3, call, self.me, value=wei, what="ETH->DAI swap")
        self._plant(
            receipt, event_type="swap", pool=pool.address, token_in=self.d.weth, raw_in=wei, dec_in=18,
            token_out=self.d.dai.address, raw_out=out, dec_out=18, reserves_before=(r_in, r_out), native=wei,
        )  # fmt: skip

    def transfer_usdc(self, to: str, raw: int) -> None:
        receipt = send(self.w3, self.usdc.functions.transfer(to, raw), self.me, what="USDC transfer")
        self._plant(receipt, event_type="transfer", token=self.d.usdc.address, raw=raw, dec=6, to=to)

    def transfer_eth(self, to: str, wei: int) -> None:
        tx = self.w3.eth.send_transaction({"from": self.me, "to": to, "value": wei})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        self._plant(receipt, event_type="transfer", token=NATIVE_TOKEN, raw=wei, dec=18, to=to)

    def add_liquidity_usdc(self, usdc_raw: int) -> None:
        pool = self.d.usdc_weth
        r0, r1 = reserves(self.w3, pool)
        usdc_is_0 = pool.token0 == self.d.usdc.address
        r_usdc, r_weth = (r0, r1) if usdc_is_0 else (r1, r0)
        weth = amm.quote(usdc_raw, r_usdc, r_weth)
        call = self.router.functions.addLiquidityETH(
            self.d.usdc.address, usdc_raw, 0, 0, self.me, NO_DEADLINE
        )
        receipt = send(self.w3, call, self.me, value=weth, what="add liquidity")
        raw0, raw1 = (usdc_raw, weth) if usdc_is_0 else (weth, usdc_raw)
        self._plant(receipt, event_type="liquidity_add", pool=pool.address, raw0=raw0, raw1=raw1,
                    reserves_after=(r0 + raw0, r1 + raw1), native=weth)  # fmt: skip

    def remove_liquidity_usdc(self, share: Fraction) -> None:
        pool = self.d.usdc_weth
        pair = contract(self.w3, "UniswapV2Pair", pool.address)
        liquidity = int(pair.functions.balanceOf(self.me).call() * share)
        supply = pair.functions.totalSupply().call()
        r0, r1 = reserves(self.w3, pool)
        raw0, raw1 = amm.burned_amounts(liquidity, r0, r1, supply)
        send(self.w3, pair.functions.approve(self.d.router, liquidity), self.me, what="approve LP")
        call = self.router.functions.removeLiquidity(
            self.d.usdc.address, self.d.weth, liquidity, 0, 0, self.me, NO_DEADLINE
        )
        receipt = send(self.w3, call, self.me, what="remove liquidity")
        self._plant(receipt, event_type="liquidity_remove", pool=pool.address, raw0=raw0, raw1=raw1,
                    reserves_after=(r0 - raw0, r1 - raw1))  # fmt: skip


def check_planted(planter: Planter, events: list[OnchainEvent]) -> None:
    """Every planted event exactly once, with exact amounts and constant-product prices."""
    ids = Counter(e.event_id for e in events)
    assert [i for i, n in ids.items() if n > 1] == [], "an event was emitted twice"
    by_tx: dict[str, list[OnchainEvent]] = {}
    for e in events:
        by_tx.setdefault(e.tx_hash, []).append(e)
    for want in planter.expected:
        got = by_tx.get(want["tx_hash"], [])
        kind = want["event_type"]
        if kind == "transfer":
            (event,) = [e for e in got if e.event_type == "transfer" and e.token == want["token"]]
            assert event.amount == scale(want["raw"], want["dec"])
            assert (event.from_address, event.to_address) == (planter.me, want["to"])
            if want["token"] == NATIVE_TOKEN:
                assert event.log_index == NATIVE_LOG_INDEX
                assert event.usd_value == round(event.amount * ETH_USDT, 18)
            else:
                assert event.usd_value == event.amount  # USDC is priced as a dollar
            continue
        (event,) = [e for e in got if e.event_type == kind]
        assert (event.pool, event.protocol, event.trader) == (want["pool"], "uniswap-v2", planter.me)
        if kind == "swap":
            assert (event.token_in, event.amount_in) == (
                want["token_in"],
                scale(want["raw_in"], want["dec_in"]),
            )
            assert (event.token_out, event.amount_out) == (
                want["token_out"],
                scale(want["raw_out"], want["dec_out"]),
            )
            r_in, r_out = want["reserves_before"]
            after_in, after_out = r_in + want["raw_in"], r_out - want["raw_out"]
            assert (event.reserve_in, event.reserve_out) == (
                scale(after_in, want["dec_in"]),
                scale(after_out, want["dec_out"]),
            )
            unit = Fraction(10 ** want["dec_in"], 10 ** want["dec_out"])
            for price, (a, b) in (
                (event.price_before, (r_out, r_in)),
                (event.price_after, (after_out, after_in)),
            ):
                exact = Fraction(a, b) * unit
                assert price == round(Decimal(exact.numerator) / Decimal(exact.denominator), 18)
            # Constant product: with the fee taken from the input, k never falls; the output is the
            # largest that keeps it (one wei more would break it).
            assert (r_in * 1000 + want["raw_in"] * 997) * after_out >= r_in * r_out * 1000
            assert event.price_after < event.price_before
        else:
            pool = next(p for p in planter.d.pools.values() if p.address == want["pool"])
            dec0, dec1 = (planter.d.token_at(t).decimals for t in (pool.token0, pool.token1))
            assert (event.token_in, event.token_out) == (pool.token0, pool.token1)
            assert (event.amount_in, event.amount_out) == (
                scale(want["raw0"], dec0),
                scale(want["raw1"], dec1),
            )
            assert (event.reserve_in, event.reserve_out) == (
                scale(want["reserves_after"][0], dec0),
                scale(want["reserves_after"][1], dec1),
            )
        if "native" in want:  # the ETH the transaction carried to the router
            (native,) = [e for e in got if e.token == NATIVE_TOKEN]
            assert (native.amount, native.to_address) == (scale(want["native"], 18), planter.d.router)


def test_every_planted_event_once_across_a_websocket_drop(chain_snapshot: ChainWorld, tmp_path: Path) -> None:
    world = chain_snapshot
    w3: Web3 = world.w3  # type: ignore[assignment]
    planter = Planter(world)
    wallet = w3.eth.accounts[3]

    async def scenario() -> Run:
        start = await on_chain(lambda: w3.eth.block_number + 1)
        async with Run(make_connector(world, tmp_path, start)) as run:
            await run.until("the subscription", lambda: run.connector.subscription is not None)
            await on_chain(planter.swap_usdc_for_weth, 25_000 * 10**6)
            await on_chain(planter.transfer_usdc, wallet, 1_234_567_891)  # 1234.567891 USDC
            await on_chain(planter.transfer_eth, wallet, 3 * 10**18 + 7)
            await on_chain(planter.swap_eth_for_dai, 2 * 10**18 + 12345)
            await on_chain(mine, w3, CONFIRMATIONS)
            await run.emitted_through(planter.blocks[-1])
            assert run.connector.sessions == 1
            # Drop the WebSocket from the client side; plant while the connector waits to reconnect.
            await run.connector.drop_connection()
            await run.until("the drop", lambda: run.connector.subscription is None)
            await on_chain(planter.add_liquidity_usdc, 30_000 * 10**6)
            await on_chain(planter.swap_usdc_for_weth, 7_777_777_777)
            await on_chain(planter.remove_liquidity_usdc, Fraction(1, 10))
            await on_chain(mine, w3, CONFIRMATIONS)
            await run.emitted_through(planter.blocks[-1])
        return run

    run = asyncio.run(scenario())
    connector = run.connector
    assert connector.sessions == 2
    assert connector.metrics.reconnects.labels("ethereum")._value.get() == 1
    assert connector.metrics.gap_filled.labels("ethereum")._value.get() >= 3  # the blocks mined while away
    assert [i for i in run.items if isinstance(i, DeadLetter)] == []
    check_planted(planter, run.events)
    # DAI was learned from the chain (one decimals() and one symbol() call), as were the pools' sides.
    dai = connector.registry.token(world.deployment.dai.address)
    assert dai is not None
    assert (dai.symbol, dai.decimals) == ("DAI", 18)
    assert connector.registry.pool(world.deployment.usdc_weth.address) is not None


def test_an_orphaned_block_emits_nothing_and_a_deep_reorg_is_re_read(
    chain_snapshot: ChainWorld, tmp_path: Path
) -> None:
    world = chain_snapshot
    w3: Web3 = world.w3  # type: ignore[assignment]
    planter = Planter(world)
    wallet = w3.eth.accounts[4]

    def reorg(depth: int) -> None:
        reply = w3.provider.make_request("anvil_reorg", [depth, []])  # type: ignore[attr-defined]
        assert "error" not in reply, reply

    async def scenario() -> tuple[Run, dict[str, Any]]:
        start = await on_chain(lambda: w3.eth.block_number + 1)
        seen: dict[str, Any] = {}
        async with Run(make_connector(world, tmp_path, start)) as run:
            await run.until("the subscription", lambda: run.connector.subscription is not None)
            # 1. A transfer in the head block, orphaned at once (depth 1 <= confirmations).
            await on_chain(planter.transfer_eth, wallet, 11 * 10**18)
            orphan = planter.expected.pop()
            seen["orphan_tx"], seen["orphan_block"] = orphan["tx_hash"], planter.blocks.pop()
            await on_chain(reorg, 1)
            await on_chain(planter.transfer_eth, wallet, 5 * 10**18)
            await on_chain(mine, w3, CONFIRMATIONS)
            await run.emitted_through(planter.blocks[-1])
            seen["replacement"] = (await on_chain(w3.eth.get_block, seen["orphan_block"]))["hash"].to_0x_hex()
            # 2. A transfer in a block that was emitted, then a reorg deeper than the confirmations.
            await on_chain(planter.transfer_usdc, wallet, 42 * 10**6)
            deep_block = planter.blocks[-1]
            await on_chain(mine, w3, CONFIRMATIONS)
            await run.emitted_through(deep_block)
            head = await on_chain(lambda: w3.eth.block_number)
            await on_chain(reorg, head - deep_block + 1)
            await on_chain(mine, w3, CONFIRMATIONS + 1)
            await run.until("the re-read", lambda: run.connector.reorgs == 1)
            await run.emitted_through(head + 1)
            seen["deep_block"] = deep_block
            seen["deep_new_hash"] = (await on_chain(w3.eth.get_block, deep_block))["hash"].to_0x_hex()
        return run, seen

    run, seen = asyncio.run(scenario())
    events = run.events
    assert [e for e in events if e.tx_hash == seen["orphan_tx"]] == []
    assert {e.block_hash for e in events if e.block_number == seen["orphan_block"]} <= {seen["replacement"]}
    assert run.connector.emitted.get(seen["orphan_block"], seen["replacement"]) == seen["replacement"]
    # The deep reorg: the block was re-read and its new hash is the one remembered.
    assert run.connector.reorgs == 1
    assert run.connector.emitted[seen["deep_block"]] == seen["deep_new_hash"]
    check_planted(planter, events)  # the surviving transfers, each once


def test_an_api_key_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """The key rides in a header (from the environment) and in the URL path; neither is logged."""
    secret = "sk-live-0123456789abcdef"
    settings = EthereumSettings(
        rpc_url=f"http://127.0.0.1:1/v2/{secret}", ws_url="off", api_key_header="x-api-key",
        api_key_env="TEST_ETH_KEY", poll_interval_seconds=0.2,
    )  # fmt: skip
    connector = EthereumConnector(
        settings, ReconnectSettings(initial_backoff_seconds=0.1, max_backoff_seconds=0.2),
        env={"TEST_ETH_KEY": "hdr-" + secret}, registry=load_registry("ethereum"),
    )  # fmt: skip
    assert connector._headers == {"x-api-key": "hdr-" + secret}

    async def scenario() -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        task = asyncio.create_task(connector.stream(queue))
        await asyncio.sleep(1.5)  # a few failed attempts against the closed port
        connector.shutdown()
        await asyncio.wait_for(task, 10)

    with caplog.at_level("DEBUG"):
        asyncio.run(scenario())
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "failed" in text  # the retries were logged ...
    assert secret not in text  # ... without the key
    assert "http://127.0.0.1:1/***" in text
    with pytest.raises(ValueError, match="TEST_ETH_KEY is empty"):
        EthereumConnector(settings, env={}, registry=load_registry("ethereum"))


def test_polling_without_a_websocket(chain_snapshot: ChainWorld, tmp_path: Path) -> None:
    """``ws_url: off``: heads from eth_blockNumber every poll interval; the same events."""
    world = chain_snapshot
    w3: Web3 = world.w3  # type: ignore[assignment]
    planter = Planter(world)

    async def scenario() -> Run:
        start = await on_chain(lambda: w3.eth.block_number + 1)
        async with Run(make_connector(world, tmp_path, start, ws_url="off")) as run:
            await on_chain(planter.transfer_eth, w3.eth.accounts[5], 10**15)
            await on_chain(planter.swap_usdc_for_weth, 1_000 * 10**6)
            await on_chain(mine, w3, CONFIRMATIONS)
            await run.emitted_through(planter.blocks[-1])
            assert run.connector.subscription is None
        return run

    run = asyncio.run(scenario())
    check_planted(planter, run.events)


def test_settings_derive_the_websocket_url_and_refuse_bad_ones() -> None:
    keyed = EthereumSettings(rpc_url="https://eth-mainnet.g.alchemy.com/v2/abcdef123456")
    assert keyed.websocket_url() == "wss://eth-mainnet.g.alchemy.com/v2/abcdef123456"
    assert EthereumSettings(rpc_url="http://127.0.0.1:8545").websocket_url() == "ws://127.0.0.1:8545"
    assert EthereumSettings(ws_url="off").websocket_url() is None
    from_env = EthereumSettings(rpc_url="", rpc_url_env="ETH_URL")
    assert from_env.http_url({"ETH_URL": "https://node.example/v3/k"}) == "https://node.example/v3/k"
    with pytest.raises(ValueError, match=r"\$ETH_URL is empty"):
        from_env.http_url({})
    for bad, reason in [
        ({"rpc_url": "ws://127.0.0.1:8545"}, "must be an http"),
        ({"ws_url": "http://x"}, "ws_url must be a ws"),
        ({"rpc_url": ""}, "set rpc_url"),
        ({"api_key_header": "bad header"}, "not an HTTP header name"),
        ({"confirmations": -1}, "greater than or equal"),
        ({"start_block": "earliest"}, "start_block"),
    ]:
        with pytest.raises(ValueError, match=reason):
            EthereumSettings(**bad)
    from connectors.ethereum.rpc import Redactor

    assert Redactor.url("https://user:pw@node.example:8443/v2/key?x=1") == "https://node.example:8443/***"
    redact = Redactor(["https://node.example/v2/abcdef123456?apikey=qwertyuiop"], ["hdr-secret-1"])
    text = redact(
        "GET https://node.example/v2/abcdef123456?apikey=qwertyuiop failed; key abcdef123456 hdr-secret-1"
    )
    assert "abcdef123456" not in text
    assert "qwertyuiop" not in text
    assert "hdr-secret-1" not in text


def test_a_token_without_decimals_is_dead_lettered_with_the_reason(
    chain_snapshot: ChainWorld, tmp_path: Path
) -> None:
    """A contract that emits an ERC-20 Transfer but answers decimals() with nothing: asked once, then
    each of its logs is a dead letter that says why (the rest of the block still flows)."""
    world = chain_snapshot
    w3: Web3 = world.w3  # type: ignore[assignment]
    me, to = world.deployment.deployer, w3.eth.accounts[6]
    odd = "0x" + "0d" * 20
    # Runtime code: MSTORE the value at 0, then LOG3(0, 32, Transfer, from=me, to=to); returns nothing.
    word = lambda a: bytes(12) + bytes.fromhex(a[2:])  # noqa: E731
    code = (
        b"\x7f" + (10**18).to_bytes(32, "big") + b"\x60\x00\x52"
        + b"\x7f" + word(to) + b"\x7f" + word(me) + b"\x7f" + bytes.fromhex(abi.ERC20_TRANSFER.topic0[2:])
        + b"\x60\x20\x60\x00\xa3\x00"
    )  # fmt: skip
    w3.provider.make_request("anvil_setCode", [odd, "0x" + code.hex()])  # type: ignore[attr-defined]
    planter = Planter(world)
    odd_token = Web3.to_checksum_address(odd)

    def poke() -> None:
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": me, "to": odd_token}))

    async def scenario() -> Run:
        start = await on_chain(lambda: w3.eth.block_number + 1)
        async with Run(make_connector(world, tmp_path, start)) as run:
            for _ in range(2):  # two blocks: the second must not ask the chain again
                await on_chain(poke)
            await on_chain(planter.transfer_usdc, to, 5 * 10**6)
            await on_chain(mine, w3, CONFIRMATIONS)
            await run.emitted_through(planter.blocks[-1])
        return run

    run = asyncio.run(scenario())
    letters = [i for i in run.items if isinstance(i, DeadLetter)]
    assert len(letters) == 2
    assert all("decimals unknown (decimals() failed)" in letter.reason for letter in letters)
    assert all(odd_token in letter.reason for letter in letters)
    assert set(run.connector._unresolved) == {odd_token}  # remembered: decimals() was asked once
    assert letters[0].exchange == "ethereum"
    check_planted(planter, run.events)
