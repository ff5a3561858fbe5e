"""BaseConnector (seed ADR-008): one WebSocket per exchange, reconnect with backoff, REST gap fill.

Exchange classes supply the quirks (URL, subscribe message, message handling, REST gap fill); this
class owns the loop that makes "no gaps after reconnects" true: it remembers the last trade id per
symbol, fills the hole from REST after every reconnect, and drops the overlap with a bounded set of
recently seen event ids (the deterministic event_id makes any overlap that slips through harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from coattail.contracts import TradeEvent
from coattail.settings.models import ConnectorSettings, ReconnectSettings
from connectors.metrics import Metrics
from connectors.rawlines import dead_letter_reason
from connectors.trade import NormalizeError, Trade, now_iso

log = logging.getLogger("connectors")


# Kafka refuses records over 1 MiB by default and a WebSocket message may be 8 MiB: longer raw text
# is cut (the reason says so) so that the dead letter itself is delivered.
DEAD_LETTER_RAW_MAX_CHARS = 256 * 1024


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A raw message we could not normalise, with the reason; goes to the dead-letter topic/stream."""

    exchange: str
    reason: str
    raw: str
    received_at: str

    @classmethod
    def of(cls, exchange: str, reason: str, raw: str | bytes, received_at: str) -> DeadLetter:
        """A dead letter with the raw text decoded and bounded."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if len(text) > DEAD_LETTER_RAW_MAX_CHARS:
            reason = f"{reason} (raw cut to {DEAD_LETTER_RAW_MAX_CHARS} of {len(text)} characters)"
            text = text[:DEAD_LETTER_RAW_MAX_CHARS]
        return cls(exchange, reason, text, received_at)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "exchange": self.exchange,
                "reason": self.reason,
                "raw": self.raw,
                "received_at": self.received_at,
            }
        )


Item = Trade | DeadLetter


class RecentIds:
    """Bounded insertion-ordered set: ``add`` is False for an id seen among the last ``size`` ids."""

    __slots__ = ("_ids", "_size")

    def __init__(self, size: int) -> None:
        self._ids: OrderedDict[object, None] = OrderedDict()
        self._size = size

    def add(self, key: object) -> bool:
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


class Backoff:
    """Exponential backoff with multiplicative jitter, capped."""

    def __init__(self, settings: ReconnectSettings, rng: random.Random | None = None) -> None:
        self._s = settings
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        base = min(self._s.max_backoff_seconds, self._s.initial_backoff_seconds * 2**self.attempt)
        self.attempt += 1
        return float(base * (1 + self._rng.uniform(-self._s.jitter, self._s.jitter)))

    def reset(self) -> None:
        self.attempt = 0


class ReconnectNow(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside the read loop to reconnect at once (serverShutdown, planned 24 h rotation)."""


