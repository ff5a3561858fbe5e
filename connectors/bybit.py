"""Bybit spot (v5), all of it: settings, symbols, normaliser, REST client with its rate limit, connector,
simulator renderer — and the registry's :data:`SPEC`.

Quirks kept here: ``publicTrade.<SYMBOL>`` pushes batches (``data`` is a list, oldest first) whose
``S`` is already the TAKER's side (``Buy``/``Sell``); the trade id ``i`` is a string (numeric on spot,
UUID-like on derivatives) and the REST ``execId`` of the same trade is the same text, so both give the
same event_id. Symbols are concatenated (``BTCUSDT``) and split by known quote assets. The server
drops connections that stay silent: the client sends ``{"op":"ping"}`` every 20 s and gets a pong.

Gap fill: ``GET /v5/market/recent-trade`` returns only the most recent trades (at most 60 on spot,
newest first, no paging), and the ids are not promised to be orderable. So the connector tracks no
id sequence (:meth:`BybitConnector.sequence` is None); after a reconnect it fetches the recent
window and keeps the trades not older than the newest trade it has seen (the base class's event-id
dedupe drops the overlap). The window also holds the trades made since the reconnect, so the gap fill
recovers a symbol only if at most 60 trades passed from its last trade seen to the gap fill. A longer
gap cannot be recovered (Bybit has no public paged trade history, only daily archives): when the
whole window is newer than the last trade seen, trades may be missing — that is counted
(``coattail_connector_gap_fill_failures``) and logged as a warning, never silent.

REST limit: 600 requests in any 5-second window per IP; beyond it Bybit answers HTTP 403 ("access too
frequent") and asks to stop for at least 10 minutes. ``retCode 10006`` ("Too many visits!") in a 200
body is the per-second API limit: retried after a second.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Literal

import httpx
import orjson
from pydantic import Field
from websockets.asyncio.client import ClientConnection

from coattail.contracts.trade import Side
from connectors.base import BaseConnector
from connectors.rest import BannedError, RateRules, RestClient, RestError, ThrottledError, retry_after
from connectors.spec import ExchangeSettings, ExchangeSpec, Rendered, SimCounters, SimTrade
from connectors.trade import (
    FLOOR_MS,
    MILLIS,
    FutureLimit,
    MillisFormatter,
    NormalizeError,
    Trade,
    check_symbol,
    now_iso,
    price_and_size,
)

log = logging.getLogger("connectors")
EXCHANGE = "bybit"
TRADE_TOPIC = "publicTrade"
# Known non-trade topics and ops (ignored, counted by the caller); anything else is dead-lettered.
CONTROL_TOPICS = frozenset(
    ("orderbook", "tickers", "kline", "allLiquidation", "liquidation", "tickers_lt", "kline_lt", "lt",
     "insurance", "priceLimit", "adlAlert")
)  # fmt: skip
CONTROL_OPS = frozenset(("subscribe", "unsubscribe", "ping", "pong", "auth"))
MAX_ARGS_PER_SUBSCRIBE = 10  # Bybit spot: at most 10 topics in one subscribe request
PING_INTERVAL_SECONDS = 20.0  # Bybit: "send the ping heartbeat packet every 20 seconds"
PING = '{"op":"ping","req_id":"heartbeat"}'
_TAKER: dict[str, Side] = {"Buy": "buy", "Sell": "sell"}  # S / side: the taker's side already
# Trade ids as text: numeric on spot, UUID-like on derivatives; ASCII letters, digits and dashes only.
_TRADE_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]{0,63}").fullmatch
_MILLIS_MAX_DIGITS = 16


# -- settings ----------------------------------------------------------------------------------------
class BybitSettings(ExchangeSettings):
    """``connectors.<name>`` with ``type: bybit``."""

    type: Literal["bybit"] = "bybit"
    # Application-level ping (Bybit drops silent connections; protocol pings do not count).
    ping_interval_seconds: float = Field(PING_INTERVAL_SECONDS, gt=0, le=PING_INTERVAL_SECONDS)
    # Requests per 5 s the gap fill may send (Bybit's IP limit: 600 per 5 s, then HTTP 403 for 10 min).
    rest_requests_per_5s: int = Field(300, ge=1, le=600)


# -- symbols -----------------------------------------------------------------------------------------
_CACHE_LIMIT = 4096  # learned spellings beyond this many are forgotten (a hostile feed must not grow memory)
# Quote assets of Bybit spot pairs, longest first so that "USDE" or "USDC" never lose to a shorter one.
BUNDLED_QUOTES: tuple[str, ...] = tuple(
    sorted(
        ("USDT", "USDC", "USDE", "USD1", "USDQ", "FDUSD", "RLUSD", "DAI", "BTC", "ETH", "EUR", "BRL",
         "TRY", "PLN", "MNT", "SOL"),
        key=len,
        reverse=True,
    )
)  # fmt: skip


class BybitSymbols:
    """Native ``BTCUSDT`` -> ``BTC-USDT``. Configured pairs win over the quote-suffix rule."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self.cache: dict[str, str] = {}
        self._pinned: dict[str, str] = {}
        for symbol in known:
            self.add(symbol)

    def add(self, normalised: str) -> None:
        check_symbol(normalised)
        native = self.native(normalised)
        self.cache[native] = self._pinned[native] = normalised

    def normalise(self, native: Any) -> str:
        if type(native) is not str:
            raise NormalizeError("s: missing symbol")
        cached = self.cache.get(native)
        if cached is not None:
            return cached
        symbol = self._split(native)
        if len(self.cache) >= len(self._pinned) + _CACHE_LIMIT:
            self.cache.clear()  # same dict object: the normaliser holds a reference to it
            self.cache.update(self._pinned)
        self.cache[native] = symbol
        return symbol

    @staticmethod
    def _split(native: str) -> str:
        for quote in BUNDLED_QUOTES:
            if native.endswith(quote) and len(native) > len(quote):
                return check_symbol(f"{native[: -len(quote)]}-{quote}")
        raise NormalizeError(f"symbol: cannot split {native[:40]!r} into base and quote")

    @staticmethod
    def native(normalised: str) -> str:
        """``BTC-USDT`` -> ``BTCUSDT`` (topics and REST take upper case)."""
        return normalised.replace("-", "")


