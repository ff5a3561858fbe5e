"""A local fake exchange: a real `websockets` server plus a real HTTP server for the REST endpoints.

Each WebSocket connection plays one scripted segment; between segments trades "happen" that are
never sent over the socket (the client must recover them from REST). REST only serves trades that
have already happened, like the real endpoints.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
from confluent_kafka import Consumer, KafkaError, Message
from websockets.asyncio.server import Server, ServerConnection, serve

from connectors.metrics import Metrics
from tests.httpjson import send_json


@dataclass
class Segment:
    """What one connection sends: history[released_from:upto] plus ``extra`` raw lines; then ``end``."""

    release: int  # trades with index < release have happened when this connection opens
    send_from: int
    send_to: int
    extra_before: list[str] = field(default_factory=list)
    extra_after: list[str] = field(default_factory=list)
    end: str = "abort"  # abort | close | hold


class FakeExchange:
    def __init__(
        self,
        history: list[dict[str, Any]],
        render_ws: Callable[[dict[str, Any]], str],
        rest: Callable[[FakeExchange, str, dict[str, list[str]]], tuple[int, dict[str, str], Any]],
        segments: list[Segment],
        expect_subscribe: bool = False,
    ) -> None:
        self.history = history
        self.render_ws = render_ws
        self.rest_handler = rest
        self.segments = segments
        self.expect_subscribe = expect_subscribe
        self.released = 0
        self.connections = 0
        self.subscriptions: list[dict[str, Any]] = []
        self.rest_calls: list[str] = []
        self.done = asyncio.Event()
        self._server: Server | None = None
        self._http: ThreadingHTTPServer | None = None

    @property
    def ws_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    @property
    def rest_url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    async def start(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._http_handler())
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    async def _handle(self, ws: ServerConnection) -> None:
        index = self.connections
        self.connections += 1
        if index >= len(self.segments):
            await ws.wait_closed()  # later reconnects (after the script) just idle
            return
        seg = self.segments[index]
        if self.expect_subscribe:
            self.subscriptions.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        self.released = max(self.released, seg.release)
        for line in seg.extra_before:
            await ws.send(line)
        for trade in self.history[seg.send_from : seg.send_to]:
            self.released = max(self.released, trade["_index"] + 1)
            await ws.send(self.render_ws(trade))
        for line in seg.extra_after:
            await ws.send(line)
        if seg.end == "abort":
            ws.transport.abort()  # no close frame: like a dropped TCP connection
        elif seg.end == "close":
            await ws.close()
        else:
            self.done.set()
            await ws.wait_closed()

    def _http_handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                fake.rest_calls.append(self.path)
                status, headers, body = fake.rest_handler(fake, url.path, parse_qs(url.query))
                send_json(self, status, headers, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def counter(metrics: Metrics, attr: str, label: str) -> float:
    """Current value of one labelled counter of a ``Metrics`` object (public ``collect`` API)."""
    for family in getattr(metrics, attr).collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and label in sample.labels.values():
                return float(sample.value)
    return 0.0


def happened(fake: FakeExchange) -> list[dict[str, Any]]:
    return [t for t in fake.history if t["_index"] < fake.released]


def consume_all(bootstrap: str, topic: str, partitions: int, timeout: float = 120) -> list[Message]:
    """Every record of ``topic`` (reads until each partition reports end-of-partition)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    eof: set[int] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(eof) < partitions:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            raise RuntimeError(str(err))
        eof.discard(msg.partition())
        out.append(msg)
    consumer.close()
    return out


# -- Binance spot REST/WS renderings (shared by the connector and manager tests) -----------------
def binance_ws(t: dict[str, Any]) -> str:
    data = {"e": "aggTrade", "E": t["T"] + 2} | {k: v for k, v in t.items() if not k.startswith("_")}
    data |= {"f": t["a"] * 2, "l": t["a"] * 2, "M": True}
    return orjson.dumps({"stream": f"{t['s'].lower()}@aggTrade", "data": data}).decode()


def binance_rest(fake: FakeExchange, path: str, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
    if path == "/api/v3/exchangeInfo":
        syms = [{"symbol": s, "baseAsset": s[:3], "quoteAsset": s[3:]} for s in ("BTCUSDT", "ETHUSDT")]
        return 200, {}, {"timezone": "UTC", "symbols": syms}
    if path == "/api/v3/aggTrades":
        symbol, limit = q["symbol"][0], int(q["limit"][0])
        rows = [t for t in happened(fake) if t["s"] == symbol]
        # oldest first from fromId; without it, the most recent trades
        newer = [t for t in rows if "fromId" in q and t["a"] >= int(q["fromId"][0])]
        rows = newer[:limit] if "fromId" in q else rows[-limit:]
        return 200, {}, [{"a": t["a"], "p": t["p"], "q": t["q"], "f": t["a"] * 2, "l": t["a"] * 2, "T": t["T"],  # noqa: E501
                          "m": t["m"], "M": True} for t in rows]  # fmt: skip
    return 404, {}, {"code": -1, "msg": "not found"}
