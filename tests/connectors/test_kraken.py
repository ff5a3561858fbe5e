"""Kraken: the normaliser on recorded-format messages (v2, v1, REST rows), the `coattail normalize`
CLI, the REST rules against a real HTTP server, the application ping against a real WebSocket server,
a fake-exchange session with two drops into the real Kafka broker, and the simulator round trip."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve

from coattail.contracts import dumps, loads_trade, trade_event_id
from coattail.settings import load_settings
from coattail.settings.models import ReconnectSettings
from connectors.base import Item
from connectors.kraken import (
    TRADES,
    KrakenConnector,
    KrakenNormalizer,
    KrakenRest,
    KrakenRules,
    KrakenSettings,
    exact_json,
    native,
    number_text,
    render,
    rest_pair,
)
from connectors.manager import ConnectorManager
from connectors.metrics import Metrics
from connectors.registry import exchange, normalizer
from connectors.rest import RestError
from connectors.simulator import simulate
from connectors.spec import SimCounters, SimTrade
from connectors.trade import NormalizeError, Trade
from tests.connectors.fakes import FakeExchange, Segment, consume_all, counter, happened

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
RECEIVED = "2023-11-14T22:13:25.000000Z"
T0_US = 1_763_900_000_000_000


def _lines() -> list[str]:
    return (FIXTURES / "kraken.jsonl").read_text().splitlines()


def _message(index: int) -> Any:
    """Line ``index`` of the fixture: a bare message, or the ``raw`` of a recorded envelope line."""
    line = orjson.loads(_lines()[index])
    return line["raw"] if type(line) is dict and "raw" in line and "exchange" in line else line


# -- normaliser ----------------------------------------------------------------------------------------
@pytest.mark.unit
def test_v2_update_taker_side_exact_decimals_symbol_and_id() -> None:
    [trade] = KrakenNormalizer().message(_message(0), RECEIVED)
    assert (trade.exchange, trade.symbol, trade.side) == ("kraken", "BTC-USD", "buy")  # taker bought
    assert trade.price == Decimal("37123.4")
    assert trade.quantity == Decimal("0.00513")
    assert trade.quote_volume == Decimal("37123.4") * Decimal("0.00513")
    assert trade.timestamp == "2023-11-14T22:13:20.123456Z"
    assert trade.event_id == trade_event_id("kraken", "BTC-USD", 61044952)
    assert trade.to_json() == dumps(trade.to_event())


@pytest.mark.unit
def test_v2_snapshot_batches_and_json_numbers_keep_their_decimal_text() -> None:
    sell, buy = KrakenNormalizer().message(_message(1), RECEIVED)
    assert (sell.symbol, sell.side, buy.side) == ("ETH-USD", "sell", "buy")
    assert format(sell.quantity, "f") == "1136.19677815"  # 12 significant digits, exact
    assert format(buy.quantity, "f") == "0.00001"  # the parser's float is 1e-05
    assert orjson.loads(buy.to_json())["quantity"] == "0.00001"
    assert buy.event_id == trade_event_id("kraken", "ETH-USD", 4665847)


@pytest.mark.unit
@pytest.mark.parametrize("index", [2, 3, 4, 5, 8])
def test_control_messages_are_not_trades(index: int) -> None:
    assert KrakenNormalizer().message(_message(index), RECEIVED) == []


@pytest.mark.unit
def test_the_same_trade_over_ws_and_rest_is_the_same_event() -> None:
    """REST rows carry price strings with trailing zeros and a fractional epoch time (as a JSON number);
    the event must be the same, byte for byte."""
    body = exact_json(
        b'{"error":[],"result":{"XXBTZUSD":[["37123.40000","0.00513000",1700000000.123456,"b","m","",'
        b'61044952]],"last":"1700000000123456000"}}'
    )
    rows = body["result"]["XXBTZUSD"]
    assert rows[0][2] == "1700000000.123456"  # the time keeps its source text
    from_rest = KrakenNormalizer().rest_trade(rows[0], "BTC-USD", RECEIVED)
    [from_ws] = KrakenNormalizer().message(_message(0), RECEIVED)
    assert from_rest.event_id == from_ws.event_id
    assert from_rest.to_json() == from_ws.to_json()


@pytest.mark.unit
def test_v1_arrays_xbt_and_xdg_aliases_and_derived_ids() -> None:
    norm = KrakenNormalizer()
    first, second = norm.message(_message(6), RECEIVED)
    assert (first.symbol, first.side, second.side) == ("BTC-USD", "sell", "buy")  # v1 side is the taker's
    assert first.price == Decimal("37123.4")
    assert format(first.price, "f") == "37123.4"
    assert first.timestamp == second.timestamp == "2023-11-14T22:13:19.321597Z"
    # No trade id in the old form: time text + index, so the two trades of one time stay distinct
    # and a replay of the same line gives the same ids.
    assert (first.trade_id, second.trade_id) == ("v1-1699999999.321597-0", "v1-1699999999.321597-1")
    assert [t.event_id for t in KrakenNormalizer().message(_message(6), RECEIVED)] == [
        first.event_id,
        second.event_id,
    ]
    [doge] = norm.message(_message(7), RECEIVED)
    assert (doge.symbol, doge.trade_id, doge.price) == ("DOGE-USD", "4665900", Decimal("0.0751234"))


BAD = [
    (9, "price: '-37123.4' is not a positive finite number"),
    (10, "side: expected buy or sell, got 'b'"),
]


@pytest.mark.unit
@pytest.mark.parametrize(("index", "reason"), BAD)
def test_malformed_fixture_lines_are_refused_with_a_reason(index: int, reason: str) -> None:
    with pytest.raises(NormalizeError) as err:
        KrakenNormalizer().message(_message(index), RECEIVED)
    assert str(err.value) == reason


def _v2(**row: Any) -> dict[str, Any]:
    base = {"symbol": "BTC/USD", "side": "buy", "price": 1.5, "qty": 2.0, "ord_type": "limit",
            "trade_id": 7, "timestamp": "2023-11-14T22:13:20.123456Z"}  # fmt: skip
    return {"channel": "trade", "type": "update", "data": [base | row]}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_v2(price=0.1234567890123456), "16 significant digits; a JSON number is exact to 15"),
        (_v2(trade_id="7"), "trade_id: expected a non-negative integer"),
        (_v2(symbol="BTCUSD"), "symbol: 'BTCUSD' is not BASE/QUOTE"),
        (_v2(qty=0), "qty: '0' is not a positive finite number"),
        (_v2(timestamp="2023-11-14 22:13:20"), "timestamp: '2023-11-14 22:13:20' has no UTC offset"),
        (_v2(timestamp="2023-11-15T22:13:20.000000Z"), "after received_at"),
        ({"channel": "trade", "type": "update", "data": {}}, "data: expected a list"),
        ({"channel": "candles"}, "unknown message 'candles'"),
        ([1, [], "candles", "XBT/USD"], "unknown v1 message 'candles'"),
        ([0, [["1.0", "2.0", "soon", "b", "l", ""]], "trade", "XBT/USD"], "time: 'soon' is not epoch"),
        ("hello", "expected a JSON object or array, got str"),
    ],
)
def test_junk_is_refused_with_a_one_line_reason(msg: Any, reason: str) -> None:
    with pytest.raises(NormalizeError, match=reason.replace("(", r"\(")):
        KrakenNormalizer().message(msg, RECEIVED)


@pytest.mark.unit
@given(st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("999999.99999999"), places=8))
def test_decimals_up_to_15_digits_survive_json_numbers(value: Decimal) -> None:
    text = format(value, "f")
    expected = text.rstrip("0").rstrip(".") if "." in text else text
    assert number_text(orjson.loads(text), "price") == expected
    assert number_text(json.loads(text), "price") == expected


@pytest.mark.unit
def test_symbol_spellings() -> None:
    assert (native("BTC-USD"), rest_pair("BTC-USD"), rest_pair("DOGE-USD")) == ("BTC/USD", "XBTUSD", "XDGUSD")
    assert exchange("kraken").native("ETH-USD") == "ETH/USD"


# -- the CLI -------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_cli_normalizes_the_fixture_and_dead_letters_the_bad_lines(tmp_path: Path) -> None:
    dlq = tmp_path / "dead.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "coattail", "normalize", "--exchange", "kraken", "--dead-letter", str(dlq)],
        input=(FIXTURES / "kraken.jsonl").read_bytes(), capture_output=True, cwd=REPO, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [loads_trade(line) for line in result.stdout.splitlines()]
    assert [(e.symbol, e.side) for e in events] == [
        ("BTC-USD", "buy"), ("ETH-USD", "sell"), ("ETH-USD", "buy"), ("BTC-USD", "sell"), ("BTC-USD", "buy"),
        ("DOGE-USD", "buy"),
    ]  # fmt: skip
    assert [format(e.quantity, "f") for e in events][:3] == ["0.00513", "1136.19677815", "0.00001"]
    assert b"12 lines: 6 trades from 4 lines, 5 ignored" in result.stderr
    assert b"3 dead-lettered" in result.stderr
    letters = [orjson.loads(line) for line in dlq.read_bytes().splitlines()]
    assert [letter["reason"] for letter in letters[:2]] == [reason for _, reason in BAD]
    assert letters[2]["reason"].startswith("not JSON")
    assert letters[2]["raw"] == _lines()[11]


# -- REST rules ----------------------------------------------------------------------------------------
def _rest_row(t: dict[str, Any]) -> list[Any]:
    price = f"{Decimal(t['price']):.5f}"  # REST pads to the pair's precision
    return [price, f"{Decimal(t['qty']):.8f}", float(t["_time"]), t["side"][0], "m", "", t["trade_id"]]


def kraken_rest(fake: FakeExchange, path: str, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
    """``/0/public/Trades`` over the fake's history: oldest first from ``since`` (ns), else the newest."""
    if path != TRADES:
        return 404, {}, {"error": ["EGeneral:Unknown method"]}
    symbol = {"XBTUSD": "BTC/USD", "ETHUSD": "ETH/USD"}.get(q["pair"][0])
    if symbol is None:
        return 200, {}, {"error": ["EQuery:Unknown asset pair"]}
    rows = [t for t in happened(fake) if t["symbol"] == symbol]
    count = min(int(q.get("count", ["1000"])[0]), 1000)
    rows = [t for t in rows if t["_ns"] > int(q["since"][0])][:count] if "since" in q else rows[-count:]
    last = str(rows[-1]["_ns"]) if rows else q.get("since", ["0"])[0]
    key = "XXBTZUSD" if symbol == "BTC/USD" else "XETHZUSD"
    return 200, {}, {"error": [], "result": {key: [_rest_row(t) for t in rows], "last": last}}


