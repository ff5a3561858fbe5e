"""The Ethereum connector: confirmed blocks -> OnchainEvents on the queue; nothing lost or doubled.

Follows :class:`connectors.base.BaseConnector`'s shape (``stream(queue)``, ``shutdown``,
``health_check``, the same reconnect backoff, metrics and dead letters) without its trade-id gap fill:
a chain's gap fill is by block number.

* Heads: ``eth_subscribe newHeads`` over WebSocket (or, with ``ws_url: off``, ``eth_blockNumber``
  every ``poll_interval_seconds``; a subscribed connector also polls when no head came for that long).
* A block ``n`` is read once ``head - n >= confirmations``: ``eth_getBlockByNumber(n, true)``, then
  ``eth_getLogs`` by its ``blockHash`` with our events' topics (one block, one consistent view), and
  the receipts' status of value transactions that call code (a reverted one moved no ETH). Unknown
  pools are asked ``token0()``/``token1()`` and unknown tokens ``decimals()``/``symbol()``, one
  ``eth_call`` each, cached for the process (failures too: such logs are dead-lettered with the reason).
* Gap fill: the connector keeps the next block number to read. After a disconnect it reads every
  block from there up to the confirmed head before waiting for heads again, so every block is read
  once and in order. ``start_block`` ("latest" = the newest confirmed block, or a number) applies
  when the process starts; the base class has no resume seam, so a restart begins at ``start_block``
  again (deterministic event ids make a replayed range harmless downstream), or at ``resume_from``
  when the caller keeps :attr:`EthereumConnector.next_block` somewhere durable.
* Reorgs: the hashes of the last ``reorg_window_blocks`` emitted blocks are kept. A reorg no deeper
  than ``confirmations`` is invisible (those blocks were not emitted yet). When a new block's
  ``parentHash`` is not the hash we emitted for its parent, the chain changed below the confirmation
  depth: the connector walks back to the last block whose hash still matches and re-reads every block
  after it, emitting the new blocks' events (an event that is in both is the same event_id, so it
  replaces the old one wherever events are upserted by id). Events of the orphaned blocks that are
  not in the new ones were already emitted and stay emitted: the stream has no retraction; the
  ``reorgs`` counter and a warning log say it happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import OrderedDict
from typing import Any

import orjson
from eth_abi.exceptions import DecodingError

from coattail.chains.tokens import Pool, Token, TokenRegistry, load_registry
from coattail.chains.valuation import PriceBook
from coattail.contracts.onchain import OnchainEvent
from coattail.retry import one_line, retry_async
from coattail.settings.models import ReconnectSettings
from connectors.base import DeadLetter, RecentIds, SessionFailedError, reconnect_backoff
from connectors.ethereum import abi
from connectors.ethereum.normalize import PROTOCOL_OF_KIND, EthereumNormalizer, clean_symbol
from connectors.ethereum.rpc import (
    METHOD_NOT_FOUND,
    HeadSubscription,
    Redactor,
    RpcClient,
    RpcError,
    RpcUnavailable,
)
from connectors.ethereum.settings import EthereumSettings
from connectors.metrics import Metrics
from connectors.trade import now_iso

log = logging.getLogger("connectors.ethereum")
CHAIN = "ethereum"
Item = OnchainEvent | DeadLetter
# Value transactions that call code, per block, above which one eth_getBlockReceipts beats single receipts.
BLOCK_RECEIPTS_ABOVE = 4
_UNRESOLVED_LIMIT = 100_000


def _moves_value(tx: dict[str, Any]) -> bool:
    try:
        return abi.quantity(tx.get("value"), "value") > 0
    except ValueError:
        return False  # the normaliser dead-letters a malformed transaction with the reason


class _BlockGoneError(Exception):
    """The block read by number was replaced before its logs were read (a reorg at the head)."""


class EthereumConnector:
    name = CHAIN

    def __init__(
        self,
        settings: EthereumSettings,
        reconnect: ReconnectSettings | None = None,
        *,
        metrics: Metrics | None = None,
        registry: TokenRegistry | None = None,
        book: PriceBook | None = None,
        env: dict[str, str] | None = None,
        resume_from: int | None = None,
        dedupe_size: int = 100_000,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or load_registry(CHAIN, settings.token_files)
        self.normalizer = EthereumNormalizer(self.registry, book if book is not None else PriceBook())
        headers = settings.headers(env)
        http_url, self.ws_url = settings.http_url(env), settings.websocket_url(env)
        self.redact = Redactor([http_url, self.ws_url], headers.values())
        self._headers = headers
        self.rpc = RpcClient(
            http_url, headers=headers, timeout=settings.request_timeout_seconds, redactor=self.redact
        )
        self.metrics = metrics or Metrics()
        self._backoff = reconnect_backoff(reconnect or ReconnectSettings())
        self._rng = rng or random.Random()
        self.next_block: int | None = resume_from  # the next block to read (None: from start_block)
        self.emitted: OrderedDict[int, str] = OrderedDict()  # block number -> hash we emitted it with
        self._recent = RecentIds(dedupe_size)
        self._unresolved: dict[str, str] = {}  # pool/token address -> why its eth_call failed
        self._stopping = asyncio.Event()
        self.subscription: HeadSubscription | None = None
        self._closing: asyncio.Future[None] | None = None
        self.head: int | None = None
        self.last_progress = time.monotonic()
        self.sessions = 0
        self.reorgs = 0
        m, label = self.metrics, CHAIN
        self._m_blocks = m.received.labels(label)
        self._m_events = m.normalised.labels(label)
        self._m_duplicates = m.duplicates.labels(label)
        self._m_dead = m.dead_lettered.labels(label)
        self._m_filled = m.gap_filled.labels(label)

    # -- the connector interface (as BaseConnector's) ----------------------------------------------
    def health_check(self) -> bool:
        """True while a head was seen (or a block read) within stale_after_seconds."""
        if self._stopping.is_set():
            return False
        return time.monotonic() - self.last_progress < self.settings.stale_after_seconds

    def shutdown(self) -> None:
        """Stop streaming: the loop leaves at once (the WebSocket is closed) or after the block it reads."""
        self._stopping.set()
        sub = self.subscription
        if sub is not None and sub.ws is not None:
            self._closing = asyncio.ensure_future(sub.ws.close())

    async def stream(self, queue: asyncio.Queue[Item]) -> None:
        """Emit confirmed blocks' events (and dead letters) into ``queue`` until ``shutdown``."""
        try:
            while not self._stopping.is_set():
                outcome = await retry_async(
                    lambda: self._session(queue),
                    what=f"ethereum node {self.rpc.where}",
                    deadline_seconds=math.inf,  # a connector never gives up; its health says so
                    retryable=lambda exc: isinstance(exc, SessionFailedError),
                    backoff=self._backoff,
                    sleep=self._wait_unless_stopping,
                    logger=log,
                    rng=self._rng,
                )
                if outcome == "lost":
                    await self._wait_unless_stopping(self._backoff.delay(0, self._rng))
        finally:
            if self.subscription is not None:
                await self.subscription.close()
            await self.rpc.aclose()
            self.metrics.connected.labels(CHAIN).set(0)

    # -- sessions --------------------------------------------------------------------------------------
    async def _wait_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _session(self, queue: asyncio.Queue[Item]) -> str:
        """One connection's life: "stopped", "lost" after a live stretch; SessionFailedError before."""
        if self._stopping.is_set():
            return "stopped"
        live = False
        try:
            if self.ws_url is not None:
                self.subscription = HeadSubscription(self.ws_url, headers=self._headers, redactor=self.redact)
                await self.subscription.open()
            self.metrics.connected.labels(CHAIN).set(1)
            if self.sessions:
                self.metrics.reconnects.labels(CHAIN).inc()
            self.sessions += 1
            log.info(
                "connected", extra={"chain": CHAIN, "rpc": self.rpc.where, "ws": Redactor.url(self.ws_url)}
            )
            filled = await self._catch_up(queue, None)  # the gap since the last session (or the start)
            if self.sessions > 1:
                self._m_filled.inc(filled)
            live = True
            wait = self.settings.poll_interval_seconds
            while not self._stopping.is_set():
                announced = None
                if self.subscription is not None:
                    announced = await self.subscription.next_head(wait)
                else:
                    await self._wait_unless_stopping(wait)
                if not self._stopping.is_set():
                    await self._catch_up(queue, announced)
            return "stopped"
        except (RpcUnavailable, RpcError, ValueError) as exc:
            if self._stopping.is_set():
                return "stopped"
            log.warning("connection lost", extra={"chain": CHAIN, "error": self.redact(one_line(exc))})
            if live:
                return "lost"
            raise SessionFailedError(self.redact(one_line(exc))) from None
        finally:
            self.metrics.connected.labels(CHAIN).set(0)
            if self.subscription is not None:
                await self.subscription.close()
                self.subscription = None

    async def drop_connection(self) -> None:
        """Close the WebSocket from our side (tests force a disconnect with it; so may an operator)."""
        sub = self.subscription
        if sub is not None and sub.ws is not None:
            await sub.ws.close()

    # -- blocks ------------------------------------------------------------------------------------------
    async def _catch_up(self, queue: asyncio.Queue[Item], announced: int | None) -> int:
        """Read every block from ``next_block`` up to the confirmed head; returns how many were read."""
        head = (
            announced
            if announced is not None
            else abi.quantity(await self.rpc.call("eth_blockNumber", []), "head")
        )
        self.head = head if self.head is None else max(self.head, head)
        self.last_progress = time.monotonic()
        confirmed = self.head - self.settings.confirmations
        if self.next_block is None:
            start = self.settings.start_block
            self.next_block = max(0, confirmed if start == "latest" else start)
            log.info("starting", extra={"chain": CHAIN, "block": self.next_block, "head": self.head})
        read = 0
        while self.next_block <= confirmed and not self._stopping.is_set():
            if not await self._read_block(self.next_block, queue, reorged=False):
                break  # the node does not serve it yet (a WS head ahead of the HTTP node)
            self.metrics.last_block.labels(CHAIN).set(self.next_block)
            self.next_block += 1
            read += 1
            self.last_progress = time.monotonic()
        return read

    async def _read_block(self, number: int, queue: asyncio.Queue[Item], *, reorged: bool) -> bool:
        for _attempt in range(3):
            block = await self.rpc.call("eth_getBlockByNumber", [hex(number), True])
            if block is None:
                return False
            parent = self.emitted.get(number - 1)
            if not reorged and parent is not None and block.get("parentHash", "").lower() != parent:
                await self._reorg(number - 1, queue)
                continue  # read the block again on top of the re-read chain
            try:
                await self._emit_block(block, queue)
            except _BlockGoneError:
                continue
            # A re-read block keeps its place: the dict stays in block order, the oldest first out.
            self.emitted[number] = str(block["hash"]).lower()
            while len(self.emitted) > self.settings.reorg_window_blocks:
                self.emitted.popitem(last=False)
            return True
        raise RpcUnavailable(f"block {number} kept changing while it was read")

    async def _reorg(self, below: int, queue: asyncio.Queue[Item]) -> None:
        """The chain changed at or below ``below``: find where it forked, re-read the blocks after it."""
        changed: list[int] = []
        number = below
        while number in self.emitted:
            current = await self.rpc.call("eth_getBlockByNumber", [hex(number), False])
            if current is not None and str(current.get("hash", "")).lower() == self.emitted[number]:
                break
            changed.append(number)
            number -= 1
        self.reorgs += 1
        log.warning(
            "reorg below the confirmation depth: re-reading blocks",
            extra={"chain": CHAIN, "blocks": sorted(changed), "depth": len(changed),
                   "confirmations": self.settings.confirmations, "beyond_window": number not in self.emitted},
        )  # fmt: skip
        for n in sorted(changed):
            await self._read_block(n, queue, reorged=True)

    async def _emit_block(self, block: dict[str, Any], queue: asyncio.Queue[Item]) -> None:
        block_hash = abi.hash32(block.get("hash"), "hash")
        try:
            raw_logs = await self.rpc.call(
                "eth_getLogs", [{"blockHash": block_hash, "topics": abi.LOG_TOPICS}]
            )
        except RpcUnavailable:
            raise
        except RpcError as exc:  # "unknown block": replaced between the two reads
            raise _BlockGoneError(str(exc)) from None
        if type(raw_logs) is not list:
            raise RpcError("eth_getLogs: the result is not a list")
        self._m_blocks.inc()
        received_at = now_iso()
        decoded: list[abi.DecodedLog] = []
        for raw in raw_logs:
            try:
                item = abi.decode_log(raw)
            except ValueError as exc:
                await self._dead(queue, f"log: {exc}", raw, received_at)
                continue
            if (
                item is not None
                and item.block_hash == block_hash
                and not (type(raw) is dict and raw.get("removed"))
            ):
                decoded.append(item)
        await self._resolve(decoded)
        failed = await self._failed_value_txs(block)
        events, rejects = self.normalizer.block_events(block, decoded, failed)
        for reason, raw in rejects:
            await self._dead(queue, reason, raw, received_at)
        for event in events:
            # A re-read block (reorg) re-emits all its events: their ids are the same where the event is.
            if self._recent.add(event.event_id) or self._reorging(block):
                self._m_events.inc()
                await queue.put(event)
            else:
                self._m_duplicates.inc()

    def _reorging(self, block: dict[str, Any]) -> bool:
        number = abi.quantity(block.get("number"), "number")
        return number in self.emitted and self.emitted[number] != str(block.get("hash", "")).lower()

    async def _dead(self, queue: asyncio.Queue[Item], reason: str, raw: Any, received_at: str) -> None:
        self._m_dead.inc()
        try:
            text = orjson.dumps(raw).decode()
        except TypeError:
            text = repr(raw)
        await queue.put(DeadLetter.of(CHAIN, reason, text, received_at))

    # -- what the chain must tell us once: receipts' status, unknown pools and tokens ----------------------
    async def _failed_value_txs(self, block: dict[str, Any]) -> set[str]:
        """Hashes of reverted value transactions. A plain transfer (no input) cannot revert; one that
        calls code (a router, a contract wallet) can, so its receipt says whether the ETH moved."""
        calls = [
            str(tx.get("hash", "")).lower()
            for tx in block.get("transactions") or []
            if type(tx) is dict and _moves_value(tx) and tx.get("input") not in (None, "0x", "")
        ]
        if not calls:
            return set()
        receipts: list[Any] = []
        if len(calls) > BLOCK_RECEIPTS_ABOVE:
            try:
                receipts = await self.rpc.call("eth_getBlockReceipts", [block["hash"]]) or []
            except RpcError as exc:
                if exc.code != METHOD_NOT_FOUND:
                    raise
        if not receipts:
            receipts = await asyncio.gather(*(self.rpc.call("eth_getTransactionReceipt", [h]) for h in calls))
        wanted = set(calls)
        return {
            str(r["transactionHash"]).lower()
            for r in receipts
            if type(r) is dict
            and str(r.get("transactionHash", "")).lower() in wanted
            and r.get("status") == "0x0"
        }

    async def _call(self, to: str, data: str) -> bytes:
        result = await self.rpc.call("eth_call", [{"to": to, "data": data}, "latest"])
        return abi.hex_bytes(result, "eth_call result")

    async def _resolve(self, decoded: list[abi.DecodedLog]) -> None:
        """Learn every unknown pool (token0/token1) and then every unknown token (decimals, symbol)."""
        pools = {a for a in self.normalizer.unknown_pools(decoded) if a not in self._unresolved}
        kinds = {d.address: d.kind for d in decoded if d.kind in PROTOCOL_OF_KIND}
        await asyncio.gather(*(self._learn_pool(a, PROTOCOL_OF_KIND[kinds[a]]) for a in sorted(pools)))
        tokens = {a for a in self.normalizer.unknown_tokens(decoded) if a not in self._unresolved}
        await asyncio.gather(*(self._learn_token(a) for a in sorted(tokens)))

    def _give_up_on(self, address: str, why: str) -> None:
        if len(self._unresolved) >= _UNRESOLVED_LIMIT:
            self._unresolved.clear()
        self._unresolved[address] = why
        log.warning("cannot read a contract", extra={"chain": CHAIN, "address": address, "error": why})

    async def _learn_pool(self, address: str, protocol: str) -> None:
        try:
            token0 = abi.decode_address(await self._call(address, abi.TOKEN0))
            token1 = abi.decode_address(await self._call(address, abi.TOKEN1))
        except RpcUnavailable:
            raise
        except (RpcError, ValueError, DecodingError) as exc:
            self._give_up_on(address, f"token0()/token1(): {self.redact(one_line(exc))}")
            return
        self.registry.learn_pool(Pool(CHAIN, address, protocol, token0, token1))

    async def _learn_token(self, address: str) -> None:
        try:
            decimals = abi.decode_uint8(await self._call(address, abi.DECIMALS))
        except RpcUnavailable:
            raise
        except (RpcError, ValueError, DecodingError) as exc:
            self._give_up_on(address, f"decimals(): {self.redact(one_line(exc))}")
            return
        try:
            symbol = clean_symbol(abi.decode_symbol(await self._call(address, abi.SYMBOL)))
        except RpcUnavailable:
            raise
        except (RpcError, ValueError, DecodingError):
            symbol = None  # symbol() is optional in ERC-20: the event carries no symbol then
        self.registry.learn(Token(CHAIN, address, symbol or "", decimals, None))
