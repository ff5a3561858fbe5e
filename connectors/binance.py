"""Binance spot, all of it: settings, symbols, normaliser, REST client with its rate limits, connector,
simulator renderer — and the registry's :data:`SPEC`.

Quirks kept here: ``m: true`` means the buyer was the maker, so the taker sold; ``t`` (trade id) and
``a`` (aggregate id) are different id spaces and the same trade appears in both streams, so the
event_id source is explicit (``"<t>"`` vs ``"agg:<a>"``) and only the configured kind is subscribed;
symbols are concatenated (``BTCUSDT``) and split via exchangeInfo; connections die at 24 h; one
combined-stream connection carries at most 1024 streams, so more are spread over several
connections; REST requests cost weights per minute (``X-MBX-USED-WEIGHT-1M``), a 429 asks to wait
``Retry-After`` and ignoring it earns a 418 (an IP ban).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Literal

import httpx
import orjson
from pydantic import Field, model_validator
from websockets.asyncio.client import ClientConnection

from coattail.contracts.trade import Side
from connectors.base import BaseConnector, ReconnectNow
from connectors.rest import BannedError, RateRules, RestClient, RestError, retry_after
from connectors.spec import ExchangeSettings, ExchangeSpec, Rendered, SimCounters, SimTrade
from connectors.trade import (
    FLOOR_MS,
    MILLIS,
    TRADE_ID_LIMIT,
    FutureLimit,
    MillisFormatter,
    NormalizeError,
    Trade,
    check_symbol,
    check_trade_id,
    now_iso,
    price_and_size,
)

log = logging.getLogger("connectors")
EXCHANGE = "binance"
BinanceStream = Literal["trade", "aggTrade"]
# Known non-trade events (ignored, counted by the caller); any other "e" is dead-lettered.
CONTROL_EVENTS = frozenset(
    ("depthUpdate", "kline", "24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker", "1dTicker",
     "avgPrice", "serverShutdown")
)  # fmt: skip
MAX_STREAMS_PER_CONNECTION = 1024  # Binance: "a single connection can listen to a maximum of 1024 streams"


# -- settings ----------------------------------------------------------------------------------------
class BinanceSettings(ExchangeSettings):
    """``connectors.<name>`` with ``type: binance``."""

    type: Literal["binance"] = "binance"
    streams: list[BinanceStream] = Field(default_factory=lambda: list[BinanceStream](["aggTrade"]))
    # Streams (symbol x stream kind) per combined-stream connection; beyond it, more connections.
    max_streams_per_connection: int = Field(MAX_STREAMS_PER_CONNECTION, ge=1, le=MAX_STREAMS_PER_CONNECTION)
    # Request weight per minute the live gap fill may use (Binance bans an IP above 6000).
    rest_weight_budget: int = Field(3000, ge=10, le=6000)

    @model_validator(mode="after")
    def _streams_fit_one_connection(self) -> BinanceSettings:
        if len(set(self.streams)) > self.max_streams_per_connection:
            raise ValueError("max_streams_per_connection must hold at least one symbol's streams")
        return self


# -- symbols -----------------------------------------------------------------------------------------
# Learned native spellings beyond this many are forgotten (a hostile feed must not grow memory).
_CACHE_LIMIT = 4096

# Quote assets in use on Binance spot, longest first so "FDUSD" wins over "USD"-like suffixes.
BUNDLED_QUOTES: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT",
            "USDC",
            "FDUSD",
            "TUSD",
            "BUSD",
            "USDP",
            "DAI",
            "BTC",
            "ETH",
            "BNB",
            "EUR",
            "TRY",
            "BRL",
            "GBP",
            "AUD",
            "JPY",
            "RUB",
            "UAH",
            "ZAR",
            "PLN",
            "RON",
            "ARS",
            "MXN",
            "COP",
            "IDRT",
            "BIDR",
            "XRP",
            "TRX",
            "DOGE",
            "DOT",
            "SOL",
            "AEUR",
            "EURI",
            "U",
            "USD1",
        ),
        key=len,
        reverse=True,
    )
)


class BinanceSymbols:
    """Native ``BTCUSDT`` -> ``BTC-USDT``. Known pairs (config, exchangeInfo) win over the suffix rule."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self.cache: dict[str, str] = {}
        self._pinned: dict[str, str] = {}  # config and exchangeInfo pairs: never forgotten
        for symbol in known:
            self.add(symbol)

    def add(self, normalised: str) -> None:
        check_symbol(normalised)
        native = normalised.replace("-", "")
        self.cache[native] = self._pinned[native] = normalised

    def load_exchange_info(self, info: Mapping[str, Any]) -> int:
        """Add every pair from a ``GET /api/v3/exchangeInfo`` body; returns how many were added."""
        added = 0
        entries = info.get("symbols", [])
        if not isinstance(entries, list):
            raise ValueError("exchangeInfo: symbols is not a list")
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            base, quote = entry.get("baseAsset"), entry.get("quoteAsset")
            if isinstance(base, str) and isinstance(quote, str) and base and quote:
                try:
                    self.add(f"{base.upper()}-{quote.upper()}")
                except NormalizeError:
                    continue  # exotic asset names (e.g. with lower-case letters) are not ours
                added += 1
        return added

    def normalise(self, native: str) -> str:
        cached = self.cache.get(native)
        if cached is not None:
            return cached
        upper = native.upper()
        cached = self.cache.get(upper)
        if cached is None:
            cached = self._split(upper)
        if len(self.cache) >= len(self._pinned) + _CACHE_LIMIT:
            self.cache.clear()  # same dict object: normalisers hold a reference to it
            self.cache.update(self._pinned)
        self.cache[native] = cached
        return cached

    @staticmethod
    def _split(upper: str) -> str:
        for quote in BUNDLED_QUOTES:
            if upper.endswith(quote) and len(upper) > len(quote):
                return check_symbol(f"{upper[: -len(quote)]}-{quote}")
        raise NormalizeError(f"symbol: cannot split {upper[:40]!r} into base and quote")

    @staticmethod
    def native(normalised: str) -> str:
        """``BTC-USDT`` -> ``btcusdt`` (stream names are lower case)."""
        return normalised.replace("-", "").lower()


