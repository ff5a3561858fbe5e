"""WebhookReceiver: a real HTTP server (http.server in a thread) that records what webhooks deliver.

Importable on its own (the lead's trade → webhook latency benchmark): every request is recorded with
its alert id (the ``X-Coattail-Alert-Id`` header, else the JSON body's ``alert_id``), the wall-clock
time it arrived (``time.time()``, comparable with a trade's timestamp), and what the server did. A
``plan`` decides each answer, so a test can make the target fail now and then:

- ``Answer.ok()`` 200; ``Answer.status(500)``; ``Answer.status(429, retry_after="1")``;
- ``Answer.slow(seconds)``: 200, but only after ``seconds`` (past the client's timeout);
- ``Answer.reset()``: the connection is reset (TCP RST) without any answer.

An alert counts as *accepted* when the server answered it 200 (a slow 200 too: the server took it,
even if the client had given up) — the count a receiver sees.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxSECRETTOKEN"


@dataclass(frozen=True)
class Answer:
    kind: str  # ok | status | slow | reset
    code: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    body: str = "ok"

    @staticmethod
    def ok() -> Answer:
        return Answer("ok")

    @staticmethod
    def status(code: int, *, retry_after: str | None = None, body: str = "") -> Answer:
        return Answer("status", code, retry_after, body=body or f"status {code}")

    @staticmethod
    def slow(seconds: float) -> Answer:
        return Answer("slow", delay=seconds)

    @staticmethod
    def reset() -> Answer:
        return Answer("reset")

    @property
    def accepted(self) -> bool:
        return self.kind in ("ok", "slow")


@dataclass(frozen=True)
class Request:
    alert_id: str
    received_at: float  # time.time() when the whole request had arrived
    answer: Answer
    path: str
    body: dict[str, Any]


Plan = Callable[[int, str], Answer]  # (request number from 0, alert id) -> answer


class WebhookReceiver:
    """``with WebhookReceiver(plan) as hook: ... hook.url ...``; ``hook.requests`` in arrival order."""

    def __init__(self, plan: Plan | None = None, path: str = SECRET_PATH) -> None:
        self.plan: Plan = plan or (lambda _n, _id: Answer.ok())
        self.path = path
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    # -- what arrived ------------------------------------------------------------------------------
    def accepted(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.answer.accepted]

    def accepted_ids(self) -> list[str]:
        return [r.alert_id for r in self.accepted()]

    def first_accepted(self) -> dict[str, float]:
        """alert_id -> when the server first accepted it (for latency figures)."""
        out: dict[str, float] = {}
        for r in self.accepted():
            out.setdefault(r.alert_id, r.received_at)
        return out

    def wait_for(self, alert_ids: Iterable[str], timeout: float) -> bool:
        """True once every id was accepted at least once, False after ``timeout`` seconds."""
        wanted = set(alert_ids)
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                if wanted <= {r.alert_id for r in self.requests if r.answer.accepted}:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)

    # -- the handler -------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real webhook endpoints

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read ``requests``."""

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.loads(raw or b"{}")
                alert_id = self.headers.get("X-Coattail-Alert-Id") or str(body.get("alert_id", ""))
                with receiver._lock:
                    # number and record under one lock: the plan sees requests in arrival order
                    answer = receiver.plan(len(receiver.requests), alert_id)
                    receiver.requests.append(Request(alert_id, time.time(), answer, self.path, body))
                    receiver._arrived.notify_all()
                with contextlib.suppress(OSError):  # the client gave up (a slow answer past its timeout)
                    self._reply(answer)

            def _reply(self, answer: Answer) -> None:
                if answer.kind == "reset":
                    # SO_LINGER 0: close() sends RST, the client sees a reset, not an answer
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if answer.kind == "slow":
                    time.sleep(answer.delay)
                payload = answer.body.encode()
                self.send_response(answer.code)
                if answer.retry_after is not None:
                    self.send_header("Retry-After", answer.retry_after)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
