"""OKX: normaliser on recorded-format messages, the normalize CLI, REST rules against a real HTTP server,
text keep-alive and service-upgrade notice against a real WebSocket server, a fake-exchange session
(drops, trades while disconnected, overlap) into a real Kafka broker, and the simulator renderer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve

from coattail.contracts import dumps, loads_trade, trade_event_id
from coattail.settings import load_settings
from connectors.base import DeadLetter
from connectors.manager import ConnectorManager
from connectors.metrics import Metrics
from connectors.okx import (
    HISTORY_TRADES,
    TRADES,
    OkxConnector,
    OkxNormalizer,
    OkxRest,
    OkxRules,
    OkxSettings,
)
from connectors.registry import EXCHANGES, normalizer
from connectors.rest import RestError
from connectors.simulator import simulate
from connectors.trade import NormalizeError, Trade
from tests.connectors.fakes import FakeExchange, Segment, consume_all, counter, happened
from tests.connectors.test_fuzz import (
    EPOCH_POISON,
    ID_POISON,
    JSON_VALUES,
    NUMBER_POISON,
    SYMBOL_POISON,
    TIMESTAMP_POISON,
    TYPE_POISON,
)

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
RECEIVED = "2023-11-14T22:13:25.000000Z"
T0_MS = 1_763_900_000_000


def _lines() -> list[Any]:
    return [orjson.loads(line) for line in (FIXTURES / "okx.jsonl").read_bytes().splitlines()[:-1]]


def _raw(index: int) -> Any:
    """Fixture line ``index`` as the exchange sent it (the pong line is an envelope of a text frame)."""
    line = _lines()[index]
    return line.get("raw", line)


# -- normaliser ----------------------------------------------------------------------------------------
@pytest.mark.unit
def test_trades_push_keeps_exact_decimals_taker_side_and_the_trade_id() -> None:
    [trade] = OkxNormalizer().message(_raw(1), RECEIVED)
    assert (trade.exchange, trade.symbol, trade.side) == ("okx", "BTC-USDT", "buy")  # taker side as sent
    assert trade.price == Decimal("37123.4")
    assert trade.quantity == Decimal("0.12060306")
    assert trade.quote_volume == Decimal("37123.4") * Decimal("0.12060306")
    assert trade.timestamp == "2023-11-14T22:13:20.120000Z"
    assert trade.event_id == trade_event_id("okx", "BTC-USDT", "130639474")
    assert trade.to_json() == dumps(trade.to_event())


@pytest.mark.unit
def test_a_push_with_several_rows_and_the_trades_all_channel() -> None:
    norm = OkxNormalizer()
    sells = norm.message(_raw(2), RECEIVED)
    assert [(t.symbol, t.side, t.trade_id) for t in sells] == [
        ("ETH-USDT", "sell", "552901117"),
        ("ETH-USDT", "sell", "552901118"),
    ]
    assert sells[1].quantity == Decimal("0.000001")
    assert sells[0].timestamp == "2023-11-14T22:13:19.001000Z"
    [single] = norm.message(_raw(3), RECEIVED)  # trades-all: one fill per push
    assert (single.side, single.price, single.trade_id) == ("sell", Decimal("37124"), "130639475")
    for t in [*sells, single]:
        assert loads_trade(t.to_json()) == t.to_event()


@pytest.mark.unit
def test_the_same_trade_over_ws_and_rest_has_the_same_event_id() -> None:
    """A REST row (``GET /api/v5/market/history-trades``, OKX's documented response shape) of the
    push's trade id: same event_id, same taker side. (The push aggregated 3 fills of one taker order;
    REST lists each fill, so its size is that fill's own.)"""
    row = {"instId": "BTC-USDT", "side": "buy", "sz": "0.02", "source": "0", "px": "37123.4",
           "tradeId": "130639474", "ts": "1700000000120"}  # fmt: skip
    body = {"code": "0", "msg": "", "data": [row]}
    norm = OkxNormalizer()
    [ws] = norm.message(_raw(1), RECEIVED)
    rest = norm.rest_trade(body["data"][0], "BTC-USDT", RECEIVED)
    assert rest.event_id == ws.event_id == trade_event_id("okx", "BTC-USDT", "130639474")
    assert rest.dedupe_key == ws.dedupe_key
    assert (rest.side, rest.timestamp) == (ws.side, ws.timestamp)
    # A leading zero would be a different text but the same id: the canonical text keeps them equal.
    padded = norm.rest_trade(row | {"tradeId": "0130639474"}, "BTC-USDT", RECEIVED)
    assert padded.event_id == ws.event_id


@pytest.mark.unit
@pytest.mark.parametrize("index", [0, 4, 5, 6, 7, 8])
def test_control_messages_are_ignored(index: int) -> None:
    """Subscribe ack, pong (a text frame), service-upgrade notice, error reply, another channel's push,
    unsubscribe ack."""
    assert OkxNormalizer().message(_raw(index), RECEIVED) == []


@pytest.mark.unit
def test_malformed_fixture_lines_are_refused_with_a_reason() -> None:
    with pytest.raises(NormalizeError, match="px: floats are not accepted"):
        OkxNormalizer().message(_raw(9), RECEIVED)
    last = (FIXTURES / "okx.jsonl").read_bytes().splitlines()[-1]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(last)


def _push(**fields: object) -> dict[str, object]:
    row = {"instId": "BTC-USDT", "tradeId": "7", "px": "1.5", "sz": "2", "side": "buy", "ts": "1700000000000"}
    return {"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [row | fields]}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_push(side="BUY"), "side: expected buy or sell, got 'BUY'"),
        (_push(side=None), "side: expected buy or sell"),
        (_push(px="-1"), "px: '-1' is not a positive finite number"),
        (_push(sz="0"), "sz: '0' is not a positive finite number"),
        (_push(sz="1e5"), "scientific notation"),
        (_push(px="１２３"), "not a plain decimal"),
        (_push(tradeId="9" * 5000), "tradeId: expected a non-negative integer id below 2^63"),
        (_push(tradeId=str(2**63)), "below 2^63"),
        (_push(tradeId="١٢"), "tradeId"),
        (_push(tradeId=None), "tradeId"),
        (_push(ts="1700000000.5"), "ts: expected epoch milliseconds as a digit string"),
        (_push(ts="9" * 5000), "ts: expected epoch milliseconds"),
        (_push(ts=1.7e12), "ts: expected epoch milliseconds"),
        (_push(ts="4102444800000"), "ts: 2100-01-01T00:00:00.000000Z is more than 300 s after received_at"),
        (_push(ts="1230940799999"), "outside [2009-01-03"),
        (_push(instId="BTC-USDT-SWAP"), "symbol: 'BTC-USDT-SWAP' is not BASE-QUOTE upper case"),
        (_push(instId=None), "instId: missing"),
        ({"arg": {"channel": "trades"}, "data": {}}, "data: expected a list"),
        ({"arg": {"channel": "trades"}, "data": [[]]}, "data[]: expected a JSON object"),
        ({"arg": {"channel": "candle1s"}, "data": []}, "unknown channel 'candle1s'"),
        ({"arg": {"channel": {}}, "data": []}, "arg.channel: missing"),
        ({"event": "login2"}, "unknown event 'login2'"),
        ({"event": {}}, "unknown event '{}'"),
        ({"hello": "world"}, "arg.channel: missing"),
        ("ping", "expected a JSON object, got str"),
        ([1, 2], "expected a JSON object, got list"),
    ],
)
def test_poison_is_refused_with_its_reason(msg: object, reason: str) -> None:
    with pytest.raises(NormalizeError) as err:
        OkxNormalizer().message(msg, RECEIVED)
    assert reason in str(err.value)


