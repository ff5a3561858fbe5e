"""SolanaConnector: every block at ``commitment`` (finalized), in slot order, exactly once.

The chain is read over HTTP JSON-RPC: ``getSlot`` says how far the chain is; ``getBlocks`` lists the
produced slots of a range (skipped slots are simply absent; with ``use_get_blocks: false`` every slot
is asked with ``getBlock`` and a skipped one answers -32007/-32009, which is no event and no retry);
``getBlock`` (jsonParsed) per slot, normalised by :class:`~connectors.solana.normalize.SolanaNormalizer`.
The WebSocket (``rootSubscribe`` for finalized, ``slotSubscribe`` for confirmed), where configured,
only says *when* to look: each notification wakes the catch-up, which always runs from the last
processed slot to the tip. So a dropped WebSocket loses nothing (it reconnects with backoff and wakes
a catch-up at once: the gap fill), polling every ``poll_interval_seconds`` covers missed or absent
notifications, and nothing is doubled (the last processed slot only moves forward once a block's
events are queued; the recent-id set drops any overlap; event ids are deterministic anyway).
A finalized block never changes, so there is no reorg handling to do at ``finalized``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

import orjson
import websockets

from coattail.chains.tokens import TokenRegistry, load_registry
from coattail.chains.valuation import PriceBook
from coattail.contracts.onchain import OnchainEvent
from coattail.retry import one_line
from coattail.settings.models import ReconnectSettings
from connectors.base import DeadLetter, Item, RecentIds, reconnect_backoff
from connectors.metrics import Metrics
from connectors.rest import TransientError
from connectors.solana.normalize import SolanaNormalizer
from connectors.solana.rpc import BlockNotReadyError, RpcError, SolanaRpc
from connectors.solana.settings import SolanaSettings, redact_url
from connectors.trade import NormalizeError, now_iso

log = logging.getLogger("connectors.solana")
NAME = "solana"
OnchainItem = Item  # the writer queue's items: this connector puts OnchainEvents and DeadLetters there
SUBSCRIPTIONS = {"finalized": "rootSubscribe", "confirmed": "slotSubscribe"}
NOTIFICATIONS = frozenset(("rootNotification", "slotNotification"))


class SolanaConnector:
    """ADR-008 shape (``stream``, ``normalize``, ``health_check``, ``shutdown``) for a chain of slots."""

    name = NAME

    def __init__(
        self,
        settings: SolanaSettings,
        reconnect: ReconnectSettings | None = None,
        *,
        registry: TokenRegistry | None = None,
        book: PriceBook | None = None,
        metrics: Metrics | None = None,
        dedupe_size: int = 100_000,
        rpc: SolanaRpc | None = None,
        resume_from: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or load_registry(NAME, settings.token_files)
        self.book = book if book is not None else PriceBook()
        self.normalizer = SolanaNormalizer(self.registry, self.book)
        self.metrics = metrics or Metrics()
        self.rpc = rpc
        # The last slot whose events are all queued; a restart resumes at ``resume_from`` (a checkpoint's
        # last_slot + 1), else at start_slot, else at the tip.
        self.last_slot: int | None = None if resume_from is None else resume_from - 1
        self.ws_connections = 0
        self._ws_url = settings.resolved_ws_url()
        self._ws: Any = None
        self._closing: asyncio.Future[None] | None = None
        self._backoff = reconnect_backoff(reconnect or ReconnectSettings())
        self._rng = rng or random.Random()
        self._recent = RecentIds(dedupe_size)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._after_reconnect = False
        self._progress_at = time.monotonic()
        m = self.metrics
        self._m_blocks = m.received.labels(NAME)
        self._m_events = m.normalised.labels(NAME)
        self._m_duplicates = m.duplicates.labels(NAME)
        self._m_dead = m.dead_lettered.labels(NAME)
        self._m_skipped = m.ignored.labels(NAME)  # skipped slots: no block, nothing to emit
        self._m_gap = m.gap_filled.labels(NAME)
        self._m_gap_failures = m.gap_fill_failures.labels(NAME)

    # -- ADR-008 interface -----------------------------------------------------------------------
    def normalize(self, raw: Any) -> list[OnchainEvent]:
        """Events of one ``{"slot": N, "block": ...}`` or getTransaction result (the offline path)."""
        return self.normalizer.line(raw, now_iso())

    def health_check(self) -> bool:
        """True while a new slot was processed within ``stale_after_seconds``."""
        if self._stopping.is_set():
            return False
        return time.monotonic() - self._progress_at < self.settings.stale_after_seconds

    def shutdown(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._ws is not None:
            self._closing = asyncio.ensure_future(self._ws.close())

    async def stream(self, queue: asyncio.Queue[OnchainItem]) -> None:
        """Follow the chain into ``queue`` until ``shutdown``; RPC failures back off and retry."""
        rpc = self.rpc = self.rpc or SolanaRpc.from_settings(self.settings)
        follower = asyncio.create_task(self._follow(), name="solana-ws") if self._ws_url else None
        if follower is not None:
            follower.add_done_callback(_log_failure)
        failures = 0
        try:
            while not self._stopping.is_set():
                try:
                    await self._catch_up(rpc, queue)
                    failures = 0
                except BlockNotReadyError as exc:
                    log.info("block not available yet", extra={"chain": NAME, "error": str(exc)})
                except (RpcError, TransientError) as exc:
                    failures += 1
                    self._m_gap_failures.inc()
                    delay = self._backoff.delay(failures - 1, self._rng)
                    log.warning(
                        "catch-up failed, retrying",
                        extra={
                            "chain": NAME,
                            "error": self._scrub(one_line(exc)),
                            "delay_s": round(delay, 3),
                        },
                    )
                    await self._sleep(delay)
                    continue
                await self._wait_for_wake()
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            await rpc.aclose()
            self.metrics.connected.labels(NAME).set(0)

    # -- the catch-up: last processed slot -> tip ------------------------------------------------
    async def _catch_up(self, rpc: SolanaRpc, queue: asyncio.Queue[OnchainItem]) -> None:
        s = self.settings
        tip = await rpc.get_slot(s.commitment)
        if self.last_slot is None:
            self.last_slot = (s.start_slot if s.start_slot is not None else tip) - 1
            log.info("following", extra={"chain": NAME, "from_slot": self.last_slot + 1, "rpc": rpc.shown})
        if self.last_slot >= tip:
            return  # nothing new; health_check turns false if that lasts stale_after_seconds
        counted = self._after_reconnect
        self._after_reconnect = False
        while self.last_slot < tip and not self._stopping.is_set():
            start = self.last_slot + 1
            end = min(tip, start + s.max_slots_per_request - 1)
            if s.use_get_blocks:
                produced = await rpc.get_blocks(start, end, s.commitment)
                self._m_skipped.inc(end - start + 1 - len(produced))
            else:
                produced = list(range(start, end + 1))
            for slot in produced:
                if self._stopping.is_set():
                    return
                block = await rpc.get_block(slot, s.commitment)
                if block is None:
                    self._m_skipped.inc()
                else:
                    emitted = await self._emit_block(slot, block, queue)
                    if counted:
                        self._m_gap.inc(emitted)
                self.last_slot = slot
                self._progress_at = time.monotonic()
            self.last_slot = end
            self.metrics.last_block.labels(NAME).set(end)

    async def _emit_block(self, slot: int, block: dict[str, Any], queue: asyncio.Queue[OnchainItem]) -> int:
        received_at = now_iso()
        self._m_blocks.inc()
        try:
            result = self.normalizer.block(slot, block, received_at)
        except NormalizeError as exc:  # no hash or time: the block itself is unusable, keep it
            await self._dead(queue, str(exc), orjson.dumps({"slot": slot, "block": block}), received_at)
            return 0
        for rejected in result.rejected:
            await self._dead(queue, rejected.reason, orjson.dumps(rejected.raw), received_at)
        for note in result.notes:
            log.info("not emitted", extra={"chain": NAME, "slot": slot, "reason": note})
        emitted = 0
        for event in result.events:
            if not self._recent.add(event.event_id):
                self._m_duplicates.inc()
                continue
            await queue.put(event)
            emitted += 1
        self._m_events.inc(emitted)
        return emitted

    async def _dead(self, queue: asyncio.Queue[OnchainItem], reason: str, raw: bytes, at: str) -> None:
        self._m_dead.inc()
        await queue.put(DeadLetter.of(NAME, reason, raw, at))

    # -- the WebSocket: wake-ups only ------------------------------------------------------------------
    async def _follow(self) -> None:
        """Keep a subscription open; every notification (and every reconnect) wakes the catch-up."""
        method = SUBSCRIPTIONS[self.settings.commitment]
        attempt = 0
        while not self._stopping.is_set():
            try:
                async with websockets.connect(
                    self._ws_url, open_timeout=15, ping_interval=20, ping_timeout=20, max_size=2**20,
                    additional_headers=self.settings.headers(),
                ) as ws:  # fmt: skip
                    self._ws = ws
                    if not await self._subscribe(ws, method):
                        return  # the endpoint does not offer it: polling alone from now on
                    attempt = 0
                    await self._listen(ws)
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                if self._stopping.is_set():
                    return
                log.warning("websocket lost", extra={"chain": NAME, "error": self._scrub(one_line(exc))})
            finally:
                self._ws = None
                self.metrics.connected.labels(NAME).set(0)
            delay = self._backoff.delay(attempt, self._rng)
            attempt += 1
            await self._sleep(delay)

    async def _subscribe(self, ws: Any, method: str) -> bool:
        await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": method}).decode())
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 15))
        if not isinstance(reply, dict) or "result" not in reply:
            log.warning(
                "subscription refused, polling getSlot only",
                extra={"chain": NAME, "method": method, "reply": str(reply)[:200]},
            )
            return False
        self.ws_connections += 1
        self.metrics.connected.labels(NAME).set(1)
        if self.ws_connections > 1:
            self.metrics.reconnects.labels(NAME).inc()
            self._after_reconnect = True
        log.info("subscribed", extra={"chain": NAME, "method": method, "ws": redact_url(self._ws_url)})
        self._wake.set()  # after a reconnect: fill the gap from the last processed slot now
        return True

    async def _listen(self, ws: Any) -> None:
        stale = self.settings.stale_after_seconds
        while not self._stopping.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), stale)
            except TimeoutError:
                raise TimeoutError(f"no notification for {stale} s") from None
            with contextlib.suppress(orjson.JSONDecodeError):
                message = orjson.loads(raw)
                if isinstance(message, dict) and message.get("method") in NOTIFICATIONS:
                    self._wake.set()

    # -- helpers ---------------------------------------------------------------------------------
    async def _wait_for_wake(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_seconds)
        self._wake.clear()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _scrub(self, text: str) -> str:
        """An error line without the endpoints' URLs (they may hold the API key)."""
        for url in (self._ws_url, self.rpc.url if self.rpc else ""):
            if url:
                text = text.replace(url, redact_url(url))
        return text


def _log_failure(task: asyncio.Task[None]) -> None:
    """A WebSocket follower that died of a bug: say so (polling goes on without it)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("websocket follower failed, polling only", extra={"chain": NAME}, exc_info=task.exception())
