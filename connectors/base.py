"""BaseConnector (seed ADR-008): WebSocket connection(s) per exchange, reconnect with backoff, REST gap fill.

Exchange classes supply the quirks (URL, subscribe message, message handling, REST gap fill); this
class owns the loop that makes "no gaps after reconnects" true: it remembers the last trade id per
symbol, fills the hole from REST after every reconnect, and drops the overlap with a bounded set of
recently seen event ids (the deterministic event_id makes any overlap that slips through harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from coattail.contracts import OnchainEvent, TradeEvent
from coattail.retry import Backoff, one_line, retry_async
from coattail.settings.models import ReconnectSettings
from connectors.metrics import Metrics
from connectors.rawlines import dead_letter_reason
from connectors.rest import BannedError, RestClient, RestError
from connectors.spec import ExchangeSettings
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


Item = Trade | DeadLetter | OnchainEvent  # what connectors put on the writer's queue


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


class ReconnectNow(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside the read loop to reconnect at once (serverShutdown, planned 24 h rotation)."""


class SessionFailedError(Exception):
    """A connection failed before it delivered anything: the next attempt backs off further."""


class _GapFillFailedError(Exception):
    pass


def reconnect_backoff(settings: ReconnectSettings) -> Backoff:
    """``reconnect.*`` as the retry helper's Backoff: initial delay doubling up to the cap, jittered."""
    initial = settings.initial_backoff_seconds
    return Backoff(
        initial=initial, factor=2, maximum=max(settings.max_backoff_seconds, initial), jitter=settings.jitter
    )


GAP_FILL_ATTEMPTS = 3
GAP_FILL_BACKOFF = Backoff(initial=0.5, factor=2, maximum=2, jitter=0)


class Link:
    """One WebSocket connection of a connector and the symbols it carries (its own reconnects)."""

    def __init__(self, index: int, symbols: list[str]) -> None:
        self.index = index
        self.symbols = symbols
        self.ws: ClientConnection | None = None
        self.last_message = time.monotonic()
        self.connections = 0
        self.received = False  # in the current session: a live session resets the backoff


