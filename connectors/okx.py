"""OKX spot, all of it: settings, normaliser, REST client with its rate limits, connector, simulator
renderer — and the registry's :data:`SPEC`. Instrument ids are already ``BASE-QUOTE``.

Quirks kept here:

* ``side`` is the TAKER's side (lower case) on the WebSocket and on REST alike: no inversion.
* The public ``trades`` channel aggregates the fills of one taker order at one price into one push:
  ``tradeId`` is the LAST trade id of the aggregation, ``count`` how many there were and ``sz`` their
  sum. REST (``/market/trades``, ``/market/history-trades``) lists every fill with its own id. So a
  live push and the REST row of its last fill have the same id, hence the same event_id, and the
  volume is right whichever side carried it: the gap fill only asks for ids above the last one seen
  (the earlier fills of a pushed aggregation are below it), and a push whose fills REST delivered
  first is dropped as a duplicate of its last fill. ``channel: trades-all`` (on ``/ws/v5/business``)
  pushes every fill on its own instead.
* Keep-alive is application level: the server closes a connection that received nothing for 30 s;
  the client sends the text ``ping`` when nothing arrived for ``ping_interval_seconds`` and the
  server answers the text ``pong`` (not JSON: the connector ignores it before parsing, and the
  normaliser ignores a recorded ``"pong"``).
* ``{"event": "notice", "code": "64008"}`` announces a service upgrade about 30 s ahead: reconnect
  at once (the gap fill covers the switch). ``{"event": "error"}`` answers a refused subscription.
* Public REST limits are per IP: ``/market/history-trades`` 20 requests per 2 s, ``/market/trades``
  100 requests per 2 s; over them OKX answers HTTP 429 (code 50011) without ``Retry-After``. Bodies
  are ``{"code": "0", "msg": "", "data": [...]}``; any other code is an error.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import Field, model_validator
from websockets.asyncio.client import ClientConnection

from coattail.contracts.trade import Side
from connectors.base import BaseConnector, ReconnectNow
from connectors.rest import RateRules, RestClient, RestError
from connectors.spec import ExchangeSettings, ExchangeSpec, Rendered, SimCounters, SimTrade
from connectors.trade import (
    TRADE_ID_LIMIT,
    FutureLimit,
    MillisFormatter,
    NormalizeError,
    Trade,
    check_symbol,
    now_iso,
    price_and_size,
)

log = logging.getLogger("connectors")
EXCHANGE = "okx"
OkxChannel = Literal["trades", "trades-all"]
SERVER_IDLE_CLOSE_SECONDS = 30  # OKX closes a connection that received nothing for this long


# -- settings ----------------------------------------------------------------------------------------
class OkxSettings(ExchangeSettings):
    """``connectors.<name>`` with ``type: okx``."""

    type: Literal["okx"] = "okx"
    # trades: /ws/v5/public, fills of one taker order aggregated; trades-all: /ws/v5/business, each fill.
    channel: OkxChannel = "trades"
    # Send the text "ping" after this long without a message (OKX: below 30 s, or it closes the link).
    ping_interval_seconds: float = Field(20, gt=0, lt=SERVER_IDLE_CLOSE_SECONDS)
    # Public REST limits per IP (OKX market data): history-trades 20 / 2 s, trades 100 / 2 s.
    rest_history_requests_per_2s: int = Field(20, ge=1, le=20)
    rest_trades_requests_per_2s: int = Field(100, ge=1, le=100)

    @model_validator(mode="after")
    def _pings_before_staleness(self) -> OkxSettings:
        # A quiet but healthy link gets its pong ~ping_interval_seconds after the last message; the
        # staleness bound must leave room for it or every quiet minute becomes a reconnect.
        if self.stale_after_seconds <= self.ping_interval_seconds:
            raise ValueError("stale_after_seconds must be longer than ping_interval_seconds")
        return self


# -- normaliser --------------------------------------------------------------------------------------
_SIDES: dict[str, Side] = {"buy": "buy", "sell": "sell"}  # already the taker's side
TRADE_CHANNELS = frozenset(("trades", "trades-all"))
# Known non-trade messages (ignored, counted by the caller): ``event`` replies and pushes of other
# public channels. Anything else is dead-lettered, so an unknown message never vanishes unexplained.
CONTROL_EVENTS = frozenset(
    ("subscribe", "unsubscribe", "error", "notice", "channel-conn-count", "channel-conn-count-error")
)
CONTROL_CHANNELS = frozenset(("tickers", "books", "books5", "bbo-tbt", "status", "instruments"))
PING, PONG = "ping", "pong"  # text frames, not JSON
_TRADE_ID_MAX_DIGITS = len(str(TRADE_ID_LIMIT - 1))
_MS_MAX_DIGITS = 16  # epoch ms has 13 digits until the year 2286; longer is refused before int()
_SYMBOL_CACHE_LIMIT = 4096


class OkxNormalizer:
    """Pure message -> trades for OKX pushes (``trades``/``trades-all``) and REST trade rows."""

    exchange = EXCHANGE

    def __init__(self) -> None:
        self._symbols: dict[str, str] = {}
        self._ms = MillisFormatter()
        self._future = FutureLimit()

    def message(self, msg: Any, received_at: str) -> list[Trade]:
        """Trades in one push; [] for known control messages; NormalizeError for anything else."""
        if type(msg) is not dict:
            if msg == PONG:
                return []  # the keep-alive answer, recorded as the JSON string "pong"
            raise NormalizeError(f"expected a JSON object, got {type(msg).__name__}")
        event = msg.get("event")
        if event is not None:
            if type(event) is str and event in CONTROL_EVENTS:  # (an unhashable event must not reach it)
                return []
            raise NormalizeError(f"unknown event {str(event)[:40]!r}")
        arg = msg.get("arg")
        channel = arg.get("channel") if type(arg) is dict else None
        if type(channel) is not str:
            raise NormalizeError("arg.channel: missing (neither a push nor an event)")
        if channel not in TRADE_CHANNELS:
            if channel in CONTROL_CHANNELS:
                return []
            raise NormalizeError(f"unknown channel {channel[:40]!r}")
        data = msg.get("data")
        if type(data) is not list:
            raise NormalizeError("data: expected a list")
        out: list[Trade] = []
        for row in data:
            if type(row) is not dict:
                raise NormalizeError("data[]: expected a JSON object")
            out.append(self._trade(row, row.get("instId"), received_at))
        return out

    def rest_trade(self, row: Any, inst_id: str, received_at: str) -> Trade:
        """One row of ``GET /api/v5/market/trades`` or ``/history-trades`` (same fields as a push)."""
        if type(row) is not dict:
            raise NormalizeError("trades row: expected a JSON object")
        return self._trade(row, inst_id, received_at)

    def _symbol(self, inst_id: Any) -> str:
        if type(inst_id) is not str:
            raise NormalizeError("instId: missing")
        symbol = self._symbols.get(inst_id)
        if symbol is None:
            symbol = check_symbol(inst_id.upper())  # spot only: BTC-USDT-SWAP is refused here
            if len(self._symbols) >= _SYMBOL_CACHE_LIMIT:
                self._symbols.clear()
            self._symbols[inst_id] = symbol
        return symbol

    def _trade(self, row: dict[str, Any], inst_id: Any, received_at: str) -> Trade:
        symbol = self._symbol(inst_id)
        trade_id = _trade_id(row.get("tradeId"))
        price, size, quote_volume = price_and_size(row.get("px"), row.get("sz"), "px", "sz")
        taker = row.get("side")
        side = _SIDES.get(taker) if type(taker) is str else None
        if side is None:
            raise NormalizeError(f"side: expected buy or sell, got {str(taker)[:20]!r}")
        future = self._future
        if received_at[:19] != future.key:
            future.load(received_at)
        return Trade(
            EXCHANGE,
            symbol,
            price,
            size,
            quote_volume,
            side,
            self._ms(_millis(row.get("ts")), "ts", future.ms),
            received_at,
            trade_id,
        )


def _trade_id(value: Any) -> str:
    """Canonical decimal text of ``tradeId`` (a digit string on both feeds and REST: same event_id)."""
    if type(value) is str and 0 < len(value) <= _TRADE_ID_MAX_DIGITS and value.isascii() and value.isdigit():
        number = int(value)
        if number < TRADE_ID_LIMIT:
            return str(number)
    elif type(value) is int and 0 <= value < TRADE_ID_LIMIT:
        return str(value)
    raise NormalizeError("tradeId: expected a non-negative integer id below 2^63")


def _millis(value: Any) -> int:
    """``ts``: epoch milliseconds as a digit string (the range is checked by MillisFormatter)."""
    if type(value) is str and 0 < len(value) <= _MS_MAX_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    if type(value) is int:
        return value
    raise NormalizeError("ts: expected epoch milliseconds as a digit string")


# -- REST: one client, its rules serve the gap fill (and any batch reader) -----------------------------
TRADES = "/api/v5/market/trades"  # the newest trades (up to 500), real time
HISTORY_TRADES = "/api/v5/market/history-trades"  # older pages: after=<tradeId>, at most 100 a page
TRADES_PAGE = 500
HISTORY_PAGE = 100
WINDOW_SECONDS = 2.0  # OKX counts its public limits per 2 s
_WINDOW_MARGIN = 0.05  # the server's window and ours are not aligned to the millisecond


class OkxRules(RateRules):
    """OKX's public limits as a sliding 2 s window per endpoint; a 429 (code 50011, no Retry-After)
    waits one window."""

    exchange = EXCHANGE
    throttle_default_seconds = WINDOW_SECONDS

    def __init__(
        self,
        limits: Mapping[str, int] | None = None,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.limits = {HISTORY_TRADES: 20, TRADES: 100} | dict(limits or {})
        self.window = window
        self._sent: dict[str, deque[float]] = {}

    def wait_before(self, path: str, weight: int) -> float:
        sent = self._recent(path)
        limit = self.limits.get(path, min(self.limits.values()))
        excess = len(sent) + weight - limit
        if excess <= 0:
            return 0.0
        # Wait until enough of the requests in the window have left it.
        return max(sent[excess - 1] + self.window + _WINDOW_MARGIN - self.clock(), 0.0)

    def sent(self, path: str, weight: int) -> None:
        now = self.clock()
        self._recent(path).extend([now] * weight)

    def _recent(self, path: str) -> deque[float]:
        sent = self._sent.setdefault(path, deque())
        horizon = self.clock() - self.window
        while sent and sent[0] <= horizon:
            sent.popleft()
        return sent


class OkxRest(RestClient):
    """OKX public market-data reads with :class:`OkxRules`."""

    def __init__(
        self, base_url: str, *, history_per_2s: int = 20, trades_per_2s: int = 100, **kwargs: Any
    ) -> None:
        rules = OkxRules({HISTORY_TRADES: history_per_2s, TRADES: trades_per_2s})
        super().__init__(base_url, rules, **kwargs)

    @classmethod
    def from_settings(cls, settings: Any) -> OkxRest:
        s: OkxSettings = SPEC.settings_of(settings)
        return cls(
            s.rest_url,
            history_per_2s=s.rest_history_requests_per_2s,
            trades_per_2s=s.rest_trades_requests_per_2s,
        )

    async def trades(self, inst_id: str, limit: int = TRADES_PAGE) -> list[Any]:
        """The newest trades of ``inst_id``, newest first."""
        return _data(TRADES, await self.aget(TRADES, {"instId": inst_id, "limit": limit}))

    async def history(self, inst_id: str, after: int, limit: int = HISTORY_PAGE) -> list[Any]:
        """Trades of ``inst_id`` older than trade id ``after``, newest first."""
        params = {"instId": inst_id, "type": 1, "after": after, "limit": limit}
        return _data(HISTORY_TRADES, await self.aget(HISTORY_TRADES, params))


def _data(path: str, body: Any) -> list[Any]:
    """The ``data`` list of an OKX answer; RestError (one line) for a non-zero ``code``."""
    if not isinstance(body, dict):
        raise RestError(f"okx {path}: expected a JSON object, got {type(body).__name__}")
    code, data = body.get("code"), body.get("data")
    if code != "0":
        raise RestError(f"okx {path} answered code {str(code)[:20]}: {str(body.get('msg'))[:200]}")
    if not isinstance(data, list):
        raise RestError(f"okx {path}: data is not a list")
    return data


# -- connector ---------------------------------------------------------------------------------------
class OkxConnector(BaseConnector):
    name = EXCHANGE
    settings: OkxSettings

    def __init__(self, settings: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(SPEC.settings_of(settings), *args, **kwargs)
        self.normalizer = OkxNormalizer()

    def make_rest(self) -> RestClient:
        return OkxRest.from_settings(self.settings)

    def ws_url(self, symbols: list[str]) -> str:
        return self.settings.ws_url

    async def subscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        args = [{"channel": self.settings.channel, "instId": symbol} for symbol in symbols]
        await ws.send(orjson.dumps({"op": "subscribe", "args": args}).decode())

    def ping_frame(self) -> str:
        return PING  # OKX closes a connection silent for 30 s; the base sends this when idle

    def ping_interval(self) -> float:
        return self.settings.ping_interval_seconds

    def control_text(self, raw: str | bytes) -> bool:
        return raw == PONG or raw == b"pong"  # the answer to PING, bare text (not JSON)

    def handle(self, message: Any, received_at: str) -> list[Trade]:
        if type(message) is dict:
            event = message.get("event")
            if event == "error":
                # Subscription refused (unknown instId, bad request): a reconnect with backoff will not
                # fix a config error, but it keeps the pod alive and the log/metric loud.
                raise OSError(f"okx error {str(message.get('code'))[:20]}: {str(message.get('msg'))[:200]}")
            if event == "notice" and message.get("code") == "64008":
                raise ReconnectNow(f"okx service upgrade notice: {str(message.get('msg'))[:200]}")
        return self.normalizer.message(message, received_at)

    def sequence(self, trade: Trade) -> int | None:
        return int(trade.trade_id)  # per instrument, increasing; shared by both channels and REST

    async def latest_id(self, rest: RestClient, symbol: str) -> int | None:
        assert isinstance(rest, OkxRest)
        rows = await rest.trades(symbol, 1)
        if not rows or not isinstance(rows[0], dict):
            return None
        return int(_trade_id(rows[0].get("tradeId")))

    async def fetch_since(self, rest: RestClient, symbol: str, last_id: int, limit: int) -> list[Trade]:
        """From the newest trades (``/market/trades``) back through ``/history-trades`` pages
        (``after`` = the oldest id so far) until ``last_id`` is reached; the newest ``limit``, oldest
        first."""
        assert isinstance(rest, OkxRest)
        collected: dict[int, Trade] = {}
        rows = await rest.trades(symbol)
        cursor: int | None = None
        while True:
            received_at = now_iso()
            ids: list[int] = []
            for row in rows:
                trade = self.normalizer.rest_trade(row, symbol, received_at)
                seq = int(trade.trade_id)
                ids.append(seq)
                if seq > last_id:
                    collected[seq] = trade
            if not ids:
                break
            oldest = min(ids)
            if oldest <= last_id + 1 or len(collected) >= limit or (cursor is not None and oldest >= cursor):
                break  # reached the last id seen, enough, or a page that does not go back any further
            cursor = oldest
            rows = await rest.history(symbol, cursor)
        return [collected[k] for k in sorted(collected)[-limit:]]


# -- simulator renderer ------------------------------------------------------------------------------
def render(tr: SimTrade, trade_id: int, counters: SimCounters, rng: random.Random) -> Rendered:
    """A simulated trade as a ``trades`` push (one fill, taker side, millisecond time, a seqId)."""
    counters.next_seq += rng.randrange(1, 4)
    t_ms = tr.t_us // 1000
    price_text, qty_text = _plain(tr.price), _plain(tr.qty)  # OKX drops trailing zeros: "42219.9"
    row = {
        "instId": tr.symbol,
        "tradeId": str(trade_id),
        "px": price_text,
        "sz": qty_text,
        "side": tr.taker,  # OKX reports the taker's side as it is
        "ts": str(t_ms),
        "count": "1",
        "source": "0",
        "seqId": counters.next_seq,
    }
    raw = {"arg": {"channel": "trades", "instId": tr.symbol}, "data": [row]}
    return Rendered(raw, str(trade_id), t_ms * 1000, price_text, qty_text)


def subscribe_acks(symbol: str, counters: SimCounters, t0: int, t1: int) -> list[tuple[int, dict[str, Any]]]:
    """The subscription's acknowledgement, received just after the session starts (OKX's public
    channels push no heartbeats: quiet links are kept alive by text pings, not recorded as JSON)."""
    ack = {"event": "subscribe", "arg": {"channel": "trades", "instId": symbol}, "connId": "5a1d0c3e"}
    return [(t0 * 1_000_000 + 2_000, ack)]


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def native(symbol: str) -> str:
    """OKX spells spot instruments as we do: ``BTC-USDT``."""
    return symbol


def _normalizer(known: Iterable[str]) -> OkxNormalizer:
    return OkxNormalizer()


SPEC = ExchangeSpec(
    name=EXCHANGE,
    settings_model=OkxSettings,
    connector=OkxConnector,
    normalizer=_normalizer,
    rest_client=OkxRest.from_settings,
    render=render,
    idle_messages=subscribe_acks,
    native=native,
)
