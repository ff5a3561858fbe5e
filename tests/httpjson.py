"""One JSON response from a test's fake HTTP server (shared by the fake exchanges and fake APIs)."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any

import orjson


def send_json(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: Any) -> None:
    data = orjson.dumps(body)
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)
