"""Bybit, all of it: the normaliser on recorded-format messages, `coattail normalize --exchange bybit`,
the REST rules against a real local HTTP server, the ping task against a real websockets server, a
fake-exchange session with two drops into the suite's Kafka (every trade once), a gap longer than the
recent-trades window (counted, never silent) and the simulator's rendering."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from coattail.contracts import dumps, loads_trade, trade_event_id
from coattail.settings import load_settings
from coattail.settings.models import ReconnectSettings
from connectors.base import Item
from connectors.bybit import (
    RECENT_TRADE,
    BybitConnector,
    BybitNormalizer,
    BybitRest,
    BybitRules,
    BybitSettings,
    BybitSymbols,
)
from connectors.manager import ConnectorManager
from connectors.metrics import Metrics
from connectors.normalize_cli import run_normalize
from connectors.registry import exchange, normalizer
from connectors.rest import BannedError, RestError
from connectors.simulator import simulate
from connectors.trade import NormalizeError, Trade
from tests.connectors.fakes import FakeExchange, Segment, consume_all, counter, happened
from tests.httpjson import send_json

FIXTURE = Path(__file__).parent / "fixtures" / "bybit.jsonl"
REPO = Path(__file__).resolve().parents[2]
RECEIVED = "2023-11-14T22:13:25.000000Z"
T0_MS = 1_763_900_000_000
FAST_RECONNECT = ReconnectSettings(initial_backoff_seconds=0.05, max_backoff_seconds=0.5)


def _raw_lines() -> list[bytes]:
    return FIXTURE.read_bytes().splitlines()


def _line(index: int) -> Any:
    return orjson.loads(_raw_lines()[index])


def _push(**fields: object) -> dict[str, object]:
    row = {"i": "2290000000061666327", "T": 1_700_000_000_120, "p": "37123.45", "v": "0.01", "S": "Buy",
           "s": "BTCUSDT", "BT": False} | fields  # fmt: skip
    return {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1_700_000_000_125, "data": [row]}


# -- normaliser ----------------------------------------------------------------------------------------
@pytest.mark.unit
def test_push_batch_taker_side_exact_decimals_symbol_and_id() -> None:
    sell, buy = BybitNormalizer().message(_line(0), RECEIVED)
    assert (sell.symbol, sell.side, buy.side) == ("BTC-USDT", "sell", "buy")  # S is the taker's side
    assert sell.price == Decimal("37123.45")
    assert str(sell.quantity) == "0.012340"  # exact text, trailing zero kept
    assert sell.quote_volume == Decimal("37123.45") * Decimal("0.012340")
    assert buy.quantity == Decimal("0.00001")
    assert sell.timestamp == "2023-11-14T22:13:20.120000Z"
    assert buy.timestamp == "2023-11-14T22:13:20.121000Z"
    assert sell.event_id == trade_event_id("bybit", "BTC-USDT", "2290000000061666327")
    assert sell.ingestion_timestamp == RECEIVED
    for trade in (sell, buy):
        assert trade.to_json() == dumps(trade.to_event())


@pytest.mark.unit
def test_block_trades_count_and_uuid_like_ids_are_kept_as_text() -> None:
    [block] = BybitNormalizer().message(_line(1), RECEIVED)
    assert (block.symbol, block.side, block.quantity) == ("ETH-USDT", "buy", Decimal("150"))
    [derivative_style] = BybitNormalizer().message(_line(2), RECEIVED)
    assert derivative_style.symbol == "SOL-USDC"  # split by the bundled quote list
    assert derivative_style.side == "sell"
    assert derivative_style.price == Decimal("58.1200")
    assert derivative_style.event_id == trade_event_id(
        "bybit", "SOL-USDC", "d9cd8295-40dc-5dce-8deb-42882580a7ab"
    )


@pytest.mark.unit
def test_the_same_trade_over_ws_and_rest_has_the_same_event_id() -> None:
    norm = BybitNormalizer()
    ws = {t.event_id: t for t in norm.message(_line(0), RECEIVED)}
    rest = norm.message(_line(7), RECEIVED)  # a whole recent-trade answer, newest first
    assert {t.event_id for t in rest} == set(ws)
    for t in rest:
        twin = ws[t.event_id]
        assert (t.symbol, t.side, t.price, t.quantity, t.timestamp) == (
            twin.symbol, twin.side, twin.price, twin.quantity, twin.timestamp,
        )  # fmt: skip
    row = _line(7)["result"]["list"][1]
    assert norm.rest_trade(row, "BTC-USDT", RECEIVED).event_id == trade_event_id(
        "bybit", "BTC-USDT", "2290000000061666327"
    )


@pytest.mark.unit
@pytest.mark.parametrize("index", [3, 4, 5, 6])
def test_acks_pongs_and_other_topics_are_not_trades(index: int) -> None:
    assert BybitNormalizer().message(_line(index), RECEIVED) == []


@pytest.mark.unit
def test_the_malformed_fixture_lines_are_refused_with_their_reason() -> None:
    with pytest.raises(NormalizeError, match="p: floats are not accepted"):
        BybitNormalizer().message(_line(8), RECEIVED)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(_raw_lines()[9])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_push(S="buy"), "S: expected Buy or Sell, got 'buy'"),
        (_push(S=None), "S: expected Buy or Sell"),
        (_push(i=5), "i: expected a trade id string"),
        (_push(i="9" * 65), "i: expected a trade id string"),
        (_push(i="١٢٣"), "i: expected a trade id string"),  # not ASCII digits
        (_push(i="1 2"), "i: expected a trade id string"),
        (_push(p="1e999999"), "scientific notation"),
        (_push(v="0"), "v: '0' is not a positive finite number"),
        (_push(p="-1"), "positive"),
        (_push(T="1700000000120"), "T: expected epoch milliseconds as an integer"),
        (_push(T=4_102_444_800_000), "more than 300 s after received_at"),
        (_push(s="FOOBAR"), "cannot split 'FOOBAR'"),
        (_push(s="BTCUSDT\n"), "cannot split"),
        (_push(s=None), "s: missing symbol"),
        ({"topic": "publicTrade.BTCUSDT", "data": {"i": "1"}}, "data: expected a list of trades"),
        ({"topic": "publicTrade.BTCUSDT", "data": [[]]}, "data[]: expected a JSON object"),
        ({"topic": "somethingNew.BTCUSDT", "data": []}, "topic: unknown topic 'somethingNew.BTCUSDT'"),
        ({"topic": {}, "data": []}, "topic: expected a string"),
        ({"op": {}, "success": True}, "unknown message"),
        ({"hello": "world"}, "unknown message (no topic; op 'None')"),
        ({"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}}, "retCode 10001"),
        ({"retCode": True, "result": {"list": []}}, "retCode True"),
        (
            {
                "retCode": 0,
                "result": {
                    "list": [
                        {
                            "execId": "1",
                            "symbol": "BTCUSDT",
                            "price": "1",
                            "size": "1",
                            "side": "Buy",
                            "time": "soon",
                        }
                    ]
                },
            },
            "time: expected epoch milliseconds as a digit string",
        ),
        ({"retCode": 0, "result": {"list": [{"execId": "1"}]}}, "result.list[].symbol: missing"),
        ({"retCode": 0, "result": {}}, "result.list: expected a list"),
        ([1, 2], "expected a JSON object, got list"),
    ],
)
def test_poison_is_refused_with_a_one_line_reason(msg: Any, reason: str) -> None:
    with pytest.raises(NormalizeError) as err:
        BybitNormalizer().message(msg, RECEIVED)
    assert reason in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.unit
def test_symbols_known_pairs_win_and_native_spelling() -> None:
    symbols = BybitSymbols(["WBTC-BTC"])
    assert symbols.normalise("WBTCBTC") == "WBTC-BTC"
    assert symbols.normalise("ETHUSDE") == "ETH-USDE"
    assert symbols.normalise("ETHBTC") == "ETH-BTC"
    assert exchange("bybit").native("BTC-USDT") == "BTCUSDT"


@pytest.mark.unit
def test_connector_refused_subscription_is_loud_and_trades_move_the_gap_fill_bound() -> None:
    conn = BybitConnector(BybitSettings(ws_url="ws://x", rest_url="http://x"), FAST_RECONNECT, ["BTC-USDT"])
    with pytest.raises(OSError, match="bybit subscribe refused: Invalid symbol"):
        conn.handle({"success": False, "ret_msg": "Invalid symbol :[publicTrade.FOOUSDT]", "op": "subscribe"},
                    RECEIVED)  # fmt: skip
    assert conn.handle(_line(3), RECEIVED) == []
    conn.handle(_line(0), RECEIVED)
    assert conn._bound("BTC-USDT", 0) == ("2023-11-14T22:13:20.121000Z", True)
    assert conn.sequence(conn.handle(_line(1), RECEIVED)[0]) is None


# -- coattail normalize ---------------------------------------------------------------------------------
@pytest.mark.unit
def test_normalize_cli_prints_the_trades_and_dead_letters_the_bad_lines(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "coattail", "normalize", "--exchange", "bybit", "--dead-letter", str(dead)],
        input=FIXTURE.read_bytes(), capture_output=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [loads_trade(line) for line in result.stdout.splitlines()]
    assert [(e.symbol, e.side) for e in events] == [
        ("BTC-USDT", "sell"), ("BTC-USDT", "buy"), ("ETH-USDT", "buy"), ("SOL-USDC", "sell"),
        ("BTC-USDT", "buy"), ("BTC-USDT", "sell"),  # the REST answer: the same two trades, same ids
    ]  # fmt: skip
    assert {e.event_id for e in events[4:]} == {e.event_id for e in events[:2]}
    assert events[0].price == Decimal("37123.45")
    stderr = result.stderr.decode()
    assert "10 lines: 6 trades from 4 lines, 4 ignored" in stderr
    assert "2 dead-lettered" in stderr
    letters = [orjson.loads(line) for line in dead.read_text().splitlines()]
    assert [d["reason"].split(":")[0] for d in letters] == ["p", "not JSON"]
    assert letters[0]["raw"] == _raw_lines()[8].decode()

    counts = run_normalize(io.BytesIO(FIXTURE.read_bytes()), io.BytesIO(), "bybit", None)
    assert counts == {"lines": 10, "trades": 6, "trade_lines": 4, "ignored": 4, "dead_lettered": 2}


# -- REST rules against a real local HTTP server ---------------------------------------------------------
def _rest_row(i: int, symbol: str = "BTCUSDT") -> dict[str, Any]:
    side = "Buy" if i % 2 else "Sell"
    return {"execId": str(2_290_000_000_000_000_000 + i), "symbol": symbol, "price": f"{37000 + i}.5",
            "size": "0.001", "side": side, "time": str(T0_MS + i), "isBlockTrade": False}  # fmt: skip


def _ok(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": rows}, "retExtInfo": {},
            "time": T0_MS}  # fmt: skip


class ScriptedRest:
    """Answers ``/v5/market/recent-trade``: scripted (status, headers, body) first, then ``rows``."""

    def __init__(self, rows: list[dict[str, Any]], script: list[tuple[int, dict[str, str], Any]]) -> None:
        self.rows = rows
        self.script = list(script)
        self.requests: list[dict[str, str]] = []
        self.statuses: list[int] = []

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if path != RECENT_TRADE:
            return 404, {}, {"retCode": 10001, "retMsg": "not found"}
        self.requests.append(query)
        if self.script:
            return self.script.pop(0)
        return 200, {}, _ok(self.rows[: int(query.get("limit", "60"))])


@contextlib.contextmanager
def _serve(fake: ScriptedRest) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            status, headers, body = fake.answer(url.path, {k: v[-1] for k, v in parse_qs(url.query).items()})
            fake.statuses.append(status)
            send_json(self, status, headers, body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


PARAMS = {"category": "spot", "symbol": "BTCUSDT", "limit": 10}


@pytest.mark.unit
def test_rolling_window_of_requests_per_five_seconds() -> None:
    now = [100.0]
    rules = BybitRules(budget=3, clock=lambda: now[0])
    waits = []
    for step in (0.0, 0.5, 0.5, 0.2):
        now[0] += step
        waits.append(rules.wait_before(RECENT_TRADE, 1))
        rules.sent(RECENT_TRADE, 1)
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(100.0 + 5.0 - 101.2)  # until the oldest request leaves the window
    now[0] = 105.0  # 100.0 has left; 100.5, 101.0 and 101.2 are still inside
    assert rules.wait_before(RECENT_TRADE, 1) == pytest.approx(0.5)
    now[0] = 106.0
    assert rules.wait_before(RECENT_TRADE, 1) == 0.0


@pytest.mark.unit
def test_the_client_waits_once_its_budget_in_the_window_is_used() -> None:
    fake = ScriptedRest([_rest_row(i) for i in range(20)], [])
    slept: list[float] = []
    with _serve(fake) as url:
        client = BybitRest(url, budget=2, clock=lambda: 1_000.0, sleep=slept.append)
        for _ in range(3):
            assert len(client.get(RECENT_TRADE, PARAMS)["result"]["list"]) == 10
        client.close()
    assert slept == [pytest.approx(5.0)]  # the third request waited for the window to move on
    assert len(fake.requests) == 3


@pytest.mark.unit
def test_429_retry_after_is_honoured_sync_and_async() -> None:
    fake = ScriptedRest([_rest_row(i) for i in range(20)], [(429, {"Retry-After": "1"}, {"retCode": 0})])
    with _serve(fake) as url:
        client = BybitRest(url)
        started = time.monotonic()
        assert len(client.get(RECENT_TRADE, PARAMS)["result"]["list"]) == 10
        assert time.monotonic() - started >= 1.0
        assert client.throttled == 1
        client.close()

        fake.script.append((429, {"Retry-After": "1"}, {"retCode": 0}))

        async def live() -> int:
            rest = BybitRest(url)
            try:
                started = time.monotonic()
                rows = await rest.recent_trades("BTCUSDT", 5)
                assert time.monotonic() - started >= 1.0
                assert rest.throttled == 1
                return len(rows)
            finally:
                await rest.aclose()

        assert asyncio.run(live()) == 5
    assert fake.statuses == [429, 200, 429, 200]


@pytest.mark.unit
def test_too_many_visits_in_a_200_body_is_retried_after_a_second() -> None:
    busy: tuple[int, dict[str, str], Any] = (
        200,
        {},
        {"retCode": 10006, "retMsg": "Too many visits!", "result": {}},
    )
    fake = ScriptedRest([_rest_row(i) for i in range(3)], [busy])
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    async def live() -> list[Any]:
        rest = BybitRest(url, async_sleep=record)
        try:
            return await rest.recent_trades("BTCUSDT")
        finally:
            await rest.aclose()

    with _serve(fake) as url:
        assert len(asyncio.run(live())) == 3
    assert slept == [1.0]
    assert fake.requests[-1] == {"category": "spot", "symbol": "BTCUSDT", "limit": "60"}


@pytest.mark.unit
def test_403_is_a_ban_nothing_is_sent_during_it_and_errors_are_one_line() -> None:
    fake = ScriptedRest([], [(403, {}, {"retCode": 403, "retMsg": "access too frequent"})])
    with _serve(fake) as url:
        client = BybitRest(url, sleep=lambda s: None)
        with pytest.raises(BannedError) as err:
            client.get(RECENT_TRADE, PARAMS)
        assert str(err.value) == "bybit banned this IP (HTTP 403) for 600 s; wait before retrying"
        with pytest.raises(BannedError):
            client.get(RECENT_TRADE, PARAMS)
        client.close()
        assert len(fake.requests) == 1

        fake.script.append((200, {}, {"retCode": 10001, "retMsg": "params error: symbol invalid"}))

        async def live() -> None:
            rest = BybitRest(url)
            try:
                await rest.recent_trades("FOOUSDT")
            finally:
                await rest.aclose()

        with pytest.raises(RestError, match="retCode 10001: params error: symbol invalid"):
            asyncio.run(live())
    assert fake.statuses == [403, 200]


# -- the ping task against a real websockets server --------------------------------------------------------
@pytest.mark.services
def test_the_connector_pings_and_the_pongs_keep_a_quiet_connection_healthy() -> None:
    """No trades at all: without the ping task the 1 s staleness bound would reconnect; with it, the
    pongs arrive every 0.2 s, are ignored (counted) and the single connection stays healthy."""
    received: list[dict[str, Any]] = []
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        async for text in ws:
            msg = orjson.loads(text)
            received.append(msg)
            reply = {"success": True, "ret_msg": "pong" if msg["op"] == "ping" else "", "conn_id": "c1",
                     "req_id": msg.get("req_id", ""), "op": msg["op"]}  # fmt: skip
            await ws.send(orjson.dumps(reply).decode())

    fake = ScriptedRest([], [])

    async def scenario(url: str) -> tuple[bool, Metrics]:
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            settings = BybitSettings(ws_url=f"ws://127.0.0.1:{port}/v5/public/spot", rest_url=url,
                                     ping_interval_seconds=0.2, stale_after_seconds=1.0)  # fmt: skip
            metrics = Metrics()
            conn = BybitConnector(settings, FAST_RECONNECT, ["BTC-USDT", "ETH-USDT"], metrics=metrics)
            task = asyncio.create_task(conn.stream(asyncio.Queue()))
            await asyncio.sleep(2.5)
            healthy = conn.health_check()
            conn.shutdown()
            await asyncio.wait_for(task, 10)
            return healthy, metrics

    with _serve(fake) as url:
        healthy, metrics = asyncio.run(scenario(url))
    assert healthy
    assert connections == 1
    assert received[0] == {"op": "subscribe", "req_id": "trades-0",
                           "args": ["publicTrade.BTCUSDT", "publicTrade.ETHUSDT"]}  # fmt: skip
    pings = received[1:]
    assert len(pings) >= 8
    assert all(p == {"op": "ping", "req_id": "heartbeat"} for p in pings)
    assert counter(metrics, "ignored", "bybit") >= len(pings)  # the ack and every pong
    assert counter(metrics, "dead_lettered", "bybit") == 0
    assert counter(metrics, "reconnects", "bybit") == 0


# -- fake exchange: real websockets + HTTP, drops, overlap, Kafka -------------------------------------------
def _history(n: int) -> list[dict[str, Any]]:
    """Alternating BTC/ETH pushes; BTC ids are numeric, ETH ids UUID-like (not orderable)."""
    rng = random.Random(7)
    out = []
    for i in range(n):
        native = "BTCUSDT" if i % 2 else "ETHUSDT"
        trade_id = (
            str(2_290_000_000_061_000_000 + i)
            if native == "BTCUSDT"
            else str(uuid.UUID(int=rng.getrandbits(128), version=4))
        )
        price, size, taker = (
            f"{3000 + rng.random() * 100:.2f}",
            f"{rng.random() + 0.000001:.6f}",
            rng.choice(["Buy", "Sell"]),
        )
        out.append(
            {"_index": i, "s": native, "i": trade_id, "p": price, "v": size, "T": T0_MS + i * 7, "S": taker}
        )
    return out


def _bybit_ws(t: dict[str, Any]) -> str:
    row = {k: v for k, v in t.items() if not k.startswith("_")} | {"BT": False}
    return orjson.dumps(
        {"topic": f"publicTrade.{t['s']}", "type": "snapshot", "ts": t["T"] + 2, "data": [row]}
    ).decode()


def _bybit_rest(fake: FakeExchange, path: str, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
    if path != RECENT_TRADE or q.get("category") != ["spot"]:
        return 404, {}, {"retCode": 10001, "retMsg": "not found"}
    limit = min(int(q["limit"][0]), 60)  # spot: the 60 most recent trades, no paging
    rows = [t for t in happened(fake) if t["s"] == q["symbol"][0]][-limit:][::-1]
    body = [{"execId": t["i"], "symbol": t["s"], "price": t["p"], "size": t["v"], "side": t["S"],
             "time": str(t["T"]), "isBlockTrade": False, "isRPITrade": False} for t in rows]  # fmt: skip
    return 200, {}, _ok(body)


def _event_id(t: dict[str, Any]) -> str:
    return trade_event_id("bybit", t["s"][:3] + "-USDT", t["i"])


ACK = orjson.dumps(
    {"success": True, "ret_msg": "", "conn_id": "c2", "req_id": "trades-0", "op": "subscribe"}
).decode()
PONG = orjson.dumps(
    {"success": True, "ret_msg": "pong", "conn_id": "c2", "req_id": "heartbeat", "op": "ping"}
).decode()
TICKER = orjson.dumps(
    {"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": T0_MS, "data": {"symbol": "BTCUSDT"}}
).decode()


@pytest.mark.services
def test_two_drops_with_trades_while_disconnected_reach_kafka_exactly_once(
    kafka_bootstrap: str, unique_name: str
) -> None:
    # REST holds only the newest 60 trades per symbol, and the fake sends a whole segment at once (its
    # trades may already be in the window when the gap fill asks): every gap plus the next segment's
    # trades stays within 60 per symbol. 0..19 happened before we connect: never ours.
    history = _history(340)
    segments = [
        Segment(release=20, send_from=20, send_to=150, end="abort"),
        # 150..229 happen while disconnected (40 per symbol); overlap 220..229
        Segment(release=230, send_from=220, send_to=250, extra_before=[ACK, PONG], end="abort"),
        # 250..319 happen during the second drop (35 per symbol); overlap 310..319
        Segment(release=320, send_from=310, send_to=340, extra_before=[ACK, "{not json", TICKER], end="hold"),
    ]
    fake = FakeExchange(history, _bybit_ws, _bybit_rest, segments, expect_subscribe=True)
    live = history[20:]

    async def scenario() -> Metrics:
        await fake.start()
        try:
            settings = load_settings(
                overrides={
                    "connectors.bybit.ws_url": fake.ws_url,
                    "connectors.bybit.rest_url": fake.rest_url,
                    "connectors.bybit.stale_after_seconds": 20,
                    "stream.backend": "kafka",
                    "stream.kafka.bootstrap_servers": kafka_bootstrap,
                    "stream.kafka.topic": unique_name,
                    "stream.kafka.dlq_topic": f"{unique_name}-dlq",
                    "producer.status_port": 0,
                    "reconnect.initial_backoff_seconds": 0.05,
                    "reconnect.max_backoff_seconds": 0.5,
                }
            )
            metrics = Metrics()
            manager = ConnectorManager(settings, {"bybit": ["BTC-USDT", "ETH-USDT"]}, metrics=metrics)
            task = asyncio.create_task(manager.run())
            await asyncio.wait_for(fake.done.wait(), 180)
            deadline = time.monotonic() + 120
            while counter(metrics, "normalised", "bybit") < len(live) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the connector task is the event source: poll with a deadline
            manager.stop()
            assert await asyncio.wait_for(task, 120) == 0
            return metrics
        finally:
            await fake.stop()

    metrics = asyncio.run(scenario())
    records = consume_all(kafka_bootstrap, unique_name, partitions=3)
    events = [loads_trade(r.value()) for r in records]
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids)), "a trade was written twice"
    expected = {_event_id(t): t for t in live}
    assert set(ids) == set(expected), (
        f"missing {len(set(expected) - set(ids))}, unexpected {len(set(ids) - set(expected))}"
    )
    for record, event in zip(records, events, strict=True):
        t = expected[event.event_id]
        assert record.key().decode() == event.symbol == t["s"][:3] + "-USDT"
        assert event.side == t["S"].lower()  # Bybit's S is already the taker's side
        assert event.price == Decimal(t["p"])
        assert event.quantity == Decimal(t["v"])
        assert event.quote_volume == Decimal(t["p"]) * Decimal(t["v"])
    assert fake.connections >= 3
    assert fake.subscriptions[0]["args"] == ["publicTrade.BTCUSDT", "publicTrade.ETHUSDT"]
    assert counter(metrics, "gap_filled", "bybit") >= 70 + 60  # 150..219 and 250..309 only REST had
    assert counter(metrics, "reconnects", "bybit") >= 2
    assert counter(metrics, "gap_fill_failures", "bybit") == 0  # both gaps fit the recent window
    dead = consume_all(kafka_bootstrap, f"{unique_name}-dlq", partitions=3)
    assert [orjson.loads(d.value())["raw"] for d in dead] == ["{not json"]


@pytest.mark.services
def test_a_gap_longer_than_the_recent_window_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """100 trades per symbol happen while disconnected; REST holds the newest 60 of each: those are
    recovered, the 40 older ones cannot be — that is a metric and a warning, not a silent hole."""
    history = _history(300)
    segments = [
        Segment(release=10, send_from=10, send_to=60, end="abort"),
        Segment(release=260, send_from=260, send_to=260, end="hold"),  # REST's window: 140..259
    ]
    fake = FakeExchange(history, _bybit_ws, _bybit_rest, segments)
    recoverable = history[10:60] + history[140:260]

    async def scenario() -> tuple[list[Item], Metrics]:
        await fake.start()
        try:
            settings = BybitSettings(ws_url=fake.ws_url, rest_url=fake.rest_url, stale_after_seconds=20)
            metrics = Metrics()
            conn = BybitConnector(settings, FAST_RECONNECT, ["BTC-USDT", "ETH-USDT"], metrics=metrics)
            queue: asyncio.Queue[Item] = asyncio.Queue()
            task = asyncio.create_task(conn.stream(queue))
            got: list[Item] = []
            while len(got) < len(recoverable):
                got.append(await asyncio.wait_for(queue.get(), 60))
            await asyncio.wait_for(fake.done.wait(), 30)
            await asyncio.sleep(0.3)  # anything extra (a duplicate) would arrive now
            conn.shutdown()
            await asyncio.wait_for(task, 30)
            while not queue.empty():
                got.append(queue.get_nowait())
            return got, metrics
        finally:
            await fake.stop()

    with caplog.at_level(logging.WARNING, logger="connectors"):
        got, metrics = asyncio.run(scenario())
    trades = [item for item in got if isinstance(item, Trade)]
    assert len(trades) == len(got)
    assert sorted(t.event_id for t in trades) == sorted(_event_id(t) for t in recoverable)
    assert counter(metrics, "gap_fill_failures", "bybit") == 2  # one per symbol
    assert counter(metrics, "gap_filled", "bybit") == 120
    warnings = [r for r in caplog.records if "longer than the recent-trades window" in r.getMessage()]
    assert {r.__dict__["symbol"] for r in warnings} == {"BTC-USDT", "ETH-USDT"}


# -- simulator -------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_a_simulated_bybit_session_normalises_back_to_the_planted_trades() -> None:
    lines, truth = simulate(
        seed=5, minutes=40, rate=4, start=datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
        instruments={"bybit": ["BTC-USDT", "ETH-USDT"]}, equivalences={},
    )  # fmt: skip
    assert {line["exchange"] for line in lines} == {"bybit"}
    norm = normalizer("bybit")
    trades: list[Trade] = []
    ignored = 0
    for line in lines:
        got = norm.message(line["raw"], str(line["received_at"]))
        ignored += not got
        trades += got
    assert ignored >= 2 * (40 * 60 // 20 - 1)  # a pong every 20 s on each instrument's connection
    assert 4 * 40 * 60 * 0.9 < len(trades) < 4 * 40 * 60 * 1.4
    assert len({t.event_id for t in trades}) == len(trades)
    by_id = {t.event_id: t for t in trades}
    assert len(truth["whales"]) >= 4
    for whale in truth["whales"]:
        t = by_id[whale["event_id"]]
        assert (t.exchange, t.symbol, t.side, t.timestamp) == (
            "bybit", whale["symbol"], whale["side"], whale["timestamp"],
        )  # fmt: skip
        assert t.quote_volume == Decimal(whale["quote_volume"])
    raw = next(line["raw"] for line in lines if "topic" in line["raw"])
    assert raw["topic"] in ("publicTrade.BTCUSDT", "publicTrade.ETHUSDT")
    assert raw["data"][0]["S"] in ("Buy", "Sell")