class BaseConnector(ABC):
    """ADR-008 interface: ``connect``, ``normalize``, ``health_check``, ``shutdown``, ``async stream``."""

    name: str = ""

    def __init__(
        self,
        settings: ConnectorSettings,
        reconnect: ReconnectSettings,
        symbols: list[str],
        *,
        metrics: Metrics | None = None,
        dedupe_size: int = 100_000,
        gap_fill_max_trades: int = 100_000,
    ) -> None:
        self.settings = settings
        self.symbols = list(symbols)
        self.metrics = metrics or Metrics()
        self._backoff = Backoff(reconnect)
        self._recent = RecentIds(dedupe_size)
        self._gap_fill_max = gap_fill_max_trades
        self._last_ids: dict[str, int] = {}  # symbol -> last exchange trade id seen
        self._last_message = time.monotonic()
        self._stopping = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._connections = 0
        self._closing: asyncio.Future[None] | None = None
        self._m_received = self.metrics.received.labels(self.name)
        self._m_normalised = self.metrics.normalised.labels(self.name)
        self._m_duplicates = self.metrics.duplicates.labels(self.name)
        self._m_dead = self.metrics.dead_lettered.labels(self.name)
        self._m_ignored = self.metrics.ignored.labels(self.name)

    # -- exchange hooks --------------------------------------------------------------------------
    @abstractmethod
    def ws_url(self) -> str: ...

    @abstractmethod
    async def subscribe(self, ws: ClientConnection) -> None: ...

    @abstractmethod
    def handle(self, message: Any, received_at: str) -> list[Trade]:
        """Trades in one parsed message ([] for non-trade messages); raise NormalizeError if malformed.

        May raise ReconnectNow *after* returning nothing for control messages such as serverShutdown.
        """

    @abstractmethod
    async def fetch_since(
        self, http: httpx.AsyncClient, symbol: str, last_id: int, limit: int
    ) -> list[Trade]:
        """Trades of ``symbol`` with exchange id > ``last_id`` from REST, oldest first, at most ``limit``."""

    @abstractmethod
    async def latest_id(self, http: httpx.AsyncClient, symbol: str) -> int | None:
        """Id of the newest trade of ``symbol`` on REST (None if there is none)."""

    @abstractmethod
    def sequence(self, trade: Trade) -> int | None:
        """Numeric exchange id of a trade (for gap tracking), None if the id is not numeric."""

    async def prepare(self, http: httpx.AsyncClient) -> None:  # noqa: B027 - optional hook
        """One-off set-up before the first connection (e.g. Binance exchangeInfo)."""

    # -- ADR-008 interface -----------------------------------------------------------------------
    async def connect(self) -> ClientConnection:
        """Open the WebSocket and subscribe."""
        ws = await websockets.connect(
            self.ws_url(), open_timeout=15, ping_interval=20, ping_timeout=20, max_size=2**23, max_queue=64
        )
        await self.subscribe(ws)
        return ws

    def normalize(self, raw: dict[str, Any]) -> list[TradeEvent]:
        """Validated contract events for one raw message (slow path; ``handle`` is the hot path).

        A list, not one event: Coinbase Advanced Trade batches trades, and most messages hold none.
        """
        with contextlib.suppress(ReconnectNow, OSError):
            return [t.to_event() for t in self.handle(raw, now_iso())]
        return []

    def health_check(self) -> bool:
        """True while connected and a message (trade or heartbeat) arrived within stale_after_seconds."""
        fresh = time.monotonic() - self._last_message < self.settings.stale_after_seconds
        return self._ws is not None and fresh and not self._stopping.is_set()

    def shutdown(self) -> None:
        """Stop streaming: the loop leaves at the next message or timeout and closes the socket."""
        self._stopping.set()
        if self._ws is not None:
            self._closing = asyncio.ensure_future(self._ws.close())

    async def stream(self, queue: asyncio.Queue[Item]) -> None:
        """Stream trades (and dead letters) into ``queue`` until ``shutdown``; reconnect on failures."""
        async with httpx.AsyncClient(base_url=self.settings.rest_url, timeout=15) as http:
            await self._prepare_safely(http)
            while not self._stopping.is_set():
                planned = await self._session(queue, http)
                if self._stopping.is_set():
                    break
                if planned:
                    continue  # rotation or serverShutdown: reconnect at once
                delay = self._backoff.next_delay()
                log.info("reconnecting", extra={"exchange": self.name, "delay_s": round(delay, 3)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        self.metrics.connected.labels(self.name).set(0)

    # -- internals -------------------------------------------------------------------------------
    async def _prepare_safely(self, http: httpx.AsyncClient) -> None:
        try:
            await self.prepare(http)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning(
                "prepare failed, using bundled data", extra={"exchange": self.name, "error": str(exc)}
            )

    async def _session(self, queue: asyncio.Queue[Item], http: httpx.AsyncClient) -> bool:
        """One connection's life; True when it ended by plan (reconnect at once), False on failure."""
        try:
            ws = await self.connect()
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            log.warning("connect failed", extra={"exchange": self.name, "error": str(exc)})
            return False
        self._ws = ws
        self._last_message = time.monotonic()
        self.metrics.connected.labels(self.name).set(1)
        if self._connections:
            self.metrics.reconnects.labels(self.name).inc()
        self._connections += 1
        log.info("connected", extra={"exchange": self.name, "url": self.ws_url(), "symbols": self.symbols})
        try:
            await self._fill_gaps(queue, http)
            await self._seed_last_ids(http)
            await self._read(ws, queue)
            return False
        except ReconnectNow as why:
            log.info("planned reconnect", extra={"exchange": self.name, "reason": str(why)})
            return True
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            if not self._stopping.is_set():
                log.warning("connection lost", extra={"exchange": self.name, "error": str(exc)})
            return False
        finally:
            self._ws = None
            self.metrics.connected.labels(self.name).set(0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)

    async def _read(self, ws: ClientConnection, queue: asyncio.Queue[Item]) -> None:
        stale = self.settings.stale_after_seconds
        rotate_at = time.monotonic() + self.settings.reconnect_after_hours * 3600
        while not self._stopping.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), stale)
            except TimeoutError:
                raise TimeoutError(f"no message for {stale} s") from None
            self._last_message = time.monotonic()
            self._backoff.reset()
            await self._on_raw(raw, queue)
            if self._last_message > rotate_at:
                raise ReconnectNow(f"connection older than {self.settings.reconnect_after_hours} h")

    async def _on_raw(self, raw: str | bytes, queue: asyncio.Queue[Item]) -> None:
        """One message ends as trades, ignored (a known control message) or a dead letter, whatever it is."""
        received_at = now_iso()
        self._m_received.inc()
        try:
            trades = self.handle(orjson.loads(raw), received_at)
        except orjson.JSONDecodeError as exc:
            await self._dead(queue, f"not JSON: {exc}", raw, received_at)
            return
        except NormalizeError as exc:
            await self._dead(queue, dead_letter_reason(exc), raw, received_at)
            return
        except (ReconnectNow, OSError):
            raise  # planned reconnects and exchange error replies: the session loop handles them
        except Exception as exc:  # a normaliser bug must not stop the connector: keep the message
            log.error("normaliser error", extra={"exchange": self.name}, exc_info=exc)
            await self._dead(queue, dead_letter_reason(exc), raw, received_at)
            return
        if not trades:
            self._m_ignored.inc()
        for trade in trades:
            await self.emit(trade, queue)

    async def emit(self, trade: Trade, queue: asyncio.Queue[Item]) -> bool:
        """Queue a trade unless it was seen recently; track the last id for gap fills."""
        if not self._recent.add(trade.dedupe_key):
            self._m_duplicates.inc()
            return False
        seq = self.sequence(trade)
        if seq is not None and seq > self._last_ids.get(trade.symbol, -1):
            self._last_ids[trade.symbol] = seq
        self._m_normalised.inc()
        await queue.put(trade)
        return True

    async def _dead(
        self, queue: asyncio.Queue[Item], reason: str, raw: str | bytes, received_at: str
    ) -> None:
        self._m_dead.inc()
        await queue.put(DeadLetter.of(self.name, reason, raw, received_at))

    async def _seed_last_ids(self, http: httpx.AsyncClient) -> None:
        """Remember the newest REST trade id of symbols not seen yet (asked *after* subscribing).

        Without it, a symbol that has not traded since start-up would have no id to fill a gap from,
        and trades it made while we were disconnected would be lost.
        """
        for symbol in self.symbols:
            if symbol in self._last_ids:
                continue
            try:
                latest = await self.latest_id(http, symbol)
            except (httpx.HTTPError, ValueError, NormalizeError) as exc:
                log.warning(
                    "latest id unknown", extra={"exchange": self.name, "symbol": symbol, "error": str(exc)}
                )
                continue
            if latest is not None:
                self._last_ids.setdefault(symbol, latest)

    async def _fill_gaps(self, queue: asyncio.Queue[Item], http: httpx.AsyncClient) -> None:
        """After a reconnect, fetch from REST every trade after the last one seen, per symbol."""
        for symbol, last_id in list(self._last_ids.items()):
            for attempt in range(3):
                try:
                    trades = await self.fetch_since(http, symbol, last_id, self._gap_fill_max)
                    break
                except (httpx.HTTPError, ValueError, NormalizeError) as exc:
                    log.warning(
                        "gap fill failed",
                        extra={
                            "exchange": self.name,
                            "symbol": symbol,
                            "attempt": attempt + 1,
                            "error": str(exc),
                        },
                    )
                    await asyncio.sleep(0.5 * 2**attempt)
            else:
                self.metrics.gap_fill_failures.labels(self.name).inc()
                continue
            filled = 0
            for trade in trades:
                filled += await self.emit(trade, queue)
            self.metrics.gap_filled.labels(self.name).inc(filled)
            if filled:
                log.info("gap filled", extra={"exchange": self.name, "symbol": symbol, "trades": filled})
