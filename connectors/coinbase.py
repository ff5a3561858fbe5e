"""Coinbase: Exchange ``matches`` feed or Advanced Trade ``market_trades``; REST ``/products/<id>/trades``.

Quirks kept here: on ``match``/``last_match`` and on the REST trades endpoint ``side`` is the MAKER
order's side, so the taker side is the opposite; Advanced Trade ``market_trades`` reports the same
maker side (upper case) in batches with nanosecond timestamps (truncated to microseconds: the
contract's precision). Trade ids are per product and shared by both feeds and REST, so all three give
the same event_id. The Exchange feed closes connections that do not subscribe within 5 s.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection

from coattail.contracts.trade import Side
from connectors.base import BaseConnector
from connectors.trade import (
    QUOTE_VOLUME_LIMIT,
    TRADE_ID_LIMIT,
    FutureLimit,
    NormalizeError,
    Trade,
    check_symbol,
    iso_timestamp,
    now_iso,
    plain_decimal_pair,
    positive_decimal,
)

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
        p, q = row.get("price"), row.get("size")
        # Inline happy path of positive_decimal (hot path); anything unusual gets its precise error there.
        if type(p) is str and type(q) is str and plain_decimal_pair(f"{p} {q}"):
            price, size = Decimal(p), Decimal(q)
        else:
            price, size = positive_decimal(p, "price"), positive_decimal(q, "size")
        if not price or not size:
            positive_decimal(p, "price"), positive_decimal(q, "size")  # zero: raises with the reason
        quote_volume = price * size
        if quote_volume >= QUOTE_VOLUME_LIMIT:
            raise NormalizeError("price, size: price × size has more than 20 integer digits")
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


class CoinbaseConnector(BaseConnector):
    name = EXCHANGE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.normalizer = CoinbaseNormalizer()
        self.advanced = self.settings.feed == "advanced_trade"

    def ws_url(self) -> str:
        return self.settings.advanced_ws_url if self.advanced else self.settings.ws_url

    async def subscribe(self, ws: ClientConnection) -> None:
        if self.advanced:
            for channel in ("market_trades", "heartbeats"):
                sub = {"type": "subscribe", "product_ids": self.symbols, "channel": channel}
                await ws.send(orjson.dumps(sub).decode())
        else:
            sub2 = {"type": "subscribe", "product_ids": self.symbols, "channels": ["matches", "heartbeat"]}
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

    async def latest_id(self, http: httpx.AsyncClient, symbol: str) -> int | None:
        response = await http.get(f"/products/{symbol}/trades", params={"limit": 1})
        response.raise_for_status()
        rows = response.json()
        if not isinstance(rows, list):
            raise ValueError("trades: expected a JSON array")
        if not rows or not isinstance(rows[0], dict):
            return None
        return int(_trade_id(rows[0].get("trade_id")))

    async def fetch_since(
        self, http: httpx.AsyncClient, symbol: str, last_id: int, limit: int
    ) -> list[Trade]:
        """Page from the newest trade backwards (``after`` cursor = older) until ``last_id`` is reached."""
        collected: dict[int, Trade] = {}
        params: dict[str, Any] = {"limit": 1000}
        while True:
            response = await http.get(f"/products/{symbol}/trades", params=params)
            response.raise_for_status()
            rows = response.json()
            if not isinstance(rows, list):
                raise ValueError("trades: expected a JSON array")
            received_at = now_iso()
            for row in rows:
                trade = self.normalizer.rest_trade(row, symbol, received_at)
                seq = int(trade.trade_id)
                if seq > last_id:
                    collected[seq] = trade
            ids = [int(_trade_id(r.get("trade_id"))) for r in rows if isinstance(r, dict)]
            if not ids or min(ids) <= last_id + 1 or len(collected) >= limit:
                break
            params = {"limit": 1000, "after": response.headers.get("cb-after") or str(min(ids))}
        return [collected[k] for k in sorted(collected)][:limit]