# -- normaliser --------------------------------------------------------------------------------------
class BinanceNormalizer:
    """Pure message -> trades for Binance (stream envelopes, bare events and REST rows)."""

    exchange = EXCHANGE

    def __init__(self, symbols: BinanceSymbols | None = None) -> None:
        self.symbols = symbols or BinanceSymbols()
        self._known = self.symbols.cache  # direct dict lookup on the hot path
        self._ms = MillisFormatter()
        self._future = FutureLimit()

    def message(self, msg: Any, received_at: str) -> list[Trade]:
        """Trades in one message: ``{"stream","data"}`` envelope or a bare event.

        [] for known control messages (CONTROL_EVENTS, subscription replies); NormalizeError (dead
        letter) for anything else, including unknown event types: nothing vanishes unexplained.
        """
        if type(msg) is not dict:
            raise NormalizeError(f"expected a JSON object, got {type(msg).__name__}")
        data = msg.get("data", msg) if "stream" in msg else msg
        if type(data) is not dict:
            raise NormalizeError("data: expected a JSON object")
        kind = data.get("e")
        if kind != "aggTrade" and kind != "trade":
            if type(kind) is str and kind in CONTROL_EVENTS:
                return []
            if kind is None and "id" in data and ("result" in data or "error" in data):
                return []  # reply to a (un)subscribe or list request
            raise NormalizeError(f"e: unknown message type {str(kind)[:40]!r}")
        native = data.get("s")
        symbol = self._known.get(native) if type(native) is str else None
        if symbol is None:
            if type(native) is not str:
                raise NormalizeError("s: missing symbol")
            symbol = self.symbols.normalise(native)
        return [self._trade(data, symbol, kind, received_at)]

    def rest_agg_trade(self, row: Any, symbol: str, received_at: str) -> Trade:
        """One row of ``GET /api/v3/aggTrades`` (same keys as the stream event, without e/E/s)."""
        if type(row) is not dict:
            raise NormalizeError("aggTrades row: expected a JSON object")
        return self._trade(row, symbol, "aggTrade", received_at)

    def rest_trade(self, row: Any, symbol: str, received_at: str) -> Trade:
        """One row of ``GET /api/v3/historicalTrades`` (id, price, qty, time, isBuyerMaker)."""
        if type(row) is not dict:
            raise NormalizeError("historicalTrades row: expected a JSON object")
        mapped = {"t": row.get("id"), "p": row.get("price"), "q": row.get("qty")}
        mapped |= {"T": row.get("time"), "m": row.get("isBuyerMaker")}
        return self._trade(mapped, symbol, "trade", received_at)

    def _trade(self, data: dict[str, Any], symbol: str, kind: str, received_at: str) -> Trade:
        if kind == "aggTrade":
            raw_id = data.get("a")
            trade_id = f"agg:{raw_id}"
        else:
            raw_id = data.get("t")
            trade_id = str(raw_id)
        if type(raw_id) is not int or not 0 <= raw_id < TRADE_ID_LIMIT:
            check_trade_id(raw_id, "a" if kind == "aggTrade" else "t")  # raises with the reason
        price, quantity, quote_volume = price_and_size(data.get("p"), data.get("q"), "p", "q")
        maker = data.get("m")
        if maker is True:
            side: Side = "sell"  # buyer was the maker -> the taker sold
        elif maker is False:
            side = "buy"
        else:
            raise NormalizeError("m: expected a boolean (is the buyer the maker?)")
        future = self._future
        if received_at[:19] != future.key:
            future.load(received_at)
        t, ms = data.get("T"), self._ms
        # Inline happy path of MillisFormatter: same second as the previous trade, inside the window.
        if type(t) is int and FLOOR_MS <= t < future.ms and t // 1000 == ms.second:
            timestamp = ms.prefix + MILLIS[t % 1000]
        else:
            timestamp = ms(t, "T", future.ms)
        return Trade(
            EXCHANGE,
            symbol,
            price,
            quantity,
            quote_volume,
            side,
            timestamp,
            received_at,
            trade_id,
        )