@pytest.mark.unit
def test_any_json_in_any_field_raises_only_normalize_errors() -> None:
    """Every field of the push, its row and its ``arg`` (fixture lines and simulated pushes), replaced by
    every poison/JSON value one at a time: a trade or a NormalizeError, never another exception."""
    lines, _ = simulate(seed=18, minutes=2, rate=4, start=datetime(2025, 6, 1, tzinfo=UTC),
                        instruments={"okx": ["BTC-USDT"]}, equivalences={})  # fmt: skip
    messages = [line["raw"] for line in lines[:20]] + [m for m in _lines() if "raw" not in m]
    values = [*TIMESTAMP_POISON, *EPOCH_POISON, *NUMBER_POISON, *ID_POISON, *SYMBOL_POISON,
              *TYPE_POISON, *JSON_VALUES, "pong", "ping"]  # fmt: skip
    norm, seen = OkxNormalizer(), 0
    for raw in messages:
        targets: list[Callable[[Any], Any]] = [lambda m: m]
        if isinstance(raw.get("data"), list) and raw["data"]:
            targets.append(lambda m: m["data"][0])
        if isinstance(raw.get("arg"), dict):
            targets.append(lambda m: m["arg"])
        for target in targets:
            for key in list(target(raw)):
                for value in values:
                    msg = orjson.loads(orjson.dumps(raw))
                    target(msg)[key] = value
                    with contextlib.suppress(NormalizeError):
                        for trade in norm.message(msg, "2025-06-01T00:10:00.000000Z"):
                            assert loads_trade(trade.to_json()) == trade.to_event()
                    seen += 1
    assert seen > 10_000


