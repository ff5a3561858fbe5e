"""BaseConnector building blocks: backoff, bounded dedupe, health, ADR-008 normalize, rotation."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson
import pytest

from coattail.settings import load_settings
from coattail.settings.models import ReconnectSettings
from connectors.base import RecentIds, reconnect_backoff
from connectors.binance import BinanceConnector
from connectors.coinbase import CoinbaseConnector
from connectors.metrics import Metrics
from connectors.trade import Trade
from tests.connectors.fakes import counter

pytestmark = pytest.mark.unit


def test_reconnect_settings_become_the_retry_helpers_backoff_growing_with_jitter_and_capped() -> None:
    backoff = reconnect_backoff(
        ReconnectSettings(initial_backoff_seconds=0.5, max_backoff_seconds=8, jitter=0.25)
    )
    rng = random.Random(1)
    delays = [backoff.delay(i, rng) for i in range(8)]
    for i, d in enumerate(delays):
        base = min(8, 0.5 * 2**i)
        assert base * 0.75 <= d <= base
    assert len(set(delays)) == len(delays)  # jittered
    assert backoff.delay(0, rng) <= 0.5  # a fresh outage starts from the initial delay


def test_recent_ids_is_bounded() -> None:
    recent = RecentIds(3)
    assert [recent.add(k) for k in "abca"] == [True, True, True, False]
    assert recent.add("d")  # evicts "a"
    assert recent.add("a")


def test_health_goes_false_when_stale_and_normalize_is_the_adr_interface() -> None:
    settings = load_settings()
    conn = BinanceConnector(settings.connectors["binance"], settings.reconnect, ["BTC-USDT"])
    assert not conn.health_check()  # not connected
    [link] = conn.links
    link.ws = object()  # type: ignore[assignment]
    assert conn.health_check()
    link.last_message = time.monotonic() - settings.connectors["binance"].stale_after_seconds - 1
    assert not conn.health_check()
    data = {"e": "aggTrade", "s": "BTCUSDT", "a": 1, "p": "2.5", "q": "4", "T": 1_700_000_000_000, "m": False}
    events = conn.normalize({"stream": "btcusdt@aggTrade", "data": data})
    assert [(e.symbol, e.side, str(e.quote_volume)) for e in events] == [("BTC-USDT", "buy", "10.0")]
    assert conn.normalize({"stream": "x", "data": {"e": "serverShutdown", "E": 1}}) == []
    assert conn.ws_url(link.symbols) == "wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade"


def test_coinbase_feed_is_configuration() -> None:
    settings = load_settings(overrides={"connectors.coinbase.feed": "advanced_trade"})
    conn = CoinbaseConnector(settings.connectors["coinbase"], settings.reconnect, ["BTC-USD"])
    assert conn.ws_url(conn.symbols) == "wss://advanced-trade-ws.coinbase.com"
    assert conn.normalize({"type": "error", "message": "Failed to subscribe"}) == []


def test_any_exception_from_a_normaliser_dead_letters_the_message_and_the_loop_goes_on() -> None:
    """The live read loop: whatever ``handle`` raises for one message (here a simulated normaliser bug),
    that message becomes a dead letter with its reason, and the next message is processed."""

    class BuggyBinance(BinanceConnector):
        def handle(self, message: Any, received_at: str) -> list[Trade]:
            if type(message) is dict and message.get("boom"):
                raise ZeroDivisionError("division by zero in a normaliser")
            return super().handle(message, received_at)

    settings = load_settings()
    metrics = Metrics()
    conn = BuggyBinance(settings.connectors["binance"], settings.reconnect, ["BTC-USDT"], metrics=metrics)
    trade = {
        "e": "aggTrade",
        "s": "BTCUSDT",
        "a": 9,
        "p": "2.5",
        "q": "4",
        "T": 1_700_000_000_000,
        "m": False,
    }
    messages = [
        b'{"boom": true}',
        b'{"e": "aggTrade", "s": "BTCUSDT", "a": 1, "p": "1e999999999", "q": "1", "T": 1, "m": true}',
        b'{"e": {}, "s": "BTCUSDT"}',
        b'{"result": null, "id": 1}',
        orjson.dumps(trade),
    ]

    async def feed() -> list[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        for raw in messages:
            await conn._on_raw(raw, queue)
        return [queue.get_nowait() for _ in range(queue.qsize())]

    items = asyncio.run(feed())
    assert [type(i).__name__ for i in items] == ["DeadLetter", "DeadLetter", "DeadLetter", "Trade"]
    assert items[0].reason == "internal error: ZeroDivisionError: division by zero in a normaliser"
    assert items[1].reason.startswith("p: '1e999999999' is in scientific notation")
    assert items[2].reason == "e: unknown message type '{}'"
    assert items[3].trade_id == "agg:9"
    assert counter(metrics, "dead_lettered", "binance") == 3
    assert counter(metrics, "ignored", "binance") == 1  # the subscription reply
    assert counter(metrics, "received", "binance") == len(messages)
