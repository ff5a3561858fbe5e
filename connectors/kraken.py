"""Kraken spot, all of it: settings, symbols, normaliser, REST client with its rate limit, connector,
simulator renderer — and the registry's :data:`SPEC`.

Quirks kept here:

* WebSocket v2 (``wss://ws.kraken.com/v2``, channel ``trade``) reports the TAKER's ``side`` and sends
  ``price``/``qty`` as JSON *numbers*. Every parser we use (orjson on the socket, the JSONL tools)
  turns them into doubles, so the decimal text is recovered with ``repr``: a double holds any decimal
  of at most 15 significant digits uniquely, and ``repr`` is the shortest text that reads back as
  the same double — so for such a number it is exactly the decimal Kraken wrote. Kraken's
  precisions (qty 8 decimals, prices to the pair's tick) keep real trades far below 15 digits; a
  number whose shortest text has more is refused (dead letter) rather than guessed. Trailing
  fractional zeros are dropped on every path (REST strings carry them, numbers cannot), so the WS
  and REST copies of a trade print the same text.
* Symbols are ``BASE/QUOTE`` (v2 ``BTC/USD``; v1 and REST still say ``XBT`` for BTC and ``XDG`` for
  DOGE): normalised to ``BTC-USD``.
* ``trade_id`` is an integer per pair, shared by WS v2 and REST ``/0/public/Trades`` (7th column), so
  both give the same event_id. Old v1 rows have no id: a deterministic one is derived from the trade
  time text and the row's index in its message (``v1-<time>-<index>``; the pair enters the event_id
  through the symbol). Those ids cannot match the numeric ones of v2/REST for the same trade.
* REST ``Trades`` pages forward from ``since`` (a nanosecond timestamp, *not* a trade id: a small
  number is read as seconds) and returns ``last``, the cursor of the next page. Errors come as HTTP
  200 with ``{"error": ["EAPI:Rate limit exceeded"]}``; the public limit is about one request per
  second per IP (a counter that decays), beyond it Kraken refuses for a few seconds.
* The server sends ``{"channel":"heartbeat"}`` about once a second while a subscription is idle, and
  answers the application ping ``{"method":"ping"}`` with ``{"method":"pong"}``; the connector sends
  one whenever the link was silent for ``ping_interval_seconds`` (the base class's keep-alive), besides
  the WebSocket protocol pings.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
import orjson
from pydantic import Field
from websockets.asyncio.client import ClientConnection

from coattail.contracts.trade import Side
from coattail.contracts.types import format_utc, from_epoch_us
from connectors.base import BaseConnector, Item
from connectors.rest import RateRules, RestClient, RestError, ThrottledError, TransientError
from connectors.spec import ExchangeSettings, ExchangeSpec, Rendered, SimCounters, SimTrade
from connectors.trade import (
    FutureLimit,
    NormalizeError,
    Trade,
    check_symbol,
    check_trade_id,
    iso_timestamp,
    now_iso,
    plain_decimal,
    price_and_size,
)

log = logging.getLogger("connectors")
EXCHANGE = "kraken"
PING = '{"method":"ping","req_id":1}'
TRADES = "/0/public/Trades"
PAGE_LIMIT = 1000  # Trades returns at most 1000 rows per request


# -- settings ----------------------------------------------------------------------------------------
class KrakenSettings(ExchangeSettings):
    """``connectors.<name>`` with ``type: kraken``."""

    type: Literal["kraken"] = "kraken"
    # Public REST: about 1 request/s per IP, a counter that decays (Kraken's REST rate limits).
    rest_requests_per_second: float = Field(1, gt=0, le=1)
    rest_burst: int = Field(1, ge=1, le=15)
    rest_page_size: int = Field(PAGE_LIMIT, ge=1, le=PAGE_LIMIT)
    # Application-level {"method":"ping"}; the server also sends a heartbeat each second when idle.
    ping_interval_seconds: float = Field(30, gt=0, le=300)


# -- symbols -----------------------------------------------------------------------------------------
# Kraken's legacy asset codes (v1 WebSocket, REST pair names) -> the common ones.
ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
_LEGACY = {common: legacy for legacy, common in ALIASES.items()}
_SYMBOL_CACHE_LIMIT = 4096


def native(symbol: str) -> str:
    """``BTC-USD`` -> ``BTC/USD``, the v2 WebSocket spelling (v2 uses the common asset codes)."""
    return symbol.replace("-", "/")


def rest_pair(symbol: str) -> str:
    """``BTC-USD`` -> ``XBTUSD``, the REST pair name (legacy asset codes, no separator)."""
    base, _, quote = symbol.partition("-")
    return _LEGACY.get(base, base) + _LEGACY.get(quote, quote)


# -- normaliser --------------------------------------------------------------------------------------
# Known non-trade messages (ignored, counted by the caller); anything else is dead-lettered.
CONTROL_CHANNELS = frozenset(
    ("heartbeat", "status", "book", "ticker", "ohlc", "instrument", "level3", "executions", "balances")
)
CONTROL_METHODS = frozenset(("subscribe", "unsubscribe", "pong"))  # replies to our requests
V1_EVENTS = frozenset(("heartbeat", "systemStatus", "subscriptionStatus", "pong"))
V1_CONTROL_CHANNELS = ("book", "ticker", "spread", "ohlc")  # prefixes: "book-10", "ohlc-5"
_V2_SIDES: dict[str, Side] = {"buy": "buy", "sell": "sell"}
_V1_SIDES: dict[str, Side] = {"b": "buy", "s": "sell"}  # the taker's side on v1 and REST too
EXACT_DIGITS = 15  # every decimal of at most 15 significant digits survives a double exactly


def number_text(value: Any, field: str) -> Any:
    """The decimal text of a JSON number or string, trailing fractional zeros dropped.

    Floats become their shortest round-trip text (exact for <= 15 significant digits, refused above);
    anything that is not a plain decimal is passed on unchanged for ``price_and_size`` to refuse with
    its reason.
    """
    kind = type(value)
    if kind is float:
        text = repr(value)
        if text.lstrip("-") in ("inf", "nan"):
            return text
        exact = Decimal(text)
        digits = len(exact.normalize().as_tuple().digits)
        if digits > EXACT_DIGITS:
            raise NormalizeError(
                f"{field}: {text} has {digits} significant digits; a JSON number is exact to {EXACT_DIGITS}"
            )
        if "e" in text:
            text = format(exact, "f")  # 1e-05 -> 0.00001
    elif kind is int:
        text = str(value)
    elif kind is str:
        text = value
    else:
        return value
    if "." in text and plain_decimal(text) is not None:
        text = text.rstrip("0").rstrip(".")
    return text


def _epoch_seconds_iso(value: Any, field: str, before: str) -> str:
    """Canonical ISO text from epoch seconds with a fraction (``"1534614057.321597"``, v1 and REST);
    digits beyond microseconds are truncated."""
    text = value if type(value) is str else repr(value) if type(value) is float else None
    if text is None or not 0 < len(text) <= 24:
        raise NormalizeError(f"{field}: expected epoch seconds as a decimal")
    seconds, _, fraction = text.partition(".")
    if not (seconds.isascii() and seconds.isdigit() and len(seconds) <= 11) or not (
        fraction == "" or (fraction.isascii() and fraction.isdigit())
    ):
        raise NormalizeError(f"{field}: {text[:40]!r} is not epoch seconds")
    micros = int((fraction + "000000")[:6])
    try:
        at = datetime.fromtimestamp(int(seconds), UTC).replace(microsecond=micros)
    except (OverflowError, OSError, ValueError):
        raise NormalizeError(f"{field}: {text[:40]!r} is outside the representable range") from None
    return iso_timestamp(format_utc(at), field, before)


class KrakenNormalizer:
    """Pure message -> trades for Kraken: WS v2 objects, v1 arrays and REST ``Trades`` rows."""

    exchange = EXCHANGE

    def __init__(self) -> None:
        self._symbols: dict[str, str] = {}
        self._future = FutureLimit()

    def message(self, msg: Any, received_at: str) -> list[Trade]:
        """Trades in one message; [] for known control messages; NormalizeError for anything else."""
        if type(msg) is dict:
            return self._object(msg, received_at)
        if type(msg) is list:
            return self._v1_array(msg, received_at)
        raise NormalizeError(f"expected a JSON object or array, got {type(msg).__name__}")

    def rest_trade(self, row: Any, symbol: str, received_at: str) -> Trade:
        """One row of ``GET /0/public/Trades``: [price, volume, time, side, ordertype, misc, trade_id]."""
        if type(row) is not list or len(row) < 7:
            raise NormalizeError("Trades row: expected [price, volume, time, side, type, misc, trade_id]")
        trade_id = str(check_trade_id(row[6], "trade_id"))
        return self._row(row, symbol, trade_id, received_at)

    # -- v2 ----------------------------------------------------------------------------------------
    def _object(self, msg: dict[str, Any], received_at: str) -> list[Trade]:
        channel = msg.get("channel")
        if channel == "trade":
            kind, data = msg.get("type"), msg.get("data")
            if kind != "update" and kind != "snapshot":
                raise NormalizeError(f"type: expected update or snapshot, got {str(kind)[:40]!r}")
            if type(data) is not list:
                raise NormalizeError("data: expected a list of trades")
            return [self._v2_trade(row, received_at) for row in data]
        if type(channel) is str and channel in CONTROL_CHANNELS:
            return []
        method, event = msg.get("method"), msg.get("event")
        if type(method) is str and method in CONTROL_METHODS:
            return []  # subscribe acks (the connector checks "success"), pongs
        if type(event) is str and event in V1_EVENTS:
            return []  # v1 heartbeats, status and subscription replies
        what = channel if channel is not None else method if method is not None else event
        raise NormalizeError(f"unknown message {str(what)[:40]!r}")

    def _v2_trade(self, row: Any, received_at: str) -> Trade:
        if type(row) is not dict:
            raise NormalizeError("data[]: expected a JSON object")
        symbol = self._symbol(row.get("symbol"), "symbol")
        trade_id = str(check_trade_id(row.get("trade_id"), "trade_id"))
        price, qty, quote_volume = price_and_size(
            number_text(row.get("price"), "price"), number_text(row.get("qty"), "qty"), "price", "qty"
        )
        taker = row.get("side")
        side = _V2_SIDES.get(taker) if type(taker) is str else None
        if side is None:
            raise NormalizeError(f"side: expected buy or sell, got {str(taker)[:20]!r}")
        future = self._future
        if received_at[:19] != future.key:
            future.load(received_at)
        timestamp = iso_timestamp(row.get("timestamp"), "timestamp", future.iso)
        return Trade(EXCHANGE, symbol, price, qty, quote_volume, side, timestamp, received_at, trade_id)

    # -- v1 and REST rows --------------------------------------------------------------------------
    def _v1_array(self, msg: list[Any], received_at: str) -> list[Trade]:
        """``[channelID, payload..., channelName, pair]``; only ``trade`` holds trades."""
        name = msg[-2] if len(msg) >= 4 else None
        if name == "trade":
            rows, pair = msg[1], msg[-1]
            if type(rows) is not list:
                raise NormalizeError("v1 trade: expected a list of rows")
            symbol = self._symbol(pair, "pair")
            return [self._v1_row(row, symbol, i, received_at) for i, row in enumerate(rows)]
        if type(name) is str and name.startswith(V1_CONTROL_CHANNELS):
            return []
        raise NormalizeError(f"unknown v1 message {str(name)[:40]!r}")

    def _v1_row(self, row: Any, symbol: str, index: int, received_at: str) -> Trade:
        if type(row) is not list or len(row) < 6:
            raise NormalizeError("v1 trade row: expected [price, volume, time, side, type, misc]")
        if len(row) >= 7:
            trade_id = str(check_trade_id(row[6], "trade_id"))
        else:  # older rows have no id: time text + position in this message (deterministic)
            stamp = row[2]
            if type(stamp) is not str or not 0 < len(stamp) <= 24:
                raise NormalizeError("time: expected epoch seconds as a decimal string")
            trade_id = f"v1-{stamp}-{index}"
        return self._row(row, symbol, trade_id, received_at)

    def _row(self, row: list[Any], symbol: str, trade_id: str, received_at: str) -> Trade:
        price, qty, quote_volume = price_and_size(
            number_text(row[0], "price"), number_text(row[1], "volume"), "price", "volume"
        )
        taker = row[3]
        side = _V1_SIDES.get(taker) if type(taker) is str else None
        if side is None:
            raise NormalizeError(f"side: expected b or s, got {str(taker)[:20]!r}")
        future = self._future
        if received_at[:19] != future.key:
            future.load(received_at)
        timestamp = _epoch_seconds_iso(row[2], "time", future.iso)
        return Trade(EXCHANGE, symbol, price, qty, quote_volume, side, timestamp, received_at, trade_id)

    def _symbol(self, pair: Any, field: str) -> str:
        if type(pair) is not str:
            raise NormalizeError(f"{field}: missing")
        symbol = self._symbols.get(pair)
        if symbol is None:
            base, slash, quote = pair.upper().partition("/")
            if not slash:
                raise NormalizeError(f"{field}: {pair[:40]!r} is not BASE/QUOTE")
            symbol = check_symbol(f"{ALIASES.get(base, base)}-{ALIASES.get(quote, quote)}")
            if len(self._symbols) >= _SYMBOL_CACHE_LIMIT:
                self._symbols.clear()
            self._symbols[pair] = symbol
        return symbol


# -- REST: one client, its rules serve the gap fill ---------------------------------------------------
class KrakenRules(RateRules):
    """Kraken's public limit as a decaying counter (``rate`` per second, at most ``burst``).

    Kraken answers over-limit requests with HTTP 200 and ``EAPI:Rate limit exceeded`` in ``error``:
    that is a throttle (wait ``throttle_default_seconds``, "a few seconds"), as is HTTP 429 (the base's
    ``Retry-After``) and ``EService:Throttled:<unix time>`` (wait until then). The counter is emptied
    on a throttle, so the next requests slow down too.
    """

    exchange = EXCHANGE
    throttle_default_seconds = 5.0

    def __init__(
        self,
        rate: float = 1.0,
        burst: int = 1,
        throttle_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.rate, self.burst = rate, burst
        self.throttle_default_seconds = throttle_seconds
        self.tokens = float(burst)
        self._at = clock()

    def wait_before(self, path: str, weight: int) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        return 0.0 if self.tokens >= weight else (weight - self.tokens) / self.rate

    def sent(self, path: str, weight: int) -> None:
        self.tokens = max(self.tokens - weight, 0.0)

    def check(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            self.tokens = 0.0
        super().check(response)
        errors = _errors(response)
        if not errors:
            return
        first = errors[0]
        if first.startswith(("EAPI:Rate limit exceeded", "EGeneral:Too many requests")):
            self.tokens = 0.0
            raise KrakenThrottledError(self.throttle_default_seconds, first)
        if first.startswith("EService:Throttled"):
            self.tokens = 0.0
            until = first.rpartition(":")[2].strip()
            wait = float(until) - time.time() if until.isdigit() else self.throttle_default_seconds
            raise KrakenThrottledError(max(wait, 1.0), first)
        if first.startswith(("EService:Unavailable", "EService:Busy", "EService:Market in cancel_only")):
            raise TransientError(first[:200])
        raise RestError(f"kraken {response.request.url.path} answered {first[:200]}")


class KrakenThrottledError(ThrottledError):
    """An over-limit reply in Kraken's ``error`` array (HTTP 200): retried after ``wait`` seconds."""

    def __init__(self, wait: float, reason: str) -> None:
        super().__init__(wait)
        self.args = (f"{reason[:100]} (HTTP 200), retrying in {wait:.0f} s",)


