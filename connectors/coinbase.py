"""Coinbase, all of it: settings, normaliser, REST client with its rate limit, connector, simulator
renderer — and the registry's :data:`SPEC`. Product ids are already ``BASE-QUOTE``.

Quirks kept here: on ``match``/``last_match`` and on the REST trades endpoint ``side`` is the MAKER
order's side, so the taker side is the opposite; Advanced Trade ``market_trades`` reports the same
maker side (upper case) in batches with nanosecond timestamps (truncated to microseconds: the
contract's precision). Trade ids are per product and shared by both feeds and REST, so all three give
the same event_id. The Exchange feed closes connections that do not subscribe within 5 s. Public REST
endpoints are limited per IP (10 requests/s, bursts of 15); over it they answer 429.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

import httpx
import orjson
from pydantic import Field
from websockets.asyncio.client import ClientConnection

from coattail.contracts.trade import Side
from coattail.contracts.types import format_utc, from_epoch_us
from connectors.base import BaseConnector
from connectors.rest import RateRules, RestClient, RestError
from connectors.spec import ExchangeSettings, ExchangeSpec, Rendered, SimCounters, SimTrade
from connectors.trade import (
    TRADE_ID_LIMIT,
    FutureLimit,
    NormalizeError,
    Trade,
    check_symbol,
    iso_timestamp,
    now_iso,
    price_and_size,
)


# -- settings ----------------------------------------------------------------------------------------
class CoinbaseSettings(ExchangeSettings):
    """``connectors.<name>`` with ``type: coinbase``."""

    type: Literal["coinbase"] = "coinbase"
    feed: Literal["exchange_matches", "advanced_trade"] = "exchange_matches"
    advanced_ws_url: str = ""
    # Public REST endpoints: 10 requests/s per IP, bursts up to 15 (Coinbase Exchange rate limits).
    rest_requests_per_second: float = Field(10, gt=0, le=15)
    rest_burst: int = Field(15, ge=1, le=15)


# -- normaliser --------------------------------------------------------------------------------------
EXCHANGE = "coinbase"
_TAKER: dict[str, Side] = {"buy": "sell", "sell": "buy", "BUY": "sell", "SELL": "buy"}  # maker -> taker
_MATCHES = frozenset(("match", "last_match"))
# Known non-trade messages (ignored, counted by the caller): Exchange feed ``type``s and Advanced Trade
# ``channel``s. Anything else is dead-lettered, so an unknown message never vanishes unexplained.
CONTROL_TYPES = frozenset(
    ("heartbeat", "subscriptions", "error", "ticker", "ticker_batch", "status", "snapshot", "l2update",
     "received", "open", "done", "change", "activate")
)  # fmt: skip
CONTROL_CHANNELS = frozenset(
    ("heartbeats", "subscriptions", "ticker", "ticker_batch", "status", "l2_data", "candles", "user")
)
_TRADE_ID_MAX_DIGITS = len(str(TRADE_ID_LIMIT - 1))
_SYMBOL_CACHE_LIMIT = 4096


class CoinbaseNormalizer:
    """Pure message -> trades for both Coinbase feeds and REST rows."""

    exchange = EXCHANGE

    def __init__(self) -> None:
        self._symbols: dict[str, str] = {}
        self._future = FutureLimit()

    def message(self, msg: Any, received_at: str) -> list[Trade]:
        """Trades in one message; [] for known control messages; NormalizeError for anything else."""
        if type(msg) is not dict:
            raise NormalizeError(f"expected a JSON object, got {type(msg).__name__}")
        kind = msg.get("type")
        if type(kind) is str:  # (an unhashable "type": {} must not reach the set lookups)
            if kind in _MATCHES:
                return [self._trade(msg, msg.get("product_id"), received_at)]
            if kind in CONTROL_TYPES:
                return []  # heartbeat, subscriptions, ticker, error replies: not trades
        channel = msg.get("channel")
        if channel == "market_trades":
            return self._market_trades(msg, received_at)
        if type(channel) is str and channel in CONTROL_CHANNELS:
            return []
        what = f"type {str(kind)[:40]!r}" if kind is not None else f"channel {str(channel)[:40]!r}"
        raise NormalizeError(f"unknown message {what}")

    def rest_trade(self, row: Any, product_id: str, received_at: str) -> Trade:
        """One row of ``GET /products/<id>/trades`` (trade_id, price, size, maker side, time)."""
        if type(row) is not dict:
            raise NormalizeError("trades row: expected a JSON object")
        return self._trade(row, product_id, received_at)

    def _market_trades(self, msg: dict[str, Any], received_at: str) -> list[Trade]:
        events = msg.get("events")
        if type(events) is not list:
            raise NormalizeError("events: expected a list")
        out: list[Trade] = []
        for event in events:
            trades = event.get("trades") if type(event) is dict else None
            if type(trades) is not list:
                raise NormalizeError("events[].trades: expected a list")
            for row in trades:
                if type(row) is not dict:
                    raise NormalizeError("events[].trades[]: expected a JSON object")
                out.append(self._trade(row, row.get("product_id"), received_at))
        return out

    def _symbol(self, product_id: Any) -> str:
        if type(product_id) is not str:
            raise NormalizeError("product_id: missing")
        symbol = self._symbols.get(product_id)
        if symbol is None:
            symbol = check_symbol(product_id.upper())
            if len(self._symbols) >= _SYMBOL_CACHE_LIMIT:
                self._symbols.clear()
            self._symbols[product_id] = symbol
        return symbol

    def _trade(self, row: dict[str, Any], product_id: Any, received_at: str) -> Trade:
        symbol = self._symbol(product_id)
        raw_id = row.get("trade_id")
        trade_id = str(raw_id) if type(raw_id) is int and 0 <= raw_id < TRADE_ID_LIMIT else _trade_id(raw_id)
        price, size, quote_volume = price_and_size(row.get("price"), row.get("size"), "price", "size")
        future = self._future
        if received_at[:19] != future.key:
            future.load(received_at)
        maker_side = row.get("side")
        side = _TAKER.get(maker_side) if type(maker_side) is str else None
        if side is None:
            raise NormalizeError(f"side: expected buy or sell, got {str(maker_side)[:20]!r}")
        return Trade(
            EXCHANGE,
            symbol,
            price,
            size,
            quote_volume,
            side,
            iso_timestamp(row.get("time"), "time", future.iso),
            received_at,
            trade_id,
        )


def _trade_id(value: Any) -> str:
    """Canonical decimal text of the trade id: ints (Exchange, REST) and digit strings (Advanced) agree."""
    if type(value) is int and 0 <= value < TRADE_ID_LIMIT:
        return str(value)
    # Length first: int() of a 5,000-digit string raises ValueError (not ours) and costs time.
    if type(value) is str and 0 < len(value) <= _TRADE_ID_MAX_DIGITS and value.isascii() and value.isdigit():
        number = int(value)
        if number < TRADE_ID_LIMIT:
            return str(number)
    raise NormalizeError("trade_id: expected a non-negative integer id below 2^63")


# -- REST: one client, its rules serve the gap fill (and any batch reader) -----------------------------
class CoinbaseRules(RateRules):
    """Coinbase's public limit as a token bucket (``rate`` per second, ``burst`` at most); 429 waits
    ``Retry-After`` (1 s when absent: the limit is per second)."""

    exchange = EXCHANGE
    throttle_default_seconds = 1.0

    def __init__(
        self, rate: float = 10, burst: int = 15, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(clock)
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self._at = clock()

    def wait_before(self, path: str, weight: int) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        return 0.0 if self.tokens >= weight else (weight - self.tokens) / self.rate

    def sent(self, path: str, weight: int) -> None:
        self.tokens = max(self.tokens - weight, 0.0)  # (after a wait the bucket refilled to cover it)


class CoinbaseRest(RestClient):
    """Coinbase Exchange public reads with :class:`CoinbaseRules`."""

    def __init__(self, base_url: str, *, rate: float = 10, burst: int = 15, **kwargs: Any) -> None:
        super().__init__(base_url, CoinbaseRules(rate, burst), **kwargs)
        self.last_cursor: str | None = None  # CB-AFTER of the last page: the next (older) page

    @classmethod
    def from_settings(cls, settings: Any) -> CoinbaseRest:
        s: CoinbaseSettings = SPEC.settings_of(settings)
        return cls(s.rest_url, rate=s.rest_requests_per_second, burst=s.rest_burst)

    async def trades(self, product_id: str, params: dict[str, Any]) -> tuple[list[Any], str | None]:
        """One page of ``GET /products/<id>/trades`` (newest first) and its ``CB-AFTER`` cursor."""
        path = f"/products/{product_id}/trades"
        self.last_cursor = None
        body = await self.aget(path, params)
        if not isinstance(body, list):
            raise RestError(f"coinbase {path}: expected a JSON array")
        return body, self.last_cursor

    def _answer(self, path: str, response: httpx.Response, weight: int) -> Any:
        self.last_cursor = response.headers.get("cb-after")
        return super()._answer(path, response, weight)


# -- connector ---------------------------------------------------------------------------------------
class CoinbaseConnector(BaseConnector):
    name = EXCHANGE
    settings: CoinbaseSettings

    def __init__(self, settings: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(SPEC.settings_of(settings), *args, **kwargs)
        self.normalizer = CoinbaseNormalizer()
        self.advanced = self.settings.feed == "advanced_trade"

    def make_rest(self) -> RestClient:
        return CoinbaseRest.from_settings(self.settings)

    def ws_url(self, symbols: list[str]) -> str:
        return self.settings.advanced_ws_url if self.advanced else self.settings.ws_url

    async def subscribe(self, ws: ClientConnection, symbols: list[str]) -> None:
        if self.advanced:
            for channel in ("market_trades", "heartbeats"):
                sub = {"type": "subscribe", "product_ids": symbols, "channel": channel}
                await ws.send(orjson.dumps(sub).decode())
        else:
            sub2 = {"type": "subscribe", "product_ids": symbols, "channels": ["matches", "heartbeat"]}
            await ws.send(orjson.dumps(sub2).decode())

    def handle(self, message: Any, received_at: str) -> list[Trade]:
        if type(message) is dict and message.get("type") == "error":
            # Subscription refused (bad product id, ...): a reconnect with backoff will not fix a config
            # error, but it keeps the pod alive and the log/metric loud.
            raise OSError(
                f"coinbase error: {str(message.get('message'))[:200]} {str(message.get('reason'))[:200]}"
            )
        return self.normalizer.message(message, received_at)

    def sequence(self, trade: Trade) -> int | None:
        return int(trade.trade_id)

    async def latest_id(self, rest: RestClient, symbol: str) -> int | None:
        assert isinstance(rest, CoinbaseRest)
        rows, _ = await rest.trades(symbol, {"limit": 1})
        if not rows or not isinstance(rows[0], dict):
            return None
        return int(_trade_id(rows[0].get("trade_id")))

    async def fetch_since(self, rest: RestClient, symbol: str, last_id: int, limit: int) -> list[Trade]:
        """Page from the newest trade backwards (``after`` cursor = older) until ``last_id`` is reached."""
        assert isinstance(rest, CoinbaseRest)
        collected: dict[int, Trade] = {}
        params: dict[str, Any] = {"limit": 1000}
        while True:
            rows, cursor = await rest.trades(symbol, params)
            received_at = now_iso()
            for row in rows:
                trade = self.normalizer.rest_trade(row, symbol, received_at)
                seq = int(trade.trade_id)
                if seq > last_id:
                    collected[seq] = trade
            ids = [int(_trade_id(r.get("trade_id"))) for r in rows if isinstance(r, dict)]
            if not ids or min(ids) <= last_id + 1 or len(collected) >= limit:
                break
            params = {"limit": 1000, "after": cursor or str(min(ids))}
        return [collected[k] for k in sorted(collected)][:limit]


# -- simulator renderer ------------------------------------------------------------------------------
def render(tr: SimTrade, trade_id: int, counters: SimCounters, rng: random.Random) -> Rendered:
    """A simulated trade as an Exchange-feed ``match`` (maker side, microsecond time, a sequence)."""
    counters.next_seq += rng.randrange(1, 40)
    raw = {
        "type": "match",
        "trade_id": trade_id,
        "maker_order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "taker_order_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "side": "sell" if tr.taker == "buy" else "buy",  # Coinbase reports the MAKER's side
        "size": f"{tr.qty:.8f}",
        "price": f"{tr.price:.2f}",
        "product_id": tr.symbol,
        "sequence": counters.next_seq,
        "time": format_utc(from_epoch_us(tr.t_us)),  # Coinbase's own form: µs and Z
    }
    return Rendered(raw, str(trade_id), tr.t_us, str(raw["price"]), str(raw["size"]))


def heartbeats(symbol: str, counters: SimCounters, t0: int, t1: int) -> list[tuple[int, dict[str, Any]]]:
    """A heartbeat every 30 s (real feeds interleave non-trade messages), received 5 ms later."""
    out: list[tuple[int, dict[str, Any]]] = []
    for s in range(t0 + 30, t1, 30):
        hb = {"type": "heartbeat", "sequence": counters.next_seq, "last_trade_id": counters.next_id - 1,
              "product_id": symbol, "time": format_utc(from_epoch_us(s * 1_000_000))}  # fmt: skip
        out.append((s * 1_000_000 + 5_000, hb))
    return out


def _normalizer(known: Iterable[str]) -> CoinbaseNormalizer:
    return CoinbaseNormalizer()


SPEC = ExchangeSpec(
    name=EXCHANGE,
    settings_model=CoinbaseSettings,
    connector=CoinbaseConnector,
    normalizer=_normalizer,
    rest_client=CoinbaseRest.from_settings,
    render=render,
    idle_messages=heartbeats,
)