class BaseConnector(ABC):
    """ADR-008 interface: ``connect``, ``normalize``, ``health_check``, ``shutdown``, ``async stream``.

    The symbols may be spread over several connections (``partition``, e.g. Binance's stream limit);
    each link reconnects and fills its own symbols' gaps, while the recent-id set and the last id per
    symbol are shared, so every trade is emitted once whichever connection or REST page carried it.
    """

    name: str = ""

    def __init__(
        self,
        settings: ExchangeSettings,
        reconnect: ReconnectSettings,
        symbols: list[str],
        *,
        metrics: Metrics | None = None,
        dedupe_size: int = 100_000,
        gap_fill_max_trades: int = 100_000,
        rest: RestClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.symbols = list(symbols)
        self.metrics = metrics or Metrics()
        self.rest = rest
        self._backoff = reconnect_backoff(reconnect)
        self._rng = rng or random.Random()
        self._recent = RecentIds(dedupe_size)
        self._gap_fill_max = gap_fill_max_trades
        self._last_ids: dict[str, int] = {}  # symbol -> last exchange trade id seen
        self._stopping = asyncio.Event()
        self._closing: list[asyncio.Future[None]] = []
        self.links = [Link(i, part) for i, part in enumerate(self.partition(self.symbols))]
        self._m_received = self.metrics.received.labels(self.name)
        self._m_normalised = self.metrics.normalised.labels(self.name)
        self._m_duplicates = self.metrics.duplicates.labels(self.name)
        self._m_dead = self.metrics.dead_lettered.labels(self.name)
        self._m_ignored = self.metrics.ignored.labels(self.name)
        self.pings_sent = 0

    # -- exchange hooks --------------------------------------------------------------------------
    def partition(self, symbols: list[str]) -> list[list[str]]:
        """The symbols of each connection (one connection unless the exchange limits them)."""
        return [symbols]

    @abstractmethod
    def make_rest(self) -> RestClient:
        """The exchange's REST client (its rate-limit rules) for the gap fill."""

    @abstractmethod
    def ws_url(self, symbols: list[str]) -> str: ...

    @abstractmethod
    async def subscribe(self, ws: ClientConnection, symbols: list[str]) -> None: ...

    @abstractmethod
    def handle(self, message: Any, received_at: str) -> list[Trade]:
        """Trades in one parsed message ([] for non-trade messages); raise NormalizeError if malformed.

        May raise ReconnectNow *after* returning nothing for control messages such as serverShutdown.
        """

    @abstractmethod
    async def fetch_since(self, rest: RestClient, symbol: str, last_id: int, limit: int) -> list[Trade]:
        """Trades of ``symbol`` with exchange id > ``last_id`` from REST, oldest first, at most ``limit``."""

    @abstractmethod
    async def latest_id(self, rest: RestClient, symbol: str) -> int | None:
        """Id of the newest trade of ``symbol`` on REST (None if there is none)."""

    # -- keep-alive: the venue's application-level ping (OKX, Kraken, Bybit want one) ------------------
    def ping_frame(self) -> str | None:
        """The text to send when the link is idle (None: the venue needs no ping of its own)."""
        return None

    def ping_interval(self) -> float:
        """Seconds of silence (nothing received, no ping sent) after which :meth:`ping_frame` goes out."""
        return 20.0

    def control_text(self, raw: str | bytes) -> bool:
        """A non-JSON control frame (OKX answers ``pong`` as bare text): counted as ignored, not dead."""
        return False

    @abstractmethod
    def sequence(self, trade: Trade) -> int | None:
        """Numeric exchange id of a trade (for gap tracking), None if the id is not numeric."""

    async def prepare(self, rest: RestClient) -> None:  # noqa: B027 - optional hook
        """One-off set-up before the first connection (e.g. Binance exchangeInfo)."""

    # -- ADR-008 interface -----------------------------------------------------------------------
    async def connect(self, link: Link | None = None) -> ClientConnection:
        """Open the WebSocket (of ``link``, the first by default) and subscribe."""
        symbols = (link or self.links[0]).symbols
        ws = await websockets.connect(
            self.ws_url(symbols), open_timeout=15, ping_interval=20, ping_timeout=20, max_size=2**23,
            max_queue=64,
        )  # fmt: skip
        await self.subscribe(ws, symbols)
        return ws

    def normalize(self, raw: dict[str, Any]) -> list[TradeEvent]:
        """Validated contract events for one raw message (slow path; ``handle`` is the hot path).

        A list, not one event: Coinbase Advanced Trade batches trades, and most messages hold none.
        """
        with contextlib.suppress(ReconnectNow, OSError):
            return [t.to_event() for t in self.handle(raw, now_iso())]
        return []

    def health_check(self) -> bool:
        """True while every connection is up and got a message (trade or heartbeat) within
        stale_after_seconds."""
        if self._stopping.is_set():
            return False
        now, stale = time.monotonic(), self.settings.stale_after_seconds
        return all(link.ws is not None and now - link.last_message < stale for link in self.links)

    def shutdown(self) -> None:
        """Stop streaming: the loops leave at the next message or timeout and close their sockets."""
        self._stopping.set()
        self._closing = [asyncio.ensure_future(link.ws.close()) for link in self.links if link.ws is not None]

    async def stream(self, queue: asyncio.Queue[Item]) -> None:
        """Stream trades (and dead letters) into ``queue`` until ``shutdown``; reconnect on failures."""
        rest = self.rest = self.rest or self.make_rest()
        try:
            await self._prepare_safely(rest)
            links = [
                asyncio.create_task(self._run_link(link, queue, rest), name=f"{self.name}-link-{link.index}")
                for link in self.links
            ]
            try:
                await asyncio.gather(*links)
            finally:
                for task in links:  # one link failing (a bug) must not leave the others running
                    task.cancel()
        finally:
            await rest.aclose()
            self.metrics.connected.labels(self.name).set(0)

    # -- internals -------------------------------------------------------------------------------
    async def _prepare_safely(self, rest: RestClient) -> None:
        try:
            await self.prepare(rest)
        except (RestError, ValueError) as exc:
            log.warning(
                "prepare failed, using bundled data", extra={"exchange": self.name, "error": str(exc)}
            )

    async def _run_link(self, link: Link, queue: asyncio.Queue[Item], rest: RestClient) -> None:
        """Reconnect ``link`` until shutdown: at once after a planned end, with backoff after failures
        (the backoff starts over once a connection delivered messages)."""
        while not self._stopping.is_set():
            outcome = await retry_async(
                lambda: self._session(link, queue, rest),
                what=f"{self.name} connection {link.index + 1}/{len(self.links)}",
                deadline_seconds=math.inf,  # a connector never gives up; the pod's health says so
                retryable=lambda exc: isinstance(exc, SessionFailedError),
                backoff=self._backoff,
                sleep=self._wait_unless_stopping,
                logger=log,
                rng=self._rng,
            )
            if outcome == "lost":  # after a live stretch: the first step of a fresh backoff
                delay = self._backoff.delay(0, self._rng)
                log.info("reconnecting", extra={"exchange": self.name, "delay_s": round(delay, 3)})
                await self._wait_unless_stopping(delay)

    async def _wait_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _set_connected(self) -> None:
        self.metrics.connected.labels(self.name).set(sum(link.ws is not None for link in self.links))

    async def _session(self, link: Link, queue: asyncio.Queue[Item], rest: RestClient) -> str:
        """One connection's life: "planned" (reconnect at once), "lost" after a live stretch, "stopped";
        raises SessionFailedError when it failed before delivering anything."""
        if self._stopping.is_set():
            return "stopped"
        try:
            ws = await self.connect(link)
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            raise SessionFailedError(f"connect failed: {one_line(exc)}") from exc
        link.ws, link.received = ws, False
        link.last_message = time.monotonic()
        self._set_connected()
        if link.connections:
            self.metrics.reconnects.labels(self.name).inc()
        link.connections += 1
        log.info(
            "connected",
            extra={"exchange": self.name, "url": self.ws_url(link.symbols), "symbols": link.symbols},
        )
        pinger = asyncio.create_task(self._keepalive(ws, link)) if self.ping_frame() is not None else None
        try:
            await self._fill_gaps(link, queue, rest)
            await self._seed_last_ids(link, rest)
            await self._read(link, ws, queue)
            return "stopped"
        except ReconnectNow as why:
            log.info("planned reconnect", extra={"exchange": self.name, "reason": str(why)})
            return "planned"
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            if self._stopping.is_set():
                return "stopped"
            log.warning("connection lost", extra={"exchange": self.name, "error": str(exc)})
            if link.received:
                return "lost"
            raise SessionFailedError(f"connection lost: {one_line(exc)}") from exc
        finally:
            if pinger is not None:
                pinger.cancel()
            link.ws = None
            self._set_connected()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)

    async def _keepalive(self, ws: ClientConnection, link: Link) -> None:
        """Send the venue's ping whenever the link was silent for :meth:`ping_interval`, until the
        session ends. A missing answer needs no handling here: the read loop's staleness timeout
        reconnects."""
        frame, interval = self.ping_frame(), self.ping_interval()
        assert frame is not None
        sent = time.monotonic()  # link.last_message may still be the previous session's
        with contextlib.suppress(websockets.exceptions.ConnectionClosed, OSError):
            while True:
                idle = time.monotonic() - max(link.last_message, sent)
                if idle >= interval:
                    await ws.send(frame)
                    self.pings_sent += 1
                    sent, idle = time.monotonic(), 0.0
                await asyncio.sleep(interval - idle)

    async def _read(self, link: Link, ws: ClientConnection, queue: asyncio.Queue[Item]) -> None:
        stale = self.settings.stale_after_seconds
        rotate_at = time.monotonic() + self.settings.reconnect_after_hours * 3600
        while not self._stopping.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), stale)
            except TimeoutError:
                raise TimeoutError(f"no message for {stale} s") from None
            link.last_message = time.monotonic()
            link.received = True
            await self._on_raw(raw, queue)
            if link.last_message > rotate_at:
                raise ReconnectNow(f"connection older than {self.settings.reconnect_after_hours} h")

    async def _on_raw(self, raw: str | bytes, queue: asyncio.Queue[Item]) -> None:
        """One message ends as trades, ignored (a known control message) or a dead letter, whatever it is."""
        received_at = now_iso()
        self._m_received.inc()
        if self.control_text(raw):
            self._m_ignored.inc()
            return
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

    async def _seed_last_ids(self, link: Link, rest: RestClient) -> None:
        """Remember the newest REST trade id of the link's symbols not seen yet (asked *after*
        subscribing).

        Without it, a symbol that has not traded since start-up would have no id to fill a gap from,
        and trades it made while we were disconnected would be lost.
        """
        for symbol in link.symbols:
            if symbol in self._last_ids:
                continue
            try:
                latest = await self.latest_id(rest, symbol)
            except (RestError, ValueError, NormalizeError) as exc:
                log.warning(
                    "latest id unknown", extra={"exchange": self.name, "symbol": symbol, "error": str(exc)}
                )
                continue
            if latest is not None:
                self._last_ids.setdefault(symbol, latest)

    async def _fill_gaps(self, link: Link, queue: asyncio.Queue[Item], rest: RestClient) -> None:
        """After a reconnect, fetch from REST every trade of the link's symbols after the last one seen."""
        for symbol in link.symbols:
            last_id = self._last_ids.get(symbol)
            if last_id is None:
                continue
            try:
                trades = await retry_async(
                    functools.partial(self.fetch_since, rest, symbol, last_id, self._gap_fill_max),
                    what=f"{self.name} gap fill of {symbol}",
                    deadline_seconds=math.inf,
                    max_attempts=GAP_FILL_ATTEMPTS,
                    # A ban is not retried: the rules refuse to send until it is over.
                    retryable=lambda exc: (
                        isinstance(exc, RestError | ValueError | NormalizeError)
                        and not isinstance(exc, BannedError)
                    ),
                    backoff=GAP_FILL_BACKOFF,
                    give_up=_GapFillFailedError,
                    logger=log,
                )
            except (_GapFillFailedError, BannedError) as exc:
                log.warning(
                    "gap fill failed", extra={"exchange": self.name, "symbol": symbol, "error": str(exc)}
                )
                self.metrics.gap_fill_failures.labels(self.name).inc()
                continue
            filled = 0
            for trade in trades:
                filled += await self.emit(trade, queue)
            self.metrics.gap_filled.labels(self.name).inc(filled)
            if filled:
                log.info("gap filled", extra={"exchange": self.name, "symbol": symbol, "trades": filled})