def _history(n: int, quiet_eth_until: int = 0) -> list[dict[str, Any]]:
    """BTC/USD and ETH/USD trades 7 ms apart; ETH is silent in [20, quiet_eth_until)."""
    rng = random.Random(3)
    ids = {"BTC/USD": 61_000_000, "ETH/USD": 4_600_000}
    out = []
    for i in range(n):
        symbol = "ETH/USD" if i < 20 or (i >= quiet_eth_until and i % 3 == 0) else "BTC/USD"
        ids[symbol] += 1
        us = T0_US + i * 7_000
        stamp = datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)
        out.append(
            {"_index": i, "_ns": us * 1000, "_time": f"{us // 1_000_000}.{us % 1_000_000:06d}",
             "symbol": symbol, "side": rng.choice(["buy", "sell"]),
             "price": f"{37000 + rng.random() * 100:.1f}",
             "qty": f"{rng.random() + 0.0001:.8f}", "ord_type": "limit", "trade_id": ids[symbol],
             "timestamp": stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")}
        )  # fmt: skip
    return out


def _ws(t: dict[str, Any]) -> str:
    row = {k: v for k, v in t.items() if not k.startswith("_")}
    row["price"], row["qty"] = float(row["price"]), float(row["qty"])  # v2 sends JSON numbers
    return orjson.dumps({"channel": "trade", "type": "update", "data": [row]}).decode()


class _Throttling:
    """The fake's REST answers, with Kraken's over-limit replies on chosen request numbers."""

    def __init__(self, eapi: set[int], http429: set[int]) -> None:
        self.eapi, self.http429, self.calls = eapi, http429, 0

    def __call__(
        self, fake: FakeExchange, path: str, q: dict[str, list[str]]
    ) -> tuple[int, dict[str, str], Any]:
        self.calls += 1
        if self.calls in self.eapi:
            return 200, {}, {"error": ["EAPI:Rate limit exceeded"]}
        if self.calls in self.http429:
            return 429, {"Retry-After": "2"}, {"error": ["EGeneral:Too many requests"]}
        return kraken_rest(fake, path, q)


@pytest.mark.unit
def test_public_rate_is_a_decaying_counter() -> None:
    now = [50.0]
    rules = KrakenRules(rate=1, burst=2, clock=lambda: now[0])
    waits = []
    for _ in range(3):
        waits.append(rules.wait_before(TRADES, 1))
        rules.sent(TRADES, 1)
    assert waits == [0.0, 0.0, pytest.approx(1.0)]  # the burst, then one per second
    now[0] += 0.5
    assert rules.wait_before(TRADES, 1) == pytest.approx(0.5)


@pytest.mark.unit
def test_rate_limit_replies_are_waited_out_and_the_counter_slows_down() -> None:
    history = _history(30)
    answers = _Throttling(eapi={1}, http429={2})
    fake = FakeExchange(history, _ws, answers, [])
    fake.released = len(history)
    now = [1000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # a virtual clock: the waits are recorded, not slept
        slept.append(seconds)
        now[0] += seconds

    async def scenario() -> tuple[list[Any], str | None]:
        await fake.start()
        rest = KrakenRest(fake.rest_url, rate=1, burst=1, throttle_seconds=5, clock=lambda: now[0],
                          async_sleep=sleep)  # fmt: skip
        try:
            page = await rest.trades("XBTUSD", {"count": 5})
            assert rest.throttled == 2
            assert rest.requests == 3
            with pytest.raises(
                RestError, match=r"^kraken /0/public/Trades answered EQuery:Unknown asset pair$"
            ):
                await rest.trades("NOPEUSD", {})
            return page
        finally:
            await rest.aclose()
            await fake.stop()

    rows, last = asyncio.run(scenario())
    # EAPI: the configured back-off; 429: its Retry-After; then the emptied counter spaces requests 1 s.
    assert slept[:2] == [5, 2]
    assert slept[2:] == [pytest.approx(1.0)] * (len(slept) - 2)
    btc = [t for t in history if t["symbol"] == "BTC/USD"]
    assert [row[6] for row in rows] == [t["trade_id"] for t in btc[-5:]]  # the newest, oldest first
    assert last == str(btc[-1]["_ns"])
    assert rows[0][0] == f"{Decimal(btc[-5]['price']):.5f}"
    assert Decimal(rows[0][2]) == Decimal(btc[-5]["_time"])  # the time column's exact text


# -- application ping against a real WebSocket server ----------------------------------------------------
@pytest.mark.unit
def test_connector_subscribes_and_pings_and_pongs_are_control_messages() -> None:
    history = _history(25)
    received: list[dict[str, Any]] = []

    async def venue(ws: ServerConnection) -> None:
        received.append(json.loads(await ws.recv()))  # the subscribe
        await ws.send('{"method":"subscribe","result":{"channel":"trade","symbol":"BTC/USD"},"success":true}')
        ping = json.loads(await asyncio.wait_for(ws.recv(), 5))
        received.append(ping)
        await ws.send(orjson.dumps({"method": "pong", "req_id": ping["req_id"]}).decode())
        await ws.send(_ws(history[24]))
        await ws.wait_closed()

    async def scenario() -> tuple[Trade | Item, float]:
        rest_fake = FakeExchange(history, _ws, kraken_rest, [])
        rest_fake.released = len(history)
        await rest_fake.start()
        metrics = Metrics()
        async with serve(venue, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            settings = KrakenSettings(ws_url=f"ws://127.0.0.1:{port}", rest_url=rest_fake.rest_url,
                                      ping_interval_seconds=0.05)  # fmt: skip
            connector = KrakenConnector(settings, ReconnectSettings(), ["BTC-USD"], metrics=metrics)
            queue: asyncio.Queue[Item] = asyncio.Queue()
            task = asyncio.create_task(connector.stream(queue))
            item = await asyncio.wait_for(queue.get(), 10)
            ignored = counter(metrics, "ignored", "kraken")
            connector.shutdown()
            await asyncio.wait_for(task, 10)
        await rest_fake.stop()
        return item, ignored

    item, ignored = asyncio.run(scenario())
    sub, ping = received
    assert sub == {
        "method": "subscribe",
        "params": {"channel": "trade", "symbol": ["BTC/USD"], "snapshot": False},
    }
    assert ping == {"method": "ping", "req_id": 1}
    assert ignored == 2  # the subscribe ack and the pong
    assert isinstance(item, Trade)
    assert item.trade_id == str(history[24]["trade_id"])


# -- fake exchange session into Kafka --------------------------------------------------------------------
def _settings(fake: FakeExchange, bootstrap: str, topic: str) -> Any:
    return load_settings(
        overrides={
            "connectors.kraken.ws_url": fake.ws_url,
            "connectors.kraken.rest_url": fake.rest_url,
            "connectors.kraken.stale_after_seconds": 20,
            "connectors.kraken.rest_burst": 15,
            "connectors.kraken.rest_page_size": 100,  # several pages per gap
            "connectors.kraken.ping_interval_seconds": 1,
            "stream.backend": "kafka",
            "stream.kafka.bootstrap_servers": bootstrap,
            "stream.kafka.topic": topic,
            "stream.kafka.dlq_topic": f"{topic}-dlq",
            "producer.status_port": 0,
            "reconnect.initial_backoff_seconds": 0.05,
            "reconnect.max_backoff_seconds": 0.5,
        }
    )


@pytest.mark.services
def test_two_drops_lose_and_double_nothing(kafka_bootstrap: str, unique_name: str) -> None:
    # ETH trades before we connect (0..19) are history; ETH then stays silent until after the first
    # drop, so only the newest-id seed taken at connect time lets the gap fill recover its trades.
    history = _history(600, quiet_eth_until=160)
    ack = orjson.dumps(
        {"method": "subscribe", "result": {"channel": "trade", "symbol": "BTC/USD"}, "success": True}
    ).decode()
    status = '{"channel":"status","type":"update","data":[{"system":"online","api_version":"v2"}]}'
    heartbeat = '{"channel":"heartbeat"}'
    segments = [
        Segment(release=20, send_from=20, send_to=150, extra_before=[status, ack, heartbeat], end="abort"),
        # 150..299 happen while disconnected; this connection re-sends a little overlap, then drops again
        Segment(release=300, send_from=290, send_to=420, extra_before=[ack], end="close"),
        # 420..439 happen during the second drop
        Segment(
            release=450, send_from=440, send_to=600, extra_before=["{not json", ack, heartbeat], end="hold"
        ),
    ]
    answers = _Throttling(eapi={4}, http429=set())  # one over-limit reply in the first gap fill
    fake = FakeExchange(history, _ws, answers, segments, expect_subscribe=True)

    async def scenario() -> Metrics:
        await fake.start()
        try:
            settings = _settings(fake, kafka_bootstrap, unique_name)
            metrics = Metrics()
            manager = ConnectorManager(settings, {"kraken": ["BTC-USD", "ETH-USD"]}, metrics=metrics)
            task = asyncio.create_task(manager.run())
            await asyncio.wait_for(fake.done.wait(), 180)
            deadline = asyncio.get_running_loop().time() + 120
            while (
                counter(metrics, "normalised", "kraken") < len(history) - 20
                and asyncio.get_running_loop().time() < deadline
            ):
                await asyncio.sleep(0.05)  # the connector task is the event source; poll with a deadline
            manager.stop()
            assert await asyncio.wait_for(task, 120) == 0
            return metrics
        finally:
            await fake.stop()

    metrics = asyncio.run(scenario())
    live = history[20:]
    by_id = {trade_event_id("kraken", t["symbol"].replace("/", "-"), t["trade_id"]): t for t in live}
    records = consume_all(kafka_bootstrap, unique_name, partitions=3)
    events = [loads_trade(r.value()) for r in records]
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids)), "a trade was written twice"
    assert set(ids) == set(by_id), (
        f"missing {len(set(by_id) - set(ids))}, unexpected {len(set(ids) - set(by_id))}"
    )
    for record, event in zip(records, events, strict=True):
        planted = by_id[event.event_id]
        assert record.key().decode() == event.symbol
        assert event.side == planted["side"]  # Kraken reports the taker's side as it is
        assert event.price == Decimal(planted["price"])
        assert event.quantity == Decimal(planted["qty"])
        assert event.quote_volume == Decimal(planted["price"]) * Decimal(planted["qty"])
        assert (
            event.timestamp.isoformat(timespec="microseconds").replace("+00:00", "Z") == planted["timestamp"]
        )
    assert fake.connections >= 3
    assert fake.subscriptions[0]["params"] == {
        "channel": "trade",
        "symbol": ["BTC/USD", "ETH/USD"],
        "snapshot": False,
    }
    assert any("since=" in c for c in fake.rest_calls)
    assert counter(metrics, "gap_filled", "kraken") >= 150 + 20
    assert counter(metrics, "reconnects", "kraken") >= 2
    dead = consume_all(kafka_bootstrap, f"{unique_name}-dlq", partitions=3)
    assert [orjson.loads(d.value())["raw"] for d in dead] == ["{not json"]


# -- simulator -------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_rendered_trades_normalise_back_to_what_was_planted() -> None:
    rng = random.Random(8)
    counters = SimCounters(next_id=1, next_seq=1)
    planted = [
        SimTrade("BTC-USD", T0_US + 1, Decimal("60000.12"), Decimal("0.00001"), "buy"),
        SimTrade("DOGE-USD", T0_US + 2, Decimal("0.1523"), Decimal("9876543.21001"), "sell"),
        SimTrade("ETH-USD", T0_US + 3, Decimal("3000.5"), Decimal("12.5"), "sell"),
    ]
    received = "2025-11-23T12:13:21.000000Z"
    for i, sim in enumerate(planted):
        out = render(sim, 100 + i, counters, rng)
        wire = orjson.loads(orjson.dumps(out.raw))  # through the JSON text, as the venue sends it
        [trade] = normalizer("kraken").message(wire, received)
        assert (trade.symbol, trade.side, trade.price, trade.quantity) == (
            sim.symbol,
            sim.taker,
            sim.price,
            sim.qty,
        )
        assert trade.trade_id == out.event_key == str(100 + i)
        assert (format(trade.price, "f"), format(trade.quantity, "f")) == (out.price_text, out.qty_text)
        assert wire["data"][0]["symbol"] == native(sim.symbol)


@pytest.mark.unit
def test_a_simulated_kraken_session_normalises_to_the_planted_truth() -> None:
    start = datetime(2026, 1, 5, 12, 0, 17, tzinfo=UTC)
    lines, truth = simulate(
        seed=21, minutes=30, rate=6, start=start, instruments={"kraken": ["BTC-USD", "ETH-USD", "DOGE-USD"]},
        equivalences={},
    )  # fmt: skip
    norm = normalizer("kraken")
    trades: list[Trade] = []
    heartbeats = 0
    for line in lines:
        out = norm.message(line["raw"], str(line["received_at"]))
        heartbeats += not out
        trades += out
    assert heartbeats
    assert len(trades) + heartbeats == len(lines)
    assert 6 * 30 * 60 * 0.9 < len(trades) < 6 * 30 * 60 * 1.4
    assert len({t.event_id for t in trades}) == len(trades)
    assert {t.symbol for t in trades} == {"BTC-USD", "ETH-USD", "DOGE-USD"}
    by_id = {t.event_id: t for t in trades}
    assert len(truth["whales"]) >= 3
    for whale in truth["whales"]:
        t = by_id[whale["event_id"]]
        assert (t.exchange, t.symbol, t.side, t.timestamp) == (
            whale["exchange"], whale["symbol"], whale["side"], whale["timestamp"],
        )  # fmt: skip
        assert format(t.quote_volume, "f") == whale["quote_volume"]