# -- REST: one client, its rules serve the gap fill (async) and the backfill (sync) ---------------------
AGG_TRADES = "/api/v3/aggTrades"
PAGE_LIMIT = 1000
HOUR_MS = 3_600_000  # aggTrades answers startTime/endTime windows of at most an hour
# Request weights (spot API docs); aggTrades is counted at 4 to leave room for others.
WEIGHTS = {AGG_TRADES: 4, "/api/v3/trades": 25, "/api/v3/historicalTrades": 25, "/api/v3/exchangeInfo": 20}


class BinanceRules(RateRules):
    """Binance's request weights per minute, ``Retry-After`` on 429 and the 418 ban.

    * Every response carries ``X-MBX-USED-WEIGHT-1M`` (the IP's weight this minute). We stay under our
      own budget (well below the ban line) by waiting for the next minute when the next request would
      cross it — so a 429 is rare.
    * A 429 means "back off now": the next request waits ``Retry-After`` seconds. Sending on after a
      429 is what earns a 418; a 418 stops with its ``Retry-After``, and no request leaves during it.
    """

    exchange = EXCHANGE

    def __init__(self, weight_budget: int = 3000, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.weight_budget = weight_budget
        self.used_weight = 0
        self.banned_until = 0.0
        self._minute = -1

    def wait_before(self, path: str, weight: int) -> float:
        now = self.clock()
        if now < self.banned_until:
            raise BannedError(EXCHANGE, 418, self.banned_until - now)
        self._roll(now)
        if self.used_weight + weight <= self.weight_budget:
            return 0.0
        wait = 60.0 - now % 60.0 + 0.05  # weights reset at the minute boundary
        log.info(
            "binance used weight %d of budget %d: pausing %.1f s", self.used_weight, self.weight_budget, wait
        )
        self._minute, self.used_weight = int((now + wait) // 60), 0
        return wait

    def sent(self, path: str, weight: int) -> None:
        self._roll(self.clock())
        self.used_weight += weight

    def observe(self, response: httpx.Response, weight: int) -> None:
        header = response.headers.get("X-MBX-USED-WEIGHT-1M", "")
        if header.isdigit():
            self.used_weight = int(header)  # the server's count wins over ours

    def check(self, response: httpx.Response) -> None:
        if response.status_code == 418:
            wait = retry_after(response, 120.0)
            self.banned_until = self.clock() + wait
            raise BannedError(EXCHANGE, 418, wait)
        super().check(response)

    def _roll(self, now: float) -> None:
        minute = int(now // 60)
        if minute > self._minute:
            self._minute, self.used_weight = minute, 0


class BinanceRest(RestClient):
    """Binance spot market-data reads with :class:`BinanceRules`."""

    def __init__(
        self,
        base_url: str,
        *,
        weight_budget: int = 3000,
        max_attempts: int = 6,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            base_url, BinanceRules(weight_budget, clock), max_attempts=max_attempts, timeout=timeout,
            sleep=sleep, async_sleep=async_sleep,
        )  # fmt: skip

    @classmethod
    def from_settings(cls, settings: Any) -> BinanceRest:
        s: BinanceSettings = SPEC.settings_of(settings)
        return cls(s.rest_url, weight_budget=s.rest_weight_budget)

    # -- sync: the backfill ----------------------------------------------------------------------
    def first_id_at_or_after(self, native: str, start_ms: int, end_ms: int) -> int | None:
        """Aggregate id of the first trade in [start, end), hour by hour (the API's window limit)."""
        t = start_ms
        while t < end_ms:
            window_end = min(t + HOUR_MS, end_ms) - 1
            rows = self.rows(
                AGG_TRADES, {"symbol": native, "startTime": t, "endTime": window_end, "limit": 1}
            )
            if rows:
                return int(rows[0]["a"])
            t = window_end + 1
        return None

    def page(self, native: str, from_id: int) -> list[dict[str, Any]]:
        return self.rows(AGG_TRADES, {"symbol": native, "fromId": from_id, "limit": PAGE_LIMIT})

    def rows(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return _array(path, self.get(path, params, weight=WEIGHTS.get(path, 1)))

    # -- async: the live connector ---------------------------------------------------------------
    async def arows(self, path: str, params: dict[str, Any]) -> list[Any]:
        return _array(path, await self.aget(path, params, weight=WEIGHTS.get(path, 1)))

    async def exchange_info(self, natives: list[str]) -> Mapping[str, Any]:
        path = "/api/v3/exchangeInfo"
        body = await self.aget(path, {"symbols": orjson.dumps(natives).decode()}, weight=WEIGHTS[path])
        if not isinstance(body, dict):
            raise RestError(f"binance {path}: expected a JSON object")
        return body


def _array(path: str, body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise RestError(f"binance {path}: expected a JSON array, got {type(body).__name__}")
    return body


# -- connector ---------------------------------------------------------------------------------------
class BinanceConnector(BaseConnector):
    name = EXCHANGE
    settings: BinanceSettings

    def __init__(self, settings: Any, *args: Any, **kwargs: Any) -> None:
        self.kinds: list[BinanceStream] = list(dict.fromkeys(SPEC.settings_of(settings).streams)) or [
            "aggTrade"
        ]
        super().__init__(SPEC.settings_of(settings), *args, **kwargs)
        self.symbols_map = BinanceSymbols(self.symbols)
        self.normalizer = BinanceNormalizer(self.symbols_map)
        if len(self.kinds) > 1:
            log.warning(
                "binance subscribes both trade and aggTrade: the same volume is counted twice downstream",
                extra={"exchange": EXCHANGE},
            )

    def partition(self, symbols: list[str]) -> list[list[str]]:
        """Symbols per connection so that none carries more than max_streams_per_connection streams."""
        per = max(1, self.settings.max_streams_per_connection // len(self.kinds))
        return [symbols[i : i + per] for i in range(0, len(symbols), per)] or [[]]

    def make_rest(self) -> RestClient:
        return BinanceRest.from_settings(self.settings)

    def ws_url(self, symbols: list[str]) -> str:
        names = "/".join(f"{BinanceSymbols.native(s)}@{k}" for s in symbols for k in self.kinds)
        return f"{self.settings.ws_url.rstrip('/')}/stream?streams={names}"

    async def subscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        """Combined-stream URLs subscribe by themselves."""

    async def prepare(self, rest: RestClient) -> None:
        if not isinstance(rest, BinanceRest):
            return
        info = await rest.exchange_info([BinanceSymbols.native(s).upper() for s in self.symbols])
        self.symbols_map.load_exchange_info(info)

    def handle(self, message: Any, received_at: str) -> list[Trade]:
        if type(message) is dict:
            data = message.get("data", message)
            if type(data) is dict and data.get("e") == "serverShutdown":
                raise ReconnectNow("serverShutdown")
        return self.normalizer.message(message, received_at)

    def sequence(self, trade: Trade) -> int | None:
        # Only the id space the gap fill pages through is tracked (agg ids for aggTrade).
        is_agg = trade.trade_id.startswith("agg:")
        if is_agg != (self.kinds[0] == "aggTrade"):
            return None
        return int(trade.trade_id.removeprefix("agg:"))

    async def latest_id(self, rest: RestClient, symbol: str) -> int | None:
        assert isinstance(rest, BinanceRest)
        agg = self.kinds[0] == "aggTrade"
        path = AGG_TRADES if agg else "/api/v3/trades"
        rows = await rest.arows(path, {"symbol": BinanceSymbols.native(symbol).upper(), "limit": 1})
        if not rows or not isinstance(rows[-1], dict):
            return None
        value = rows[-1].get("a" if agg else "id")
        if type(value) is not int:
            raise ValueError(f"{path}: trade id is not an integer")
        return value

    async def fetch_since(self, rest: RestClient, symbol: str, last_id: int, limit: int) -> list[Trade]:
        assert isinstance(rest, BinanceRest)
        agg = self.kinds[0] == "aggTrade"
        path = AGG_TRADES if agg else "/api/v3/historicalTrades"
        convert = self.normalizer.rest_agg_trade if agg else self.normalizer.rest_trade
        native = BinanceSymbols.native(symbol).upper()
        out: list[Trade] = []
        from_id = last_id + 1
        while len(out) < limit:
            rows = await rest.arows(path, {"symbol": native, "fromId": from_id, "limit": PAGE_LIMIT})
            received_at = now_iso()
            out.extend(convert(row, symbol, received_at) for row in rows)
            if len(rows) < PAGE_LIMIT:
                break
            from_id = (self.sequence(out[-1]) or from_id) + 1
        return out


# -- simulator renderer ------------------------------------------------------------------------------
def render(tr: SimTrade, agg_id: int, counters: SimCounters, rng: random.Random) -> Rendered:
    """A simulated trade as a combined-stream ``aggTrade`` message (millisecond trade time)."""
    t_ms = tr.t_us // 1000
    native = tr.symbol.replace("-", "")
    first = agg_id * 3
    price_text, qty_text = f"{tr.price:.8f}", f"{tr.qty:.8f}"
    data = {
        "e": "aggTrade",
        "E": t_ms + rng.randrange(0, 5),
        "s": native,
        "a": agg_id,
        "p": price_text,
        "q": qty_text,
        "f": first,
        "l": first + rng.randrange(0, 3),
        "T": t_ms,
        "m": tr.taker == "sell",  # buyer is maker <=> the taker sold
        "M": True,
    }
    raw = {"stream": f"{native.lower()}@aggTrade", "data": data}
    return Rendered(raw, f"agg:{agg_id}", t_ms * 1000, price_text, qty_text)


def _normalizer(known: Iterable[str]) -> BinanceNormalizer:
    return BinanceNormalizer(BinanceSymbols(known))


SPEC = ExchangeSpec(
    name=EXCHANGE,
    settings_model=BinanceSettings,
    connector=BinanceConnector,
    normalizer=_normalizer,
    rest_client=BinanceRest.from_settings,
    render=render,
    native=BinanceSymbols.native,
)