@pytest.mark.unit
def test_normalize_cli_prints_the_trades_and_dead_letters_the_bad_lines(tmp_path: Path) -> None:
    dead = tmp_path / "dead.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "coattail", "normalize", "--exchange", "okx", "--dead-letter", str(dead)],
        input=(FIXTURES / "okx.jsonl").read_bytes(), capture_output=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [loads_trade(line) for line in result.stdout.splitlines()]
    assert [(e.symbol, e.side, str(e.price)) for e in events] == [
        ("BTC-USDT", "buy", "37123.4"),
        ("ETH-USDT", "sell", "2034.51"),
        ("ETH-USDT", "sell", "2034.5"),
        ("BTC-USDT", "sell", "37124"),
    ]
    assert events[0].event_id == trade_event_id("okx", "BTC-USDT", "130639474")
    assert "11 lines: 4 trades from 3 lines, 6 ignored" in result.stderr.decode()
    assert "2 dead-lettered" in result.stderr.decode()
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [letter["reason"][:30] for letter in letters] == [
        "px: floats are not accepted, e",
        "not JSON: unexpected control c",  # the cut line ends at its newline
    ]
    assert letters[1]["raw"].endswith('"tradeId":"1306')


# -- REST rules ----------------------------------------------------------------------------------------
@pytest.mark.unit
def test_rules_are_a_sliding_two_second_window_per_endpoint() -> None:
    now = [100.0]
    rules = OkxRules({HISTORY_TRADES: 3, TRADES: 5}, clock=lambda: now[0])
    waits = []
    for _ in range(4):
        waits.append(rules.wait_before(HISTORY_TRADES, 1))
        rules.sent(HISTORY_TRADES, 1)
        now[0] += 0.1
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(2.05 - 0.3)  # until the first of the window has left it
    assert rules.wait_before(TRADES, 1) == 0.0  # its own budget
    now[0] += 2.0
    assert rules.wait_before(HISTORY_TRADES, 1) == 0.0
    assert OkxSettings().rest_history_requests_per_2s == 20  # OKX: 20 requests / 2 s per IP
    assert OkxSettings().rest_trades_requests_per_2s == 100  # OKX: 100 requests / 2 s per IP


def _rest_only(handler: Any) -> FakeExchange:
    return FakeExchange([], lambda t: "", handler, [])


def _nap(slept: list[float]) -> Any:
    async def nap(seconds: float) -> None:  # records the rules' waits instead of sleeping them
        slept.append(seconds)

    return nap


ROWS = [{"instId": "BTC-USDT", "tradeId": str(i), "px": "1", "sz": "1", "side": "buy", "ts": str(T0_MS + i)}
        for i in range(200, 100, -1)]  # fmt: skip


