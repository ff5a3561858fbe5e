"""The exchanges' REST rules against a real local HTTP server (tests/batch/fakes.py FakeBinance):
request weights per minute, 429 ``Retry-After`` honoured by both transports, 418 stops; Coinbase's
request rate."""

from __future__ import annotations

import asyncio
import time

import pytest

from connectors.binance import AGG_TRADES, WEIGHTS, BinanceRest
from connectors.coinbase import CoinbaseRules
from connectors.rest import BannedError
from tests.batch.fakes import FakeBinance, make_trades, serve_binance

pytestmark = pytest.mark.unit
ROWS = make_trades(1_767_571_200_000, 1_767_574_800_000, 50)
PARAMS = {"symbol": "BTCUSDT", "limit": 10}


def test_binance_waits_for_the_next_minute_when_the_servers_weight_count_nears_the_budget() -> None:
    fake = FakeBinance({"BTCUSDT": ROWS}, used_weight_offset=2_995)  # others used most of the minute
    slept: list[float] = []
    with serve_binance(fake) as url:
        client = BinanceRest(url, weight_budget=3_000, sleep=slept.append, clock=lambda: 60_000 + 30.0)
        assert len(client.rows(AGG_TRADES, PARAMS)) == 10
        assert client.rules.used_weight == 2_997  # type: ignore[attr-defined]  # the header wins
        assert slept == []
        client.rows(AGG_TRADES, PARAMS)  # 2997 + 4 > 3000: wait for the weights to reset
        client.close()
    assert slept == [pytest.approx(30.05)]
    assert len(fake.requests) == 2
    assert WEIGHTS[AGG_TRADES] == 4


def test_binance_honours_retry_after_on_429_sync_and_async() -> None:
    fake = FakeBinance({"BTCUSDT": ROWS}, throttle_requests={1}, retry_after=1)
    with serve_binance(fake) as url:
        client = BinanceRest(url)
        started = time.monotonic()
        assert len(client.rows(AGG_TRADES, PARAMS)) == 10
        assert time.monotonic() - started >= 1.0
        assert client.throttled == 1
        client.close()

        fake.throttle_requests = {len(fake.requests) + 1}

        async def live() -> int:
            rest = BinanceRest(url)
            try:
                started = time.monotonic()
                rows = await rest.arows(AGG_TRADES, PARAMS)
                assert time.monotonic() - started >= 1.0
                assert rest.throttled == 1
                return len(rows)
            finally:
                await rest.aclose()

        assert asyncio.run(live()) == 10
    assert fake.statuses == [429, 200, 429, 200]  # never a 418


def test_binance_418_stops_with_one_line_and_nothing_is_sent_during_the_ban() -> None:
    fake = FakeBinance({"BTCUSDT": ROWS}, throttle_requests={1}, retry_after=5)
    with serve_binance(fake) as url:
        client = BinanceRest(url, sleep=lambda s: None)  # ignores Retry-After: the server bans the IP
        with pytest.raises(BannedError) as err:
            client.rows(AGG_TRADES, PARAMS)
        assert str(err.value) == "binance banned this IP (HTTP 418) for 120 s; wait before retrying"
        assert err.value.retry_after == 120
        sent = len(fake.requests)
        with pytest.raises(BannedError):
            client.rows(AGG_TRADES, PARAMS)
        client.close()
    assert fake.statuses == [429, 418]
    assert len(fake.requests) == sent


def test_coinbase_public_rate_is_a_token_bucket() -> None:
    now = [100.0]
    rules = CoinbaseRules(rate=10, burst=3, clock=lambda: now[0])
    waits = []
    for _ in range(4):
        waits.append(rules.wait_before("/products/BTC-USD/trades", 1))
        rules.sent("/products/BTC-USD/trades", 1)
    assert waits[:3] == [0.0, 0.0, 0.0]  # the burst
    assert waits[3] == pytest.approx(0.1)  # then 10 per second
    now[0] += 1.0
    assert rules.wait_before("/products/BTC-USD/trades", 1) == 0.0
