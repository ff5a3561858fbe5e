"""Helpers for the alert-service tests: a real uvicorn on a free loopback port, seeded alerts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from api.serving import uvicorn_config
from coattail.contracts import Alert
from coattail.hotstore import AlertWriter, DynamoAlertStore, make_client
from coattail.settings import Settings, load_settings

TYPES = {"volume_spike": "MOD-001", "whale_trade": "MOD-002", "spread_divergence": "MOD-003"}
SYMBOLS = ["BTC-USDT", "ETH-USDT", "BTC-USD"]


def api_settings(endpoint: str, table: str, **extra: Any) -> Settings:
    overrides = {
        "hot_store.endpoint_url": endpoint,
        "hot_store.table": table,
        "api.stream_poll_seconds": 0.2,
        "api.stream_ping_seconds": 1,
        "api.shutdown_grace_seconds": 2,
        **extra,
    }
    return load_settings(env={}, overrides=overrides)


def local_store(endpoint: str, table: str) -> DynamoAlertStore:
    return DynamoAlertStore(make_client(endpoint, "us-west-2", timeout=10, retries=3), table)


def make_alert(
    n: int,
    *,
    alert_type: str = "whale_trade",
    symbol: str = "BTC-USDT",
    age: timedelta = timedelta(minutes=1),
    ttl: timedelta = timedelta(hours=24),
    now: datetime | None = None,
    severity: str = "medium",
) -> Alert:
    """A valid alert of ``alert_type`` detected ``age`` ago; details shaped like the real module's."""
    detected = (now or datetime.now(UTC)) - age
    module = TYPES.get(alert_type, "MOD-004")
    details: dict[str, Any] = {"seq": n}
    if module == "MOD-001":
        details |= {
            "z_score": 3.1 + n % 5,
            "window_volume": 1_000_000 + 10_000 * n,
            "window_start": detected.isoformat(),
        }
    elif module == "MOD-002":
        details |= {"quote_volume": 150_000 + n, "price": "67432.50", "quantity": "3.71", "side": "buy"}
    elif module == "MOD-003":
        details |= {"spread_pct": 0.5 + (n % 7) / 10, "exchange_a_vwap": 67450.0, "exchange_b_vwap": 66965.0}
    return Alert.create(
        module_id=module,
        alert_type=alert_type,
        symbol=symbol,
        exchange="binance",
        severity=severity,  # type: ignore[arg-type]
        detected_at=detected,
        message=f"{alert_type} #{n} on {symbol}",
        details=details,
        evidence=(symbol, n, detected),
        ttl=ttl,
    )


def seed(store: AlertWriter, alerts: list[Alert]) -> None:
    store.write(alerts)


def mixed_alerts(count: int, now: datetime) -> list[Alert]:
    """``count`` alerts over several types and symbols, spread over the last 23 hours, with ties."""
    out = []
    types = list(TYPES)
    for n in range(count):
        # n // 2 makes pairs with the same detected_at: ties must not break paging.
        age = timedelta(seconds=30 + (n // 2) * (23 * 3600 // max(count, 1)))
        out.append(make_alert(n, alert_type=types[n % 3], symbol=SYMBOLS[(n // 3) % 3], age=age, now=now))
    return out


def newest_first(alerts: list[Alert]) -> list[str]:
    return [a.alert_id for a in sorted(alerts, key=lambda a: a.detected_at, reverse=True)]


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class LiveServer:
    url: str
    app: FastAPI

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@contextmanager
def serve(app: FastAPI) -> Iterator[LiveServer]:
    """Run ``app`` under uvicorn in a background thread on a free loopback port.

    The uvicorn configuration is the one `coattail api` uses (slow-client limits included).
    """
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, app.state.settings, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