@pytest.mark.unit
def test_rest_waits_for_the_window_and_honours_429_and_error_codes() -> None:
    statuses: list[int] = []

    def handler(fake: FakeExchange, path: str, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        if q["instId"] == ["NOPE-USDT"]:
            statuses.append(200)
            return 200, {}, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
        if len(fake.rest_calls) == 1:  # the first request: over the limit (OKX sends no Retry-After)
            statuses.append(429)
            return 429, {}, {"msg": "Too Many Requests", "code": "50011"}
        statuses.append(200)
        return 200, {}, {"code": "0", "msg": "", "data": ROWS[:10]}

    fake = _rest_only(handler)

    async def scenario() -> list[float]:
        await fake.start()
        slept: list[float] = []
        rest = OkxRest(fake.rest_url, history_per_2s=3, async_sleep=_nap(slept))
        try:
            assert len(await rest.history("BTC-USDT", 999)) == 10  # 429, waited, retried
            assert slept == [2.0]
            assert rest.throttled == 1
            for _ in range(3):
                await rest.history("BTC-USDT", 999)
            with pytest.raises(RestError) as err:
                await rest.history("NOPE-USDT", 1)
            assert str(err.value) == (
                "okx /api/v5/market/history-trades answered code 51001: Instrument ID does not exist"
            )
            return slept
        finally:
            await rest.aclose()
            await fake.stop()

    slept = asyncio.run(scenario())
    # 429 + 3 sent in the window: the 4th history request waited for the window (the 5th too).
    assert len(slept) >= 2
    assert 1.0 < slept[1] <= 2.05
    assert statuses == [429, 200, 200, 200, 200, 200]
    assert all("type=1" in c and "after=" in c for c in fake.rest_calls)


@pytest.mark.unit
def test_fetch_since_pages_back_from_the_newest_trades_to_the_last_id() -> None:
    def handler(fake: FakeExchange, path: str, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        rows = ROWS
        if path == HISTORY_TRADES:
            rows = [r for r in rows if int(r["tradeId"]) < int(q["after"][0])]
        elif path != TRADES:
            return 404, {}, {"code": "404", "msg": "not found"}
        return 200, {}, {"code": "0", "msg": "", "data": rows[: min(int(q["limit"][0]), 15)]}

    fake = _rest_only(handler)
    settings = load_settings()
    conn = OkxConnector(settings.connectors["okx"], settings.reconnect, ["BTC-USDT"])

    async def scenario() -> tuple[list[Trade], int | None]:
        await fake.start()
        rest = OkxRest(fake.rest_url)
        try:
            return await conn.fetch_since(rest, "BTC-USDT", 140, 1000), await conn.latest_id(rest, "BTC-USDT")
        finally:
            await rest.aclose()
            await fake.stop()

    trades, latest = asyncio.run(scenario())
    assert [int(t.trade_id) for t in trades] == list(range(141, 201))  # oldest first, nothing twice
    assert latest == 200
    assert fake.rest_calls[0].startswith(TRADES)
    assert sum(c.startswith(HISTORY_TRADES) for c in fake.rest_calls) == 3  # 60 trades, 15 a page


# -- keep-alive and service-upgrade notice against a real WebSocket server ----------------------------------
@pytest.mark.unit
def test_text_pings_when_idle_pongs_are_ignored_and_a_notice_reconnects() -> None:
    pings: list[float] = []
    subscriptions: list[Any] = []
    connected: list[float] = []
    second = asyncio.Event()
    ack = orjson.dumps({"event": "subscribe", "arg": {"channel": "trades", "instId": "BTC-USDT"},
                        "connId": "a4d3ae55"}).decode()  # fmt: skip
    upgrade = "The connection will soon be closed for a service upgrade."
    notice = orjson.dumps({"event": "notice", "code": "64008", "msg": upgrade, "connId": "a4d3ae55"}).decode()

    def push(trade_id: int) -> str:
        row = {"instId": "BTC-USDT", "tradeId": str(trade_id), "px": "37000.1", "sz": "0.5",
               "side": "sell", "ts": str(int(time.time() * 1000)), "count": "1", "source": "0"}  # fmt: skip
        return orjson.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [row]}).decode()

    async def okx_ws(ws: ServerConnection) -> None:
        connected.append(time.monotonic())
        subscriptions.append(json.loads(await ws.recv()))
        await ws.send(ack)
        if len(connected) > 1:
            await ws.send(push(12))
            second.set()
            await ws.wait_closed()
            return
        async for message in ws:
            if message == "ping":
                pings.append(time.monotonic())
                await ws.send("pong")
                if len(pings) == 3:
                    await ws.send(push(11))
                    await ws.send(notice)

    def rest(fake: FakeExchange, path: str, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"code": "0", "msg": "", "data": []}

    fake = _rest_only(rest)
    metrics = Metrics()

    async def scenario() -> list[Any]:
        await fake.start()
        server = await serve(okx_ws, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        settings = load_settings(overrides={
            "connectors.okx.ws_url": f"ws://127.0.0.1:{port}", "connectors.okx.rest_url": fake.rest_url,
            "connectors.okx.ping_interval_seconds": 0.3, "connectors.okx.stale_after_seconds": 3,
            "reconnect.initial_backoff_seconds": 0.05,
        })  # fmt: skip
        conn = OkxConnector(settings.connectors["okx"], settings.reconnect, ["BTC-USDT"], metrics=metrics)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        task = asyncio.create_task(conn.stream(queue))
        try:
            await asyncio.wait_for(second.wait(), 30)
            deadline = time.monotonic() + 10
            while queue.qsize() < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            conn.shutdown()
            await asyncio.wait_for(task, 10)
            server.close()
            await server.wait_closed()
            await fake.stop()
        assert conn.pings_sent >= 3
        return [queue.get_nowait() for _ in range(queue.qsize())]

    items = asyncio.run(scenario())
    assert not [i for i in items if isinstance(i, DeadLetter)]  # pongs are not dead letters
    assert [(i.trade_id, i.side) for i in items] == [("11", "sell"), ("12", "sell")]
    assert pings[0] - connected[0] >= 0.25  # not before the link was idle for the interval
    assert all(b - a >= 0.25 for a, b in itertools.pairwise(pings))
    assert len(connected) == 2  # the notice made it reconnect at once ...
    assert counter(metrics, "reconnects", "okx") == 1
    assert counter(metrics, "ignored", "okx") >= 3 + 2  # ... pongs and acks counted as control messages
    assert counter(metrics, "dead_lettered", "okx") == 0
    assert subscriptions == [{"op": "subscribe", "args": [{"channel": "trades", "instId": "BTC-USDT"}]}] * 2


# -- fake exchange session into Kafka ---------------------------------------------------------------------
def _history(n: int, max_fills: int) -> list[dict[str, Any]]:
    """Taker orders on BTC/ETH; each filled against 1..max_fills makers (one push, one REST row per fill)."""
    rng = random.Random(7)
    last = {"BTC-USDT": 480_000_000, "ETH-USDT": 210_000_000}
    out = []
    for i in range(n):
        inst = "ETH-USDT" if i % 3 == 0 else "BTC-USDT"
        fills = rng.randint(1, max_fills)
        ids = list(range(last[inst] + 1, last[inst] + 1 + fills))
        last[inst] = ids[-1]
        out.append(
            {"_index": i, "inst": inst, "ids": ids, "px": f"{37000 + rng.random() * 100:.1f}",
             "sizes": [f"{rng.random() + 0.0001:.8f}" for _ in ids], "side": rng.choice(["buy", "sell"]),
             "ts": T0_MS + i * 9}
        )  # fmt: skip
    return out


def _fills(t: dict[str, Any]) -> list[dict[str, str]]:
    pairs = zip(t["ids"], t["sizes"], strict=True)
    return [{"instId": t["inst"], "tradeId": str(i), "px": t["px"], "sz": sz, "side": t["side"],
             "source": "0", "ts": str(t["ts"])} for i, sz in pairs]  # fmt: skip


def _ws(channel: str) -> Any:
    def render(t: dict[str, Any]) -> str:
        """One push per taker order: the last fill's id, the summed size, the count (OKX ``trades``)."""
        total = sum((Decimal(s) for s in t["sizes"]), Decimal(0))
        row = {"instId": t["inst"], "tradeId": str(t["ids"][-1]), "px": t["px"], "sz": format(total, "f"),
               "side": t["side"], "ts": str(t["ts"]), "count": str(len(t["ids"])), "source": "0",
               "seqId": t["_index"] + 5}  # fmt: skip
        if channel == "trades-all":
            del row["count"], row["seqId"]
        return orjson.dumps({"arg": {"channel": channel, "instId": t["inst"]}, "data": [row]}).decode()

    return render


def _okx_rest(fake: FakeExchange, path: str, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
    inst = q.get("instId", [""])[0]
    rows = sorted(
        (r for t in happened(fake) if t["inst"] == inst for r in _fills(t)), key=lambda r: -int(r["tradeId"])
    )  # fmt: skip  (newest first, like OKX)
    if path == HISTORY_TRADES:
        if q.get("type") != ["1"]:
            return 400, {}, {"code": "51000", "msg": "Parameter type error", "data": []}
        rows = [r for r in rows if "after" not in q or int(r["tradeId"]) < int(q["after"][0])]
        page = rows[: min(int(q["limit"][0]), 30)]  # small pages: the client must page back
    elif path == TRADES:
        page = rows[: min(int(q["limit"][0]), 25)]
    else:
        return 404, {}, {"code": "404", "msg": "not found", "data": []}
    return 200, {}, {"code": "0", "msg": "", "data": page}


@pytest.mark.services
@pytest.mark.parametrize("channel", ["trades", "trades-all"])
def test_drops_and_trades_while_disconnected_reach_kafka_exactly_once(
    kafka_bootstrap: str, unique_name: str, channel: str
) -> None:
    """Two server-side drops (a dropped TCP connection, then a close frame); trades 150..289 and
    420..439 happen while disconnected; both later connections re-send some overlap. Every taker
    order's volume reaches Kafka exactly once: as its live push or as its REST fills, never both."""
    history = _history(600, max_fills=3 if channel == "trades" else 1)
    ack = orjson.dumps({"event": "subscribe", "arg": {"channel": channel, "instId": "BTC-USDT"},
                        "connId": "a4d3ae55"}).decode()  # fmt: skip
    segments = [
        Segment(release=20, send_from=20, send_to=150, extra_before=[ack, "pong"], end="abort"),
        Segment(release=300, send_from=290, send_to=420, extra_before=[ack, "{not json"], end="close"),
        Segment(release=450, send_from=440, send_to=600, extra_before=[ack, "pong"], end="hold"),
    ]
    fake = FakeExchange(history, _ws(channel), _okx_rest, segments, expect_subscribe=True)
    metrics = Metrics()

    async def scenario() -> None:
        await fake.start()
        try:
            settings = load_settings(overrides={
                "connectors.okx.ws_url": fake.ws_url, "connectors.okx.rest_url": fake.rest_url,
                "connectors.okx.channel": channel, "connectors.okx.stale_after_seconds": 20,
                "connectors.okx.ping_interval_seconds": 5, "stream.backend": "kafka",
                "stream.kafka.bootstrap_servers": kafka_bootstrap, "stream.kafka.topic": unique_name,
                "stream.kafka.dlq_topic": f"{unique_name}-dlq", "producer.status_port": 0,
                "reconnect.initial_backoff_seconds": 0.05, "reconnect.max_backoff_seconds": 0.5,
            })  # fmt: skip
            manager = ConnectorManager(settings, {"okx": ["BTC-USDT", "ETH-USDT"]}, metrics=metrics)
            task = asyncio.create_task(manager.run())
            await asyncio.wait_for(fake.done.wait(), 180)
            # The last pushes are in flight after the fake sent them: wait until the count stops moving.
            seen, stable_since = -1.0, time.monotonic()
            while time.monotonic() - stable_since < 1.0:
                now = counter(metrics, "normalised", "okx")
                if now != seen:
                    seen, stable_since = now, time.monotonic()
                await asyncio.sleep(0.05)
            manager.stop()
            assert await asyncio.wait_for(task, 120) == 0
        finally:
            await fake.stop()

    asyncio.run(scenario())
    records = consume_all(kafka_bootstrap, unique_name, partitions=3)
    events = [loads_trade(r.value()) for r in records]
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids)), "a trade was written twice"
    by_id = {e.event_id: e for e in events}
    live = history[20:]
    as_push = as_fills = 0
    for t in live:
        fill_ids = [trade_event_id("okx", t["inst"], i) for i in t["ids"]]
        got = [by_id[i] for i in fill_ids if i in by_id]
        total = sum((Decimal(s) for s in t["sizes"]), Decimal(0))
        assert got, f"taker order {t['_index']} is missing"
        assert sum((e.quantity for e in got), Decimal(0)) == total, f"order {t['_index']}: volume not once"
        if len(got) == 1 and len(t["ids"]) > 1:
            assert got[0].event_id == fill_ids[-1]  # the push carries the last fill's id
            as_push += 1
        elif len(t["ids"]) > 1:
            as_fills += 1
        for e in got:
            assert (e.symbol, e.side, e.price, e.exchange) == (t["inst"], t["side"], Decimal(t["px"]), "okx")
    assert len(set(by_id) - {trade_event_id("okx", t["inst"], i) for t in live for i in t["ids"]}) == 0
    if channel == "trades":  # both paths carried aggregated orders: live pushes and REST fills
        assert as_push > 0
        assert as_fills > 0
    assert fake.connections >= 3
    assert fake.subscriptions[0] == {
        "op": "subscribe",
        "args": [{"channel": channel, "instId": "BTC-USDT"}, {"channel": channel, "instId": "ETH-USDT"}],
    }
    assert sum(c.startswith(HISTORY_TRADES) and "after=" in c for c in fake.rest_calls) >= 2
    assert counter(metrics, "gap_filled", "okx") >= 140
    assert counter(metrics, "reconnects", "okx") >= 2
    dead = consume_all(kafka_bootstrap, f"{unique_name}-dlq", partitions=3)
    assert [orjson.loads(d.value())["raw"] for d in dead] == ["{not json"]  # the pongs were not


