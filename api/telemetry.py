"""Prometheus metrics of the alert service, served at /internal/metrics (not /metrics/{symbol}).

A registry per app (not the process-global one) so that several apps in one test process do not
collide; a pure ASGI middleware so streaming responses (SSE) are not buffered.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "coattail_api_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "coattail_api_request_seconds",
            "HTTP request latency (for /alerts/stream: the stream's lifetime)",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.subscribers = Gauge(
            "coattail_api_stream_subscribers", "Open SSE streams", registry=self.registry
        )
        self.streamed = Counter(
            "coattail_api_stream_events_total", "Alerts sent on SSE", registry=self.registry
        )
        self.polls = Histogram(
            "coattail_api_stream_poll_seconds",
            "Duration of the shared SSE store poll",
            registry=self.registry,
        )
        self.store_errors = Counter(
            "coattail_api_store_errors_total",
            "Requests answered 503 (store unavailable)",
            registry=self.registry,
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            # The route template keeps label cardinality bounded (no raw alert ids or symbols).
            name = getattr(route, "path", None) or (
                "/static" if scope["path"].startswith("/static") else "other"
            )
            method = scope["method"]
            self.telemetry.requests.labels(method, name, str(status)).inc()
            self.telemetry.latency.labels(method, name).observe(time.perf_counter() - start)
            if status == 503:
                self.telemetry.store_errors.inc()
