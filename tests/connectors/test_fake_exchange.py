"""End to end against a local fake exchange: drops, serverShutdown, overlap -> every trade once in Kafka."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from coattail.contracts import loads_trade, trade_event_id
from coattail.settings import load_settings
from connectors.manager import ConnectorManager
from connectors.metrics import Metrics
from tests.connectors.fakes import (
    FakeExchange,
    Segment,
    binance_rest,
    binance_ws,
    consume_all,
    counter,
    happened,
)

pytestmark = pytest.mark.services
T0_MS = 1_763_900_000_000


def _binance_history(n: int, quiet_eth_until: int = 0) -> list[dict[str, Any]]:
    """Mixed BTC/ETH aggTrades; ETH is silent in [20, quiet_eth_until) (indexes < 20 are ETH history)."""
    rng = random.Random(1)
    counters = {"BTCUSDT": 7_000_000, "ETHUSDT": 3_000_000}
    out = []
    for i in range(n):
        native = "ETHUSDT" if i < 20 or (i >= quiet_eth_until and i % 3 == 0) else "BTCUSDT"
        counters[native] += 1  # aggregate ids increase per symbol
        out.append(
            {"_index": i, "s": native, "a": counters[native], "p": f"{37000 + rng.random() * 100:.8f}",
             "q": f"{rng.random():.8f}", "T": T0_MS + i * 7, "m": rng.random() < 0.5}
        )  # fmt: skip
    return out


def _coinbase_history(n: int) -> list[dict[str, Any]]:
    rng = random.Random(2)
    counters = {"BTC-USD": 90_000_000, "ETH-USD": 40_000_000}
    out = []
    for i in range(n):
        product = "BTC-USD" if i % 2 else "ETH-USD"
        counters[product] += 1
        ts = datetime.fromtimestamp(T0_MS / 1000 + i * 0.011, UTC).isoformat(timespec="microseconds")
        out.append(
            {"_index": i, "trade_id": counters[product], "product_id": product, "price": f"{3000 + rng.random():.2f}",  # noqa: E501
             "size": f"{rng.random() + 0.001:.8f}", "side": rng.choice(["buy", "sell"]),
             "time": ts.replace("+00:00", "Z")}
        )  # fmt: skip
    return out


def _coinbase_ws(t: dict[str, Any]) -> str:
    body = {"type": "match", "maker_order_id": "m", "taker_order_id": "t", "sequence": t["_index"] + 10}
    return orjson.dumps(body | {k: v for k, v in t.items() if not k.startswith("_")}).decode()


def _coinbase_rest(fake: FakeExchange, path: str, q: dict[str, list[str]]) -> tuple[int, dict[str, str], Any]:
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != "products" or parts[2] != "trades":
        return 404, {}, {"message": "NotFound"}
    rows = sorted((t for t in happened(fake) if t["product_id"] == parts[1]), key=lambda t: -t["trade_id"])
    if "after" in q:  # older than the cursor
        rows = [t for t in rows if t["trade_id"] < int(q["after"][0])]
    page = rows[: min(int(q.get("limit", ["100"])[0]), 40)]  # small pages: the client must follow cursors
    headers = {"CB-AFTER": str(page[-1]["trade_id"]), "CB-BEFORE": str(page[0]["trade_id"])} if page else {}
    body = [{k: t[k] for k in ("time", "trade_id", "price", "size", "side")} for t in page]
    return 200, headers, body


def _settings(
    fake: FakeExchange, exchange: str, bootstrap: str, topic: str, feed: str = "exchange_matches"
) -> Any:
    return load_settings(
        overrides={
            f"connectors.{exchange}.ws_url": fake.ws_url,
            f"connectors.{exchange}.rest_url": fake.rest_url,
            f"connectors.{exchange}.stale_after_seconds": 20,
            "connectors.coinbase.feed": feed,
            "stream.backend": "kafka",
            "stream.kafka.bootstrap_servers": bootstrap,
            "stream.kafka.topic": topic,
            "stream.kafka.dlq_topic": f"{topic}-dlq",
            "producer.status_port": 0,
            "reconnect.initial_backoff_seconds": 0.05,
            "reconnect.max_backoff_seconds": 0.5,
        }
    )


async def _run(fake: FakeExchange, settings: Any, plan: dict[str, list[str]], expected: int) -> Metrics:
    metrics = Metrics()
    manager = ConnectorManager(settings, plan, metrics=metrics)
    task = asyncio.create_task(manager.run())
    await asyncio.wait_for(fake.done.wait(), 180)
    deadline = asyncio.get_running_loop().time() + 120
    while (
        counter(metrics, "normalised", fake_name(plan)) < expected
        and asyncio.get_running_loop().time() < deadline
    ):
        await asyncio.sleep(0.05)  # event source is the connector task; poll its counter with a deadline
    manager.stop()
    assert await asyncio.wait_for(task, 120) == 0
    return metrics


def fake_name(plan: dict[str, list[str]]) -> str:
    return next(iter(plan))


def _assert_exactly_once(bootstrap: str, topic: str, expected_ids: set[str]) -> list[Any]:
    records = consume_all(bootstrap, topic, partitions=3)
    ids = [loads_trade(r.value()).event_id for r in records]
    assert len(ids) == len(set(ids)), "a trade was written twice"
    assert set(ids) == expected_ids, (
        f"missing {len(expected_ids - set(ids))}, unexpected {len(set(ids) - expected_ids)}"
    )
    for r in records:
        assert r.key().decode() == loads_trade(r.value()).symbol
    return records


def _run_binance(
    history: list[dict[str, Any]], segments: list[Segment], kafka_bootstrap: str, unique_name: str
) -> tuple[FakeExchange, Metrics]:
    """A Binance connector for BTC-USDT and ETH-USDT against the fake until all but 20 trades came."""
    fake = FakeExchange(history, binance_ws, binance_rest, segments)

    async def scenario() -> Metrics:
        await fake.start()
        try:
            settings = _settings(fake, "binance", kafka_bootstrap, unique_name)
            return await _run(fake, settings, {"binance": ["BTC-USDT", "ETH-USDT"]}, len(history) - 20)
        finally:
            await fake.stop()

    return fake, asyncio.run(scenario())


def test_binance_drop_and_server_shutdown_lose_and_double_nothing(
    kafka_bootstrap: str, unique_name: str
) -> None:
    # ETH trades before we connect (0..19) are history; ETH then stays silent until after the first
    # drop, so only the newest-id seed taken at connect time lets the gap fill recover its trades.
    history = _binance_history(600, quiet_eth_until=160)
    shutdown = orjson.dumps(
        {"stream": "btcusdt@aggTrade", "data": {"e": "serverShutdown", "E": T0_MS}}
    ).decode()
    depth = orjson.dumps(
        {"stream": "btcusdt@depth", "data": {"e": "depthUpdate", "s": "BTCUSDT", "b": []}}
    ).decode()
    segments = [
        Segment(release=20, send_from=20, send_to=150, end="abort"),
        # 150..299 happen while disconnected; this connection re-sends a little overlap too
        Segment(release=300, send_from=290, send_to=420, extra_after=[shutdown]),
        Segment(release=450, send_from=440, send_to=600, extra_before=["{not json", depth], end="hold"),
    ]
    fake, metrics = _run_binance(history, segments, kafka_bootstrap, unique_name)
    live = history[20:]
    expected = {trade_event_id("binance", t["s"][:3] + "-USDT", f"agg:{t['a']}") for t in live}
    records = _assert_exactly_once(kafka_bootstrap, unique_name, expected)
    sides = {loads_trade(r.value()).event_id: loads_trade(r.value()).side for r in records}
    for t in live:
        assert sides[trade_event_id("binance", t["s"][:3] + "-USDT", f"agg:{t['a']}")] == (
            "sell" if t["m"] else "buy"
        )
    assert fake.connections >= 3
    assert any(c.startswith("/api/v3/aggTrades") for c in fake.rest_calls)
    assert counter(metrics, "gap_filled", "binance") >= 150 + 20
    assert counter(metrics, "reconnects", "binance") >= 2
    dead = consume_all(kafka_bootstrap, f"{unique_name}-dlq", partitions=3)
    assert len(dead) == 1
    assert orjson.loads(dead[0].value())["raw"] == "{not json"


@pytest.mark.parametrize("feed", ["exchange_matches", "advanced_trade"])
def test_coinbase_drop_then_gap_fill_pages_with_cursors(
    kafka_bootstrap: str, unique_name: str, feed: str
) -> None:
    history = _coinbase_history(400)
    heartbeat = orjson.dumps({"type": "heartbeat", "sequence": 1, "last_trade_id": 1, "product_id": "BTC-USD",
                              "time": "2025-11-23T12:00:00.000000Z"}).decode()  # fmt: skip
    segments = [
        Segment(release=0, send_from=0, send_to=120, extra_before=[heartbeat], end="abort"),
        Segment(release=330, send_from=320, send_to=400, extra_before=[heartbeat], end="hold"),
    ]
    render = _coinbase_ws if feed == "exchange_matches" else _advanced_ws
    fake = FakeExchange(history, render, _coinbase_rest, segments, expect_subscribe=True)

    async def scenario() -> Metrics:
        await fake.start()
        try:
            settings = _settings(fake, "coinbase", kafka_bootstrap, unique_name, feed)
            settings = settings.model_copy(
                update={"connectors": settings.connectors | {"coinbase": settings.connectors["coinbase"].model_copy(  # noqa: E501
                    update={"advanced_ws_url": fake.ws_url})}}
            )  # fmt: skip
            return await _run(fake, settings, {"coinbase": ["BTC-USD", "ETH-USD"]}, len(history))
        finally:
            await fake.stop()

    metrics = asyncio.run(scenario())
    expected = {trade_event_id("coinbase", t["product_id"], t["trade_id"]) for t in history}
    records = _assert_exactly_once(kafka_bootstrap, unique_name, expected)
    maker = {trade_event_id("coinbase", t["product_id"], t["trade_id"]): t["side"] for t in history}
    for r in records:
        event = loads_trade(r.value())
        assert event.side != maker[event.event_id]  # taker is the opposite of the reported maker side
    sub = fake.subscriptions[0]
    assert sub["type"] == "subscribe"
    assert sub["product_ids"] == ["BTC-USD", "ETH-USD"]
    assert sum("after=" in c for c in fake.rest_calls) >= 2  # 200+ missing trades, 40 per page
    assert counter(metrics, "gap_filled", "coinbase") >= 200


def _advanced_ws(t: dict[str, Any]) -> str:
    row = {k: v for k, v in t.items() if not k.startswith("_")}
    row["trade_id"] = str(row["trade_id"])
    row["side"] = row["side"].upper()
    row["time"] = row["time"].replace("Z", "123Z")  # nanosecond precision on this feed
    events = [{"type": "update", "trades": [row]}]
    return orjson.dumps({"channel": "market_trades", "client_id": "", "timestamp": row["time"],
                         "sequence_num": t["_index"], "events": events}).decode()  # fmt: skip


def test_poison_messages_never_stop_a_live_connector(kafka_bootstrap: str, unique_name: str) -> None:
    """Every poison class of issue 18 on the live socket, between real trades: each becomes a dead
    letter with its reason, every trade still arrives exactly once, the connector keeps streaming."""
    history = _binance_history(120)
    agg = {"e": "aggTrade", "s": "BTCUSDT", "a": 1, "p": "1.5", "q": "2", "T": T0_MS, "m": True}
    poison = [
        agg | {"T": 253_402_300_799_999}, agg | {"T": T0_MS * 1000}, agg | {"T": 4_102_444_800_000},
        agg | {"p": "1e999999"}, agg | {"q": "1E+999999"}, agg | {"p": "1e999999999"}, agg | {"p": "١٢٣"},
        agg | {"p": "１２３"}, agg | {"q": "1_000"}, agg | {"a": True}, agg | {"a": []}, agg | {"e": {}},
        agg | {"e": "notATrade"}, agg | {"s": "BTCUSDT\n"}, {"stream": "x", "data": []},
    ]  # fmt: skip
    rendered = [orjson.dumps({"stream": "btcusdt@aggTrade", "data": m}).decode() for m in poison]
    rendered.append('{"stream":"btcusdt@aggTrade","data":{"e":"trade","t":' + "9" * 5000 + "}}")
    segments = [
        Segment(release=20, send_from=20, send_to=70, extra_after=rendered[:8]),  # then a dropped link
        Segment(release=70, send_from=70, send_to=120, extra_before=rendered[8:], end="hold"),
    ]
    _, metrics = _run_binance(history, segments, kafka_bootstrap, unique_name)
    expected = {trade_event_id("binance", t["s"][:3] + "-USDT", f"agg:{t['a']}") for t in history[20:]}
    _assert_exactly_once(kafka_bootstrap, unique_name, expected)
    dead = [orjson.loads(d.value()) for d in consume_all(kafka_bootstrap, f"{unique_name}-dlq", partitions=3)]
    assert len(dead) == len(rendered)
    assert counter(metrics, "dead_lettered", "binance") == len(rendered)
    assert all(d["reason"] and not d["reason"].startswith("internal error") for d in dead)
    assert sum("not JSON" in d["reason"] for d in dead) == 1  # the 5,000-digit id