# -- simulator -----------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_a_simulated_okx_session_normalises_back_to_the_planted_trades() -> None:
    start = datetime(2026, 1, 5, 12, 0, 17, tzinfo=UTC)
    lines, truth = simulate(
        seed=8,
        minutes=40,
        rate=4,
        start=start,
        instruments={"okx": ["BTC-USDT", "ETH-USDT"]},
        equivalences={},
    )
    norm = normalizer("okx")
    trades: list[Trade] = []
    acks = 0
    for line in lines:
        assert line["exchange"] == "okx"
        out = norm.message(line["raw"], str(line["received_at"]))
        acks += not out
        trades += out
        for t in out:
            assert t.timestamp <= str(line["received_at"])
    assert acks == 2  # one subscribe ack per instrument, nothing else that is not a trade
    assert len(trades) > 4 * 40 * 60 * 0.9
    assert len({t.event_id for t in trades}) == len(trades)
    by_id = {t.event_id: t for t in trades}
    whales = truth["whales"]
    assert len(whales) >= 4
    for w in whales:
        t = by_id[w["event_id"]]
        assert (t.exchange, t.symbol, t.side, t.timestamp) == ("okx", w["symbol"], w["side"], w["timestamp"])
        assert t.quote_volume == Decimal(w["quote_volume"])
    raw = next(line["raw"] for line in lines if "data" in line["raw"])
    assert raw["arg"]["channel"] == "trades"
    assert raw["data"][0]["side"] in ("buy", "sell")
    assert EXCHANGES["okx"].native("BTC-USDT") == "BTC-USDT"
