"""Real local HTTP servers standing in for the outside world of the batch flow.

* :class:`FakeBinance` — ``GET /api/v3/aggTrades`` over a generated trade history, with the rate-limit
  behaviour that matters: ``X-MBX-USED-WEIGHT-1m``, a scripted 429 with ``Retry-After``, a 418 for
  any request that arrives while a Retry-After is still running, and scripted outages (HTTP 500).
* :class:`Recorder` — accepts POSTs (Slack-style webhooks) and keeps their bodies.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.httpjson import send_json

DAY_MS = 86_400_000


def make_trades(
    start_ms: int,
    end_ms: int,
    count: int,
    *,
    seed: int = 7,
    first_id: int = 1_000_000,
    price: float = 60_000.0,
    max_qty: float = 0.5,
) -> list[dict[str, Any]]:
    """``count`` aggTrades rows (a/p/q/f/l/T/m) spread over [start, end), ids consecutive."""
    rng = random.Random(seed)
    times = sorted(rng.randrange(start_ms, end_ms) for _ in range(count))
    rows = []
    for i, t in enumerate(times):
        price *= 1 + rng.gauss(0, 0.0002)
        qty = Decimal(str(round(rng.uniform(0.0001, max_qty), 6)))
        rows.append(
            {
                "a": first_id + i,
                "p": f"{price:.2f}",
                "q": format(qty, "f"),
                "f": 5 * (first_id + i),
                "l": 5 * (first_id + i) + 2,
                "T": t,
                "m": rng.random() < 0.5,
            }
        )
    return rows


@dataclass
class FakeBinance:
    trades: dict[str, list[dict[str, Any]]]  # native symbol -> rows sorted by id
    throttle_requests: set[int] = field(default_factory=set)  # 1-based request numbers answered 429
    retry_after: int = 1
    fail_from_page: int | None = None  # fromId pages from this number on answer 500 (an outage)
    used_weight_offset: int = 0  # added to X-MBX-USED-WEIGHT-1m (others on the same IP use weight)
    requests: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    _banned_until: float = 0.0
    _pages: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, params: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            self.requests.append(params)
            number = len(self.requests)
            now = time.monotonic()
            weight = {"X-MBX-USED-WEIGHT-1m": str(self.used_weight_offset + 2 * number)}
            if now < self._banned_until:  # ignoring Retry-After is what gets an IP banned
                return 418, {**weight, "Retry-After": "120"}, {"code": -1003, "msg": "banned"}
            if number in self.throttle_requests:
                self._banned_until = now + self.retry_after
                return (
                    429,
                    {**weight, "Retry-After": str(self.retry_after)},
                    {"code": -1003, "msg": "slow down"},
                )
            rows = self.trades.get(params.get("symbol", ""))
            if rows is None:
                return 400, weight, {"code": -1121, "msg": "Invalid symbol."}
            limit = min(int(params.get("limit", "500")), 1000)
            if "fromId" in params:
                self._pages += 1
                if self.fail_from_page is not None and self._pages >= self.fail_from_page:
                    return 500, weight, {"msg": "outage"}
                start = int(params["fromId"]) - rows[0]["a"] if rows else 0
                return 200, weight, rows[max(start, 0) : max(start, 0) + limit]
            if "startTime" in params and "endTime" in params:
                lo, hi = int(params["startTime"]), int(params["endTime"])
                if hi - lo > 3_600_000:
                    return (
                        400,
                        weight,
                        {"code": -1127, "msg": "More than 1 hours between startTime and endTime."},
                    )
                return 200, weight, [r for r in rows if lo <= r["T"] <= hi][:limit]
            return 200, weight, rows[-limit:]


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


@contextmanager
def serve_binance(fake: FakeBinance) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path != "/api/v3/aggTrades":
                send_json(self, 404, {}, {"msg": "not found"})
                return
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            status, headers, body = fake.answer(params)
            fake.statuses.append(status)
            send_json(self, status, headers, body)

        def log_message(self, *args: Any) -> None:
            pass

    server = _Server(Handler)
    server.thread.start()
    try:
        yield server.url
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@dataclass
class Recorder:
    bodies: list[Any] = field(default_factory=list)


@contextmanager
def serve_recorder(recorder: Recorder) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            recorder.bodies.append(json.loads(self.rfile.read(length) or b"null"))
            send_json(self, 200, {}, {"ok": True})

        def log_message(self, *args: Any) -> None:
            pass

    server = _Server(Handler)
    server.thread.start()
    try:
        yield server.url + "/hooks/batch"
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