def _errors(response: httpx.Response) -> list[str]:
    """The ``E...`` entries of Kraken's ``error`` array (warnings start with ``W``)."""
    if b'"error":[]' in response.content[:64]:
        return []  # the usual answer: skip the parse
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return []  # the client reports the non-JSON answer
    errors = body.get("error") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(e) for e in errors if str(e).startswith("E")]


def exact_json(content: bytes | str) -> Any:
    """JSON with every fractional number kept as its source text (REST ``time`` columns)."""
    return json.loads(content, parse_float=str)


class KrakenRest(RestClient):
    """Kraken public market-data reads with :class:`KrakenRules`; numbers keep their exact text."""

    def __init__(
        self,
        base_url: str,
        *,
        rate: float = 1.0,
        burst: int = 1,
        throttle_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        max_attempts: int = 6,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            base_url, KrakenRules(rate, burst, throttle_seconds, clock), max_attempts=max_attempts,
            timeout=timeout, sleep=sleep, async_sleep=async_sleep,
        )  # fmt: skip

    @classmethod
    def from_settings(cls, settings: Any) -> KrakenRest:
        s: KrakenSettings = SPEC.settings_of(settings)
        return cls(s.rest_url, rate=s.rest_requests_per_second, burst=s.rest_burst)

    async def trades(self, pair: str, params: dict[str, Any]) -> tuple[list[Any], str | None]:
        """One page of ``GET /0/public/Trades`` (oldest first) and its ``last`` cursor."""
        body = await self.aget(TRADES, {"pair": pair, **params})
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            raise RestError(f"kraken {TRADES}: expected a JSON object with a result")
        rows: Any = next((v for k, v in result.items() if k != "last"), [])
        if not isinstance(rows, list):
            raise RestError(f"kraken {TRADES}: the result's trades are not a list")
        last = result.get("last")
        return rows, str(last) if last is not None else None

    def _answer(self, path: str, response: httpx.Response, weight: int) -> Any:
        super()._answer(path, response, weight)  # the rules' checks and counters
        return exact_json(response.content)


