"""BaseConnector building blocks: backoff, bounded dedupe, health, ADR-008 normalize, rotation."""

from __future__ import annotations

import random
import time

import pytest

from coattail.settings import load_settings
from coattail.settings.models import ReconnectSettings
from connectors.base import Backoff, RecentIds
from connectors.binance import BinanceConnector
from connectors.coinbase import CoinbaseConnector

pytestmark = pytest.mark.unit


def test_backoff_grows_exponentially_with_jitter_and_caps() -> None:
    backoff = Backoff(
        ReconnectSettings(initial_backoff_seconds=0.5, max_backoff_seconds=8, jitter=0.25), random.Random(1)
    )
    delays = [backoff.next_delay() for _ in range(8)]
    for i, d in enumerate(delays):
        base = min(8, 0.5 * 2**i)
        assert base * 0.75 <= d <= base * 1.25
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.5 * 1.25


def test_recent_ids_is_bounded() -> None:
    recent = RecentIds(3)
    assert [recent.add(k) for k in "abca"] == [True, True, True, False]
    assert recent.add("d")  # evicts "a"
    assert recent.add("a")


def test_health_goes_false_when_stale_and_normalize_is_the_adr_interface() -> None:
    settings = load_settings()
    conn = BinanceConnector(settings.connectors["binance"], settings.reconnect, ["BTC-USDT"])
    assert not conn.health_check()  # not connected
    conn._ws = object()  # type: ignore[assignment]
    assert conn.health_check()
    conn._last_message = time.monotonic() - settings.connectors["binance"].stale_after_seconds - 1
    assert not conn.health_check()
    data = {"e": "aggTrade", "s": "BTCUSDT", "a": 1, "p": "2.5", "q": "4", "T": 1_700_000_000_000, "m": False}
    events = conn.normalize({"stream": "btcusdt@aggTrade", "data": data})
    assert [(e.symbol, e.side, str(e.quote_volume)) for e in events] == [("BTC-USDT", "buy", "10.0")]
    assert conn.normalize({"stream": "x", "data": {"e": "serverShutdown", "E": 1}}) == []
    assert conn.ws_url() == "wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade"


def test_coinbase_feed_is_configuration() -> None:
    settings = load_settings(overrides={"connectors.coinbase.feed": "advanced_trade"})
    conn = CoinbaseConnector(settings.connectors["coinbase"], settings.reconnect, ["BTC-USD"])
    assert conn.ws_url() == "wss://advanced-trade-ws.coinbase.com"
    assert conn.normalize({"type": "error", "message": "Failed to subscribe"}) == []