# -- normaliser --------------------------------------------------------------------------------------
class BybitNormalizer:
    """Pure message -> trades for Bybit: ``publicTrade`` pushes, REST recent-trade bodies and rows."""

    exchange = EXCHANGE

    def __init__(self, symbols: BybitSymbols | None = None) -> None:
        self.symbols = symbols or BybitSymbols()
        self._known = self.symbols.cache  # direct dict lookup on the hot path
        self._ms = MillisFormatter()
        self._future = FutureLimit()

    def message(self, msg: Any, received_at: str) -> list[Trade]:
        """Trades in one message; [] for known control messages (acks, pongs, other topics);
        NormalizeError (dead letter) for anything else: nothing vanishes unexplained."""
        if type(msg) is not dict:
            raise NormalizeError(f"expected a JSON object, got {type(msg).__name__}")
        topic = msg.get("topic")
        if topic is not None:
            if type(topic) is not str:
                raise NormalizeError("topic: expected a string")
            kind = topic.split(".", 1)[0]
            if kind == TRADE_TOPIC:
                return self._push(msg, received_at)
            if kind in CONTROL_TOPICS:
                return []
            raise NormalizeError(f"topic: unknown topic {topic[:40]!r}")
        op = msg.get("op")
        if type(op) is str and op in CONTROL_OPS:
            return []  # subscribe/unsubscribe replies and pongs ({"op":"ping","ret_msg":"pong"})
        if "retCode" in msg:
            return self._rest_body(msg, received_at)
        raise NormalizeError(f"unknown message (no topic; op {str(op)[:40]!r})")

    def rest_trade(self, row: Any, symbol: str, received_at: str) -> Trade:
        """One row of ``GET /v5/market/recent-trade`` (execId, price, size, taker side, time as text)."""
        if type(row) is not dict:
            raise NormalizeError("recent-trade row: expected a JSON object")
        t = row.get("time")
        if type(t) is str and 0 < len(t) <= _MILLIS_MAX_DIGITS and t.isascii() and t.isdigit():
            t = int(t)
        elif type(t) is not int:
            raise NormalizeError("time: expected epoch milliseconds as a digit string")
        return self._trade(
            symbol, row.get("execId"), row.get("price"), row.get("size"), row.get("side"), t, received_at,
            _REST_FIELDS,
        )  # fmt: skip

    def _push(self, msg: dict[str, Any], received_at: str) -> list[Trade]:
        data = msg.get("data")
        if type(data) is not list:
            raise NormalizeError("data: expected a list of trades")
        out: list[Trade] = []
        for row in data:
            if type(row) is not dict:
                raise NormalizeError("data[]: expected a JSON object")
            native = row.get("s")
            symbol = self._known.get(native) if type(native) is str else None
            if symbol is None:
                symbol = self.symbols.normalise(native)
            trade = self._trade(
                symbol, row.get("i"), row.get("p"), row.get("v"), row.get("S"), row.get("T"), received_at,
                _WS_FIELDS,
            )  # fmt: skip
            out.append(trade)
        return out

    def _rest_body(self, msg: dict[str, Any], received_at: str) -> list[Trade]:
        """A whole recent-trade answer (``retCode`` 0 and ``result.list``): rows name their symbol."""
        code = msg.get("retCode")
        if type(code) is not int or code != 0:
            raise NormalizeError(f"retCode {str(code)[:20]}: {str(msg.get('retMsg'))[:100]}")
        result = msg.get("result")
        rows = result.get("list") if type(result) is dict else None
        if type(rows) is not list:
            raise NormalizeError("result.list: expected a list of trades")
        out: list[Trade] = []
        for row in rows:
            native = row.get("symbol") if type(row) is dict else None
            if type(native) is not str:
                raise NormalizeError("result.list[].symbol: missing")
            out.append(self.rest_trade(row, self.symbols.normalise(native), received_at))
        return out

    def _trade(
        self, symbol: str, raw_id: Any, p: Any, q: Any, taker: Any, t: Any, received_at: str,
        fields: tuple[str, str, str, str, str],
    ) -> Trade:  # fmt: skip
        id_field, p_field, q_field, side_field, t_field = fields
        if type(raw_id) is not str or _TRADE_ID(raw_id) is None:
            raise NormalizeError(
                f"{id_field}: expected a trade id string (ASCII letters, digits, dashes; at most 64)"
            )
        price, size, quote_volume = price_and_size(p, q, p_field, q_field)
        side = _TAKER.get(taker) if type(taker) is str else None
        if side is None:
            raise NormalizeError(f"{side_field}: expected Buy or Sell, got {str(taker)[:20]!r}")
        future = self._future
        if received_at[:19] != future.key:
            future.load(received_at)
        ms = self._ms
        # Inline happy path of MillisFormatter: same second as the previous trade, inside the window.
        if type(t) is int and FLOOR_MS <= t < future.ms and t // 1000 == ms.second:
            timestamp = ms.prefix + MILLIS[t % 1000]
        else:
            timestamp = ms(t, t_field, future.ms)
        return Trade(EXCHANGE, symbol, price, size, quote_volume, side, timestamp, received_at, raw_id)


