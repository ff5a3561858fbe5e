"""Binance's per-connection stream limit: subscriptions beyond it are spread over several connections,
each with its own reconnects and gap fill, and every trade still arrives exactly once.

A fake Binance (a real WebSocket server and a real HTTP server) serves each connection the trades of
the streams in its URL; the first connection of every stream set drops after a while, the trades made
while it is down are only on REST, and the second connection re-sends a few the REST fill returned.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from coattail.settings import load_settings
from connectors.base import Item
from connectors.binance import BinanceConnector
from connectors.trade import Trade
from tests.httpjson import send_json

pytestmark = pytest.mark.unit
SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT", "DOGE-USDT"]
PER_SYMBOL = 60
T0_MS = 1_763_900_000_000
# Per symbol: trades < 10 happened before we connect; connection 1 sends 10..29 then drops; 30..44
# happen while it is down; connection 2 sends 40..59 (40..44 overlap what REST returned) and holds.
BEFORE, FIRST_END, DOWN_END, SECOND_FROM = 10, 30, 45, 40


def _history() -> dict[str, list[dict[str, Any]]]:
    out = {}
    for k, symbol in enumerate(SYMBOLS):
        native = symbol.replace("-", "")
        out[native] = [
            {
                "a": 1_000 * (k + 1) + i,
                "p": f"{10 + k}.5",
                "q": "0.25",
                "T": T0_MS + i * 10 + k,
                "m": i % 2 == 0,
            }
            for i in range(PER_SYMBOL)
        ]
    return out


class FakeBinance:
    def __init__(self) -> None:
        self.trades = _history()
        self.released = dict.fromkeys(self.trades, 0)  # native -> trades that have happened
        self.sessions: Counter[tuple[str, ...]] = Counter()  # stream set -> connections so far
        self.urls: list[str] = []
        self.holding = 0

    def _send_range(self, natives: tuple[str, ...], lo: int, hi: int) -> list[str]:
        lines = []
        for i in range(lo, hi):  # interleaved across the connection's symbols
            for native in natives:
                row = self.trades[native][i]
                self.released[native] = max(self.released[native], i + 1)
                data = {"e": "aggTrade", "E": row["T"] + 1, "s": native, **row, "f": 1, "l": 1, "M": True}
                lines.append(orjson.dumps({"stream": f"{native.lower()}@aggTrade", "data": data}).decode())
        return lines

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.urls.append(ws.request.path)
        streams = parse_qs(urlparse(ws.request.path).query)["streams"][0].split("/")
        natives = tuple(s.split("@")[0].upper() for s in streams)
        session = self.sessions[natives]
        self.sessions[natives] += 1
        if session == 0:
            for native in natives:
                self.released[native] = BEFORE
            await asyncio.sleep(0.3)  # the client seeds its last ids from REST after subscribing
            for line in self._send_range(natives, BEFORE, FIRST_END):
                await ws.send(line)
            await asyncio.sleep(0.1)
            for native in natives:
                self.released[native] = DOWN_END
            ws.transport.abort()  # a dropped TCP connection
        elif session == 1:
            for line in self._send_range(natives, SECOND_FROM, PER_SYMBOL):
                await ws.send(line)
            self.holding += 1
            await ws.wait_closed()
        else:
            await ws.wait_closed()

    def rest(self, path: str, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        if path == "/api/v3/exchangeInfo":
            return 200, {}, {"symbols": []}
        if path != "/api/v3/aggTrades":
            return 404, {}, {"msg": "not found"}
        rows = self.trades[q["symbol"][0]][: self.released[q["symbol"][0]]]
        limit = int(q["limit"][0])
        newer = [r for r in rows if "fromId" in q and r["a"] >= int(q["fromId"][0])]
        rows = newer[:limit] if "fromId" in q else rows[-limit:]  # fromId: oldest first; else the newest
        return 200, {"X-MBX-USED-WEIGHT-1m": "10"}, rows


def test_five_symbols_over_three_connections_arrive_exactly_once_across_drops() -> None:
    fake = FakeBinance()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            send_json(self, *fake.rest(url.path, parse_qs(url.query)))

        def log_message(self, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()

    async def scenario() -> tuple[list[Item], BinanceConnector]:
        async with serve(fake.handle, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            settings = load_settings(
                overrides={
                    "connectors.binance.ws_url": f"ws://127.0.0.1:{port}",
                    "connectors.binance.rest_url": f"http://127.0.0.1:{http.server_address[1]}",
                    "connectors.binance.max_streams_per_connection": 2,
                    "reconnect.initial_backoff_seconds": 0.05,
                    "reconnect.max_backoff_seconds": 0.2,
                }
            )
            conn = BinanceConnector(settings.connectors["binance"], settings.reconnect, SYMBOLS)
            queue: asyncio.Queue[Item] = asyncio.Queue()
            task = asyncio.create_task(conn.stream(queue))
            expected = len(SYMBOLS) * (PER_SYMBOL - BEFORE)
            items: list[Item] = []
            for _ in range(600):
                while not queue.empty():
                    items.append(queue.get_nowait())
                if len(items) >= expected and fake.holding == 3:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # anything doubled would arrive now
            while not queue.empty():
                items.append(queue.get_nowait())
            assert conn.health_check()
            conn.shutdown()
            await asyncio.wait_for(task, 30)
            return items, conn

    try:
        items, conn = asyncio.run(scenario())
    finally:
        http.shutdown()
        http.server_close()

    assert [len(link.symbols) for link in conn.links] == [2, 2, 1]
    assert len(fake.sessions) == 3
    assert all(n >= 2 for n in fake.sessions.values())  # each connection dropped and came back
    assert all(len(parse_qs(urlparse(u).query)["streams"][0].split("/")) <= 2 for u in fake.urls)
    trades = [i for i in items if isinstance(i, Trade)]
    assert len(trades) == len(items)  # no dead letters
    ids = Counter((t.symbol, t.trade_id) for t in trades)
    assert max(ids.values()) == 1, "a trade was emitted twice"
    expected = {
        (symbol, f"agg:{row['a']}")
        for symbol in SYMBOLS
        for row in fake.trades[symbol.replace("-", "")][BEFORE:]
    }
    assert set(ids) == expected
