"""Slow and idle HTTP clients are cut off after a bounded time (raw sockets against uvicorn)."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from api.app import create_app
from coattail.hotstore import DynamoAlertStore
from tests.api.helpers import LiveServer, api_settings, serve

pytestmark = pytest.mark.services
REQUEST_TIMEOUT = 1.5
KEEP_ALIVE = 1


@pytest.fixture
def strict(dynamodb_endpoint: str, store: DynamoAlertStore) -> Iterator[LiveServer]:
    settings = api_settings(
        dynamodb_endpoint,
        store.table,
        **{
            "api.request_timeout_seconds": REQUEST_TIMEOUT,
            "api.keep_alive_seconds": KEEP_ALIVE,
            "api.max_request_head_bytes": 8192,
        },
    )
    with serve(create_app(settings, store=store)) as server:
        yield server


def connect(server: LiveServer) -> socket.socket:
    url = urlsplit(server.url)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=30)
    sock.settimeout(30)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_slowloris_headers_are_cut_off(strict: LiveServer) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    sock = connect(strict)
    started = time.monotonic()
    sent = 0
    closed_at = None
    try:
        for byte in request:
            sock.sendall(bytes([byte]))
            sent += 1
            time.sleep(0.05)  # 20 bytes/s: the whole head would take 12 s
    except (BrokenPipeError, ConnectionResetError):
        closed_at = time.monotonic() - started
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        answer = read_until_closed(sock)
    closed_at = closed_at or (time.monotonic() - started)
    sock.close()
    assert sent < len(request), "the whole slow request was accepted"
    assert closed_at < REQUEST_TIMEOUT + 3, closed_at
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:80]


def test_a_partial_head_gets_408(strict: LiveServer) -> None:
    sock = connect(strict)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
    started = time.monotonic()
    answer = read_until_closed(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert time.monotonic() - started < REQUEST_TIMEOUT + 3


def test_a_silent_connection_is_closed(strict: LiveServer) -> None:
    sock = connect(strict)
    started = time.monotonic()
    answer = read_until_closed(sock)  # we send nothing at all
    elapsed = time.monotonic() - started
    sock.close()
    assert answer == b""  # closed without a word, like an idle keep-alive connection
    assert REQUEST_TIMEOUT - 0.5 < elapsed < REQUEST_TIMEOUT + 3, elapsed


def test_a_slow_body_is_cut_off(strict: LiveServer) -> None:
    sock = connect(strict)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n")
    started = time.monotonic()
    try:
        for _ in range(200):
            sock.sendall(b"x")
            time.sleep(0.05)
    except (BrokenPipeError, ConnectionResetError):
        pass
    with contextlib.suppress(ConnectionResetError):
        read_until_closed(sock)
    assert time.monotonic() - started < REQUEST_TIMEOUT + 3
    sock.close()


def test_idle_keep_alive_is_closed_and_a_fast_client_is_served(strict: LiveServer) -> None:
    sock = connect(strict)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first[:80]
    started = time.monotonic()
    rest = read_until_closed(sock)  # idle after a complete response: the keep-alive timeout
    assert rest == b""
    assert time.monotonic() - started < KEEP_ALIVE + 3
    sock.close()


def test_an_oversized_head_is_431(strict: LiveServer) -> None:
    sock = connect(strict)
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Big: " + b"b" * 20000 + b"\r\n\r\n"
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(head)
    try:
        answer = read_until_closed(sock)
    except ConnectionResetError:
        answer = b""
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431") or answer == b"", answer[:80]


def test_a_long_stream_is_not_cut_by_the_request_timeout(strict: LiveServer) -> None:
    sock = connect(strict)
    sock.sendall(b"GET /alerts/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    received = b""
    deadline = time.monotonic() + REQUEST_TIMEOUT * 3  # well past the request timeout
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        assert chunk, "the stream was closed"
        received += chunk
    sock.close()
    assert received.startswith(b"HTTP/1.1 200")
    assert received.count(b": ping") >= 2  # keep-alives (1 s in tests) kept flowing