_WS_FIELDS = ("i", "p", "v", "S", "T")
_REST_FIELDS = ("execId", "price", "size", "side", "time")


# -- REST: one client, its rules serve the gap fill ---------------------------------------------------
RECENT_TRADE = "/v5/market/recent-trade"
RECENT_TRADES_LIMIT = 60  # spot: limit in [1, 60]; the only trades REST can give
IP_WINDOW_SECONDS = 5.0
BAN_SECONDS = 600.0  # "403, access too frequent": stop for at least 10 minutes
TOO_MANY_VISITS = 10006  # retCode of the per-second API limit (HTTP 200)


class BybitRules(RateRules):
    """Bybit's IP limit as a rolling window (``budget`` requests in any 5 s); 403 is the ban.

    * We stay under our own budget (well below Bybit's 600) by waiting until the oldest request in
      the window leaves it, so the ban line is never approached.
    * HTTP 403 means the IP exceeded the limit: stop for ``Retry-After`` (10 minutes when absent, as
      Bybit asks); no request leaves during it. 429 (rare, a proxy) waits ``Retry-After`` or one window.
    * ``retCode 10006`` in a 200 body is the per-second API limit: retried after a second.
    """

    exchange = EXCHANGE
    throttle_default_seconds = IP_WINDOW_SECONDS

    def __init__(
        self,
        budget: int = 300,
        window: float = IP_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.budget, self.window = budget, window
        self.sent_at: deque[float] = deque()
        self.banned_until = 0.0

    def wait_before(self, path: str, weight: int) -> float:
        now = self.clock()
        if now < self.banned_until:
            raise BannedError(EXCHANGE, 403, self.banned_until - now)
        self._expire(now)
        over = len(self.sent_at) + weight - self.budget
        if over <= 0:
            return 0.0
        # The over-th oldest request must leave the window first.
        return max(self.sent_at[min(over, len(self.sent_at)) - 1] + self.window - now, 0.0)

    def sent(self, path: str, weight: int) -> None:
        now = self.clock()
        self._expire(now)
        self.sent_at.extend([now] * weight)

    def check(self, response: httpx.Response) -> None:
        if response.status_code == 403:
            wait = retry_after(response, BAN_SECONDS)
            self.banned_until = self.clock() + wait
            raise BannedError(EXCHANGE, 403, wait)
        super().check(response)
        try:
            body = response.json()
        except ValueError:
            return  # the client reports "not JSON"
        if isinstance(body, dict) and body.get("retCode") == TOO_MANY_VISITS:
            raise ThrottledError(1.0)

    def _expire(self, now: float) -> None:
        while self.sent_at and self.sent_at[0] <= now - self.window:
            self.sent_at.popleft()


class BybitRest(RestClient):
    """Bybit v5 public market-data reads with :class:`BybitRules`."""

    def __init__(
        self, base_url: str, *, budget: int = 300, clock: Callable[[], float] = time.monotonic, **kwargs: Any
    ) -> None:
        super().__init__(base_url, BybitRules(budget, clock=clock), **kwargs)

    @classmethod
    def from_settings(cls, settings: Any) -> BybitRest:
        s: BybitSettings = SPEC.settings_of(settings)
        return cls(s.rest_url, budget=s.rest_requests_per_5s)

    async def recent_trades(self, native: str, limit: int = RECENT_TRADES_LIMIT) -> list[Any]:
        """``result.list`` of ``GET /v5/market/recent-trade`` for a spot pair (newest first)."""
        params = {"category": "spot", "symbol": native, "limit": min(limit, RECENT_TRADES_LIMIT)}
        return _rows(await self.aget(RECENT_TRADE, params))


def _rows(body: Any) -> list[Any]:
    if not isinstance(body, dict):
        raise RestError(f"bybit {RECENT_TRADE}: expected a JSON object, got {type(body).__name__}")
    if type(body.get("retCode")) is not int or body.get("retCode") != 0:
        raise RestError(
            f"bybit {RECENT_TRADE}: retCode {str(body.get('retCode'))[:20]}: {str(body.get('retMsg'))[:200]}"
        )
    result = body.get("result")
    rows = result.get("list") if isinstance(result, dict) else None
    if not isinstance(rows, list):
        raise RestError(f"bybit {RECENT_TRADE}: result.list is not a list")
    return rows


# -- connector ---------------------------------------------------------------------------------------
class BybitConnector(BaseConnector):
    """Bybit spot ``publicTrade`` with an application ping task per connection and a recent-window gap
    fill (see the module docstring for why there is no id sequence)."""

    name = EXCHANGE
    settings: BybitSettings

    def __init__(self, settings: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(SPEC.settings_of(settings), *args, **kwargs)
        self.symbols_map = BybitSymbols(self.symbols)
        self.normalizer = BybitNormalizer(self.symbols_map)
        # Per symbol: the newest trade time emitted (inclusive bound of the next gap fill) and the
        # newest REST trade when first connected (exclusive bound: older trades predate us).
        self._newest: dict[str, str] = {}
        self._seeded: dict[str, str] = {}
        self._ms = MillisFormatter()
        self._m_window_missed = self.metrics.gap_fill_failures.labels(self.name)

    def make_rest(self) -> RestClient:
        return BybitRest.from_settings(self.settings)

    def ws_url(self, symbols: list[str]) -> str:
        return self.settings.ws_url

    async def subscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        """Subscribe in batches of 10 topics."""
        topics = [f"{TRADE_TOPIC}.{BybitSymbols.native(s)}" for s in symbols]
        for i in range(0, len(topics), MAX_ARGS_PER_SUBSCRIBE):
            sub = {"op": "subscribe", "req_id": f"trades-{i // MAX_ARGS_PER_SUBSCRIBE}",
                   "args": topics[i : i + MAX_ARGS_PER_SUBSCRIBE]}  # fmt: skip
            await ws.send(orjson.dumps(sub).decode())

    def ping_frame(self) -> str:
        return PING  # Bybit asks for one every 20 s; the pong is a control message

    def ping_interval(self) -> float:
        return self.settings.ping_interval_seconds

    def handle(self, message: Any, received_at: str) -> list[Trade]:
        if type(message) is dict and message.get("op") == "subscribe" and message.get("success") is False:
            # A refused subscription (unknown symbol, ...): loud, and the reconnect keeps the pod alive.
            raise OSError(f"bybit subscribe refused: {str(message.get('ret_msg'))[:200]}")
        trades = self.normalizer.message(message, received_at)
        newest = self._newest
        for trade in trades:
            if trade.timestamp > newest.get(trade.symbol, ""):
                newest[trade.symbol] = trade.timestamp
        return trades

    def sequence(self, trade: Trade) -> int | None:
        return None  # Bybit's trade ids are not promised to be orderable; the gap fill uses times

    async def latest_id(self, rest: RestClient, symbol: str) -> int | None:
        """The newest REST trade's time (epoch ms) — an anchor, not an id.

        The base class fills gaps only for symbols with a known anchor; Bybit has no orderable id, so
        the anchor is the newest trade when we first connected: trades not newer than it predate us.
        """
        assert isinstance(rest, BybitRest)
        rows = await rest.recent_trades(BybitSymbols.native(symbol), 1)
        if not rows:
            return None
        trade = self.normalizer.rest_trade(rows[0], symbol, now_iso())
        self._seeded[symbol] = trade.timestamp
        return int(rows[0]["time"])  # a digit string: rest_trade checked it

    async def fetch_since(self, rest: RestClient, symbol: str, last_id: int, limit: int) -> list[Trade]:
        """The recent window, oldest first, without trades older than the newest one seen.

        ``last_id`` (the anchor's ms) is only the fallback bound. The overlap with what was seen is
        dropped by the base class's event-id dedupe; if even the window's oldest trade is newer than
        the bound, the gap was longer than the window: counted and logged as a possible loss.
        """
        assert isinstance(rest, BybitRest)
        rows = await rest.recent_trades(BybitSymbols.native(symbol), RECENT_TRADES_LIMIT)
        received_at = now_iso()
        trades = [self.normalizer.rest_trade(row, symbol, received_at) for row in rows]
        trades = sorted(reversed(trades), key=lambda t: t.timestamp)  # newest first on the wire
        bound, inclusive = self._bound(symbol, last_id)
        fresh = [t for t in trades if t.timestamp > bound or (inclusive and t.timestamp == bound)][:limit]
        if len(rows) >= RECENT_TRADES_LIMIT and trades and trades[0].timestamp > bound:
            self._m_window_missed.inc()
            log.warning(
                "gap longer than the recent-trades window: trades may be missing",
                extra={"exchange": self.name, "symbol": symbol, "since": bound,
                       "window_from": trades[0].timestamp},
            )  # fmt: skip
        if fresh and fresh[-1].timestamp > self._newest.get(symbol, ""):
            self._newest[symbol] = fresh[-1].timestamp
        return fresh

    def _bound(self, symbol: str, last_id: int) -> tuple[str, bool]:
        """(time text, inclusive): trades at the newest seen ms may still be missing, the seed's not."""
        newest, seeded = self._newest.get(symbol), self._seeded.get(symbol)
        if newest is not None and (seeded is None or newest >= seeded):
            return newest, True
        if seeded is not None:
            return seeded, False
        return self._ms(last_id, "anchor"), False


# -- simulator renderer ------------------------------------------------------------------------------
SIM_ID_BASE = 2_290_000_000_000_000_000  # spot trade ids look like "2290000000036455162"


def render(tr: SimTrade, trade_id: int, counters: SimCounters, rng: random.Random) -> Rendered:
    """A simulated trade as a ``publicTrade`` push (millisecond time, taker side, string id)."""
    t_ms = tr.t_us // 1000
    native = BybitSymbols.native(tr.symbol)
    price_text, qty_text, id_text = f"{tr.price:f}", f"{tr.qty:f}", str(SIM_ID_BASE + trade_id)
    taker = "Buy" if tr.taker == "buy" else "Sell"
    row = {"i": id_text, "T": t_ms, "p": price_text, "v": qty_text, "S": taker, "s": native, "BT": False}
    raw = {
        "topic": f"{TRADE_TOPIC}.{native}",
        "ts": t_ms + rng.randrange(0, 4),
        "type": "snapshot",
        "data": [row],
    }
    return Rendered(raw, id_text, t_ms * 1000, price_text, qty_text)


def pongs(symbol: str, counters: SimCounters, t0: int, t1: int) -> list[tuple[int, dict[str, Any]]]:
    """The pong to our ping every 20 s (one connection per instrument in the simulation), 3 ms later."""
    conn = f"sim-{BybitSymbols.native(symbol).lower()}"
    pong = {"success": True, "ret_msg": "pong", "conn_id": conn, "req_id": "heartbeat", "op": "ping"}
    return [(s * 1_000_000 + 3_000, dict(pong)) for s in range(t0 + 20, t1, int(PING_INTERVAL_SECONDS))]


def _normalizer(known: Iterable[str]) -> BybitNormalizer:
    return BybitNormalizer(BybitSymbols(known))


SPEC = ExchangeSpec(
    name=EXCHANGE,
    settings_model=BybitSettings,
    connector=BybitConnector,
    normalizer=_normalizer,
    rest_client=BybitRest.from_settings,
    render=render,
    idle_messages=pongs,
    native=BybitSymbols.native,
)
