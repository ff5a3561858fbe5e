"""uvicorn for the alert API, with time limits for slow clients.

uvicorn's own ``timeout_keep_alive`` only runs between requests and is cancelled by the first byte
of the next one, and nothing limits how long a request may take to arrive: a client that sends its
headers one byte at a time (slow-loris) would hold a connection, and its buffers, for ever.
:class:`GuardedHttpToolsProtocol` adds that limit: from the connection (or the first byte of a
following request) the whole request, head and body, must arrive within ``request_timeout``;
otherwise the connection is closed, with a ``408`` first when part of a request head had arrived.
A request head larger than ``max_head_bytes`` gets ``431``. Both come from the ``api`` settings.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from coattail.settings import Settings


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a per-request read deadline and a bound on the request head."""

    request_timeout: float = 10.0
    max_head_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # raw bytes received while the head is incomplete
        self._head_size = 0  # parsed size of the request line and headers
        self._reading_head = True

    # -- the deadline -------------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        started = self._reading_head and self._head_bytes > 0
        if started and (self.cycle is None or self.cycle.response_complete):
            self._refuse(408, b"request not received in time")
        else:
            # Nothing sent (a browser's spare connection: closed silently, as an idle keep-alive
            # is), or a body that never finished (its response cannot complete cleanly).
            self.transport.close()

    def _refuse(self, status: int, message: bytes) -> None:
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(message), message)
        )
        self.transport.close()

    # -- protocol hooks -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: whatever else the client sends is dropped
        if self._reading_head:
            self._head_bytes += len(data)  # bounds what a head that never ends can buffer
        super().data_received(data)
        if self._reading_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._refuse(431, b"request head too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0
        self._arm()  # a keep-alive connection's next request: its own deadline from its first byte

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._head_size > self.max_head_bytes:  # a large head that arrived in one read
            self._refuse(431, b"request head too large")
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.transport.is_closing():
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.transport.is_closing():
            super().on_message_complete()
        self._disarm()
        self._reading_head = True
        self._head_bytes = 0


def protocol_for(settings: Settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with this deployment's limits (uvicorn instantiates it per connection)."""
    return type(
        "ApiHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "request_timeout": settings.api.request_timeout_seconds,
            "max_head_bytes": settings.api.max_request_head_bytes,
        },
    )


def uvicorn_config(
    app: FastAPI,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "info",
    **extra: Any,
) -> uvicorn.Config:
    """The uvicorn configuration `coattail api` runs with (the tests use the same)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=protocol_for(settings),
        timeout_keep_alive=settings.api.keep_alive_seconds,  # idle keep-alive connections
        timeout_graceful_shutdown=int(settings.api.shutdown_grace_seconds),
        proxy_headers=True,
        **extra,
    )