# -- connector ---------------------------------------------------------------------------------------
class KrakenConnector(BaseConnector):
    name = EXCHANGE
    settings: KrakenSettings

    def __init__(self, settings: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(SPEC.settings_of(settings), *args, **kwargs)
        self.normalizer = KrakenNormalizer()
        # symbol -> (newest trade id seen, its timestamp): REST pages by time, so the gap fill starts
        # from the time of the trade the base class tracks by id.
        self.cursors: dict[str, tuple[int, str]] = {}

    def make_rest(self) -> RestClient:
        return KrakenRest.from_settings(self.settings)

    def ws_url(self, symbols: list[str]) -> str:
        return self.settings.ws_url

    async def subscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        """Subscribe without the 50-trade snapshot (the REST gap fill covers reconnects)."""
        params = {"channel": "trade", "symbol": [native(s) for s in symbols], "snapshot": False}
        await ws.send(orjson.dumps({"method": "subscribe", "params": params}).decode())

    def ping_frame(self) -> str:
        return PING  # Kraken v2 answers {"method":"pong"} (a control message)

    def ping_interval(self) -> float:
        return self.settings.ping_interval_seconds

    def handle(self, message: Any, received_at: str) -> list[Trade]:
        if type(message) is dict and message.get("method") == "subscribe" and message.get("success") is False:
            # A refused subscription (unknown pair, ...): reconnecting will not fix the config, but it
            # keeps the pod alive and the log/metric loud.
            raise OSError(f"kraken subscribe refused: {str(message.get('error'))[:200]}")
        return self.normalizer.message(message, received_at)

    def sequence(self, trade: Trade) -> int | None:
        """The per-pair trade id; None for the derived ids of old v1 rows."""
        return int(trade.trade_id) if trade.trade_id.isdigit() else None

    async def emit(self, trade: Trade, queue: asyncio.Queue[Item]) -> bool:
        fresh = await super().emit(trade, queue)
        if fresh:
            seq = self.sequence(trade)
            if seq is not None and self._last_ids.get(trade.symbol) == seq:
                self.cursors[trade.symbol] = (seq, trade.timestamp)
        return fresh

    async def latest_id(self, rest: RestClient, symbol: str) -> int | None:
        assert isinstance(rest, KrakenRest)
        rows, _ = await rest.trades(rest_pair(symbol), {"count": 1})
        if not rows:
            return None
        newest = self.normalizer.rest_trade(rows[-1], symbol, now_iso())
        seq = int(newest.trade_id)
        self.cursors.setdefault(symbol, (seq, newest.timestamp))
        return seq

    async def fetch_since(self, rest: RestClient, symbol: str, last_id: int, limit: int) -> list[Trade]:
        """Page forward from one second before the last trade seen (``since`` is time, not an id),
        following ``last``; rows up to ``last_id`` are the overlap and are dropped."""
        assert isinstance(rest, KrakenRest)
        count = self.settings.rest_page_size
        params: dict[str, Any] = {"count": count}
        cursor = self.cursors.get(symbol)
        if cursor is not None:
            params["since"] = str(max(_epoch_ns(cursor[1]) - 1_000_000_000, 0))
        collected: dict[int, Trade] = {}
        while True:
            rows, last = await rest.trades(rest_pair(symbol), params)
            received_at = now_iso()
            for row in rows:
                trade = self.normalizer.rest_trade(row, symbol, received_at)
                seq = int(trade.trade_id)
                if seq > last_id:
                    collected[seq] = trade
            if len(rows) < count or last is None or last == params.get("since") or len(collected) >= limit:
                break
            params = {"count": count, "since": last}
        return [collected[k] for k in sorted(collected)][:limit]


def _epoch_ns(iso: str) -> int:
    """Nanoseconds since the epoch of a canonical ISO timestamp (Kraken's ``since`` unit)."""
    at = datetime.fromisoformat(iso)
    return int(at.replace(microsecond=0).timestamp()) * 1_000_000_000 + at.microsecond * 1000


# -- simulator renderer ------------------------------------------------------------------------------
def render(tr: SimTrade, trade_id: int, counters: SimCounters, rng: random.Random) -> Rendered:
    """A simulated trade as a v2 ``trade`` update (JSON numbers, taker side, microsecond time)."""
    price, qty = float(tr.price), float(tr.qty)
    row = {
        "symbol": native(tr.symbol),
        "side": tr.taker,  # Kraken reports the TAKER's side
        "price": price,
        "qty": qty,
        "ord_type": "market" if rng.random() < 0.6 else "limit",
        "trade_id": trade_id,
        "timestamp": format_utc(from_epoch_us(tr.t_us)),
    }
    raw = {"channel": "trade", "type": "update", "data": [row]}
    # The text the normaliser reads back from the JSON numbers (the truth's quote volume uses it).
    return Rendered(raw, str(trade_id), tr.t_us, number_text(price, "price"), number_text(qty, "qty"))


def heartbeats(symbol: str, counters: SimCounters, t0: int, t1: int) -> list[tuple[int, dict[str, Any]]]:
    """A heartbeat every 15 s (Kraken sends one a second while idle; thinned to keep files small)."""
    return [(s * 1_000_000 + 7_000, {"channel": "heartbeat"}) for s in range(t0 + 15, t1, 15)]


def _normalizer(known: Iterable[str]) -> KrakenNormalizer:
    return KrakenNormalizer()


SPEC = ExchangeSpec(
    name=EXCHANGE,
    settings_model=KrakenSettings,
    connector=KrakenConnector,
    normalizer=_normalizer,
    rest_client=KrakenRest.from_settings,
    render=render,
    idle_messages=heartbeats,
    native=native,
)
