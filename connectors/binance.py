"""Binance spot: combined ``@trade`` / ``@aggTrade`` streams, REST ``aggTrades`` gap fill.

Quirks kept here: ``m: true`` means the buyer was the maker, so the taker sold; ``t`` (trade id) and
``a`` (aggregate id) are different id spaces and the same trade appears in both streams, so the
event_id source is explicit (``"<t>"`` vs ``"agg:<a>"``) and only the configured kind is subscribed;
symbols are concatenated (``BTCUSDT``) and split via exchangeInfo; connections die at 24 h.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection

from coattail.contracts.trade import Side
from connectors.base import BaseConnector, ReconnectNow
from connectors.symbols import BinanceSymbols
from connectors.trade import (
    FLOOR_MS,
    MILLIS,
    QUOTE_VOLUME_LIMIT,
    TRADE_ID_LIMIT,
    FutureLimit,
    MillisFormatter,
    NormalizeError,
    Trade,
    check_trade_id,
    now_iso,
    plain_decimal_pair,
    positive_decimal,
)

log = logging.getLogger("connectors")
EXCHANGE = "binance"
# Known non-trade events (ignored, counted by the caller); any other "e" is dead-lettered.
CONTROL_EVENTS = frozenset(
    ("depthUpdate", "kline", "24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker", "1dTicker",
     "avgPrice", "serverShutdown")
)  # fmt: skip


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
        p, q = data.get("p"), data.get("q")
        # Inline happy path of positive_decimal (hot path); anything unusual gets its precise error there.
        if type(p) is str and type(q) is str and plain_decimal_pair(f"{p} {q}"):
            price, quantity = Decimal(p), Decimal(q)
        else:
            price, quantity = positive_decimal(p, "p"), positive_decimal(q, "q")
        if not price or not quantity:
            positive_decimal(p, "p"), positive_decimal(q, "q")  # zero: raises with the reason
        quote_volume = price * quantity
        if quote_volume >= QUOTE_VOLUME_LIMIT:
            raise NormalizeError("p, q: price × quantity has more than 20 integer digits")
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


class BinanceConnector(BaseConnector):
    name = EXCHANGE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbols_map = BinanceSymbols(self.symbols)
        self.normalizer = BinanceNormalizer(self.symbols_map)
        self.kinds = list(dict.fromkeys(self.settings.streams)) or ["aggTrade"]
        if len(self.kinds) > 1:
            log.warning(
                "binance subscribes both trade and aggTrade: the same volume is counted twice downstream",
                extra={"exchange": EXCHANGE},
            )

    def ws_url(self) -> str:
        names = "/".join(f"{BinanceSymbols.native(s)}@{k}" for s in self.symbols for k in self.kinds)
        return f"{self.settings.ws_url.rstrip('/')}/stream?streams={names}"

    async def subscribe(self, ws: ClientConnection) -> None:
        """Combined-stream URLs subscribe by themselves."""

    async def prepare(self, http: httpx.AsyncClient) -> None:
        if not self.settings.rest_url:
            return
        wanted = orjson.dumps([BinanceSymbols.native(s).upper() for s in self.symbols]).decode()
        response = await http.get("/api/v3/exchangeInfo", params={"symbols": wanted})
        response.raise_for_status()
        self.symbols_map.load_exchange_info(response.json())

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

    async def latest_id(self, http: httpx.AsyncClient, symbol: str) -> int | None:
        agg = self.kinds[0] == "aggTrade"
        path = "/api/v3/aggTrades" if agg else "/api/v3/trades"
        response = await http.get(path, params={"symbol": BinanceSymbols.native(symbol).upper(), "limit": 1})
        response.raise_for_status()
        rows = response.json()
        if not isinstance(rows, list):
            raise ValueError(f"{path}: expected a JSON array")
        if not rows or not isinstance(rows[-1], dict):
            return None
        value = rows[-1].get("a" if agg else "id")
        if type(value) is not int:
            raise ValueError(f"{path}: trade id is not an integer")
        return value

    async def fetch_since(
        self, http: httpx.AsyncClient, symbol: str, last_id: int, limit: int
    ) -> list[Trade]:
        agg = self.kinds[0] == "aggTrade"
        path = "/api/v3/aggTrades" if agg else "/api/v3/historicalTrades"
        convert = self.normalizer.rest_agg_trade if agg else self.normalizer.rest_trade
        native = BinanceSymbols.native(symbol).upper()
        out: list[Trade] = []
        from_id = last_id + 1
        while len(out) < limit:
            response = await http.get(path, params={"symbol": native, "fromId": from_id, "limit": 1000})
            response.raise_for_status()
            rows = response.json()
            if not isinstance(rows, list):
                raise ValueError(f"{path}: expected a JSON array")
            received_at = now_iso()
            out.extend(convert(row, symbol, received_at) for row in rows)
            if len(rows) < 1000:
                break
            from_id = (self.sequence(out[-1]) or from_id) + 1
        return out
