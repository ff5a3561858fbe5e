"""Normalisation of realistic Binance/Coinbase messages, junk input and the `coattail normalize` CLI."""

from __future__ import annotations

import io
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.contracts import dumps, loads_trade, trade_event_id
from connectors.binance import BinanceNormalizer
from connectors.coinbase import CoinbaseNormalizer
from connectors.normalize_cli import run_normalize
from connectors.symbols import BinanceSymbols
from connectors.trade import EventIds, NormalizeError

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
RECEIVED = "2023-11-14T22:13:25.000Z"


def _lines(name: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def test_binance_aggtrade_taker_side_decimals_and_id() -> None:
    norm = BinanceNormalizer()
    [trade] = norm.message(_lines("binance.jsonl")[0], RECEIVED)
    assert trade.symbol == "BTC-USDT"
    assert trade.side == "sell"  # m: true -> buyer was maker -> taker sold
    assert trade.price == Decimal("37123.45000000")
    assert trade.quantity == Decimal("0.01234000")
    assert trade.quote_volume == Decimal("37123.45") * Decimal("0.01234")
    assert trade.timestamp == "2023-11-14T22:13:20.120Z"
    assert trade.event_id == trade_event_id("binance", "BTC-USDT", "agg:2934567812")
    assert trade.to_json() == dumps(trade.to_event())


def test_binance_trade_stream_uses_the_trade_id_space_and_buy_side() -> None:
    [trade] = BinanceNormalizer().message(_lines("binance.jsonl")[1], RECEIVED)
    assert (trade.symbol, trade.side, trade.trade_id) == ("ETH-USDT", "buy", "1234567890")
    assert trade.event_id == trade_event_id("binance", "ETH-USDT", "1234567890")
    assert trade.event_id != trade_event_id("binance", "ETH-USDT", "agg:1234567890")


def test_binance_bare_event_extra_fields_and_bundled_symbol_split() -> None:
    [trade] = BinanceNormalizer().message(_lines("binance.jsonl")[2], RECEIVED)
    assert trade.symbol == "SOL-FDUSD"
    assert trade.side == "buy"


@pytest.mark.parametrize("index", [3, 4, 5])
def test_binance_other_events_are_not_trades(index: int) -> None:
    assert BinanceNormalizer().message(_lines("binance.jsonl")[index], RECEIVED) == []


def test_binance_symbols_from_exchange_info_win() -> None:
    symbols = BinanceSymbols()
    symbols.load_exchange_info({"symbols": [{"symbol": "WBTCBTC", "baseAsset": "WBTC", "quoteAsset": "BTC"}]})
    assert symbols.normalise("WBTCBTC") == "WBTC-BTC"
    assert symbols.normalise("ethbtc") == "ETH-BTC"
    with pytest.raises(NormalizeError, match="cannot split"):
        symbols.normalise("FOOBAR")


def test_coinbase_match_reports_maker_side_so_taker_is_opposite() -> None:
    norm = CoinbaseNormalizer()
    lines = _lines("coinbase.jsonl")
    [sell_maker] = norm.message(lines[0], RECEIVED)
    assert sell_maker.side == "buy"
    assert sell_maker.timestamp == "2023-11-14T22:13:20.123456Z"
    assert sell_maker.quote_volume == Decimal("37123.45") * Decimal("0.00513")
    assert sell_maker.event_id == trade_event_id("coinbase", "BTC-USD", 592612421)
    [buy_maker] = norm.message(lines[1], RECEIVED)  # last_match
    assert buy_maker.side == "sell"
    assert buy_maker.timestamp == "2023-11-14T22:13:19.000Z"
    assert buy_maker.to_json() == dumps(buy_maker.to_event())


@pytest.mark.parametrize("index", [2, 3, 5])
def test_coinbase_non_trade_messages_are_skipped(index: int) -> None:
    assert CoinbaseNormalizer().message(_lines("coinbase.jsonl")[index], RECEIVED) == []


def test_coinbase_advanced_trade_batch_nanoseconds_and_side() -> None:
    trades = CoinbaseNormalizer().message(_lines("coinbase.jsonl")[4], RECEIVED)
    assert [t.side for t in trades] == ["sell", "buy"]  # market_trades side is the maker's too
    assert trades[0].timestamp == "2023-11-14T22:13:22.261731Z"  # ns truncated to µs
    assert trades[1].quantity == Decimal("0.00000001")
    # Same trade id as the Exchange feed and REST give the same event id.
    assert trades[0].event_id == trade_event_id("coinbase", "BTC-USD", 592612422)
    for t in trades:
        assert loads_trade(t.to_json()) == t.to_event()


JUNK = [
    ('{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1.0"', "not JSON"),
    ('{"e":"aggTrade","s":"BTCUSDT","a":1,"q":"1","T":1,"m":true}', "p: missing"),
    ('{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"-5","q":"1","T":1,"m":true}', "positive"),
    ('{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"NaN","q":"1","T":1,"m":true}', "positive finite"),
    ('{"e":"aggTrade","s":"BTCUSDT","a":1,"p":1.5,"q":"1","T":1,"m":true}', "floats"),
    ('{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1","q":"1","T":1,"m":"yes"}', "m: expected a boolean"),
    ('{"e":"trade","s":"BTCUSDT","p":"1","q":"1","T":1,"m":true}', "t: expected"),
    ('{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1","q":"1","T":"soon","m":true}', "T: expected"),
    ("[1, 2, 3]", "expected a JSON object"),
]


@pytest.mark.parametrize(("line", "reason"), JUNK)
def test_binance_junk_goes_to_dead_letter_with_reason(line: str, reason: str) -> None:
    out = io.BytesIO()
    dlq = io.BytesIO()
    counts = run_normalize(io.BytesIO(line.encode() + b"\n"), out, "binance", dlq)
    assert counts["malformed"] == 1
    assert out.getvalue() == b""
    letter = orjson.loads(dlq.getvalue())
    assert reason in letter["reason"]
    assert letter["raw"] == line


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (
            {
                "type": "match",
                "trade_id": 1,
                "price": "1",
                "size": "1",
                "side": "up",
                "product_id": "BTC-USD",
            },
            "side",
        ),
        (
            {
                "type": "match",
                "trade_id": 1,
                "price": "1",
                "size": "0",
                "side": "buy",
                "product_id": "BTC-USD",
            },
            "size",
        ),
        (
            {"type": "match", "price": "1", "size": "1", "side": "buy", "product_id": "BTC-USD", "time": "x"},
            "trade_id",
        ),
        (
            {
                "type": "match",
                "trade_id": 1,
                "price": "1",
                "size": "1",
                "side": "buy",
                "product_id": "btc_usd",
            },
            "symbol",
        ),
        (
            {
                "type": "match",
                "trade_id": 1,
                "price": "1",
                "size": "1",
                "side": "buy",
                "product_id": "BTC-USD",
                "time": "2023-11-14T22:13:20",
            },
            "UTC offset",
        ),
        ({"channel": "market_trades", "events": [{"type": "update"}]}, "trades"),
    ],
)
def test_coinbase_junk_raises_with_reason(msg: dict[str, object], reason: str) -> None:
    with pytest.raises(NormalizeError, match=reason):
        CoinbaseNormalizer().message(msg, RECEIVED)


@settings(max_examples=200, deadline=None)
@given(
    trade_id=st.integers(min_value=0, max_value=2**53),
    price=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**7), places=8),
    qty=st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**5), places=8),
    maker=st.booleans(),
    t_ms=st.integers(min_value=0, max_value=4_102_444_800_000),
)
def test_fast_path_equals_the_validated_contract(
    trade_id: int, price: Decimal, qty: Decimal, maker: bool, t_ms: int
) -> None:
    msg = {
        "e": "aggTrade",
        "s": "ETHBTC",
        "a": trade_id,
        "p": f"{price:f}",
        "q": f"{qty:f}",
        "T": t_ms,
        "m": maker,
    }
    [trade] = BinanceNormalizer().message(msg, RECEIVED)
    assert trade.to_json() == dumps(trade.to_event())
    assert EventIds("binance", "ETH-BTC")(f"agg:{trade_id}") == trade_event_id(
        "binance", "ETH-BTC", f"agg:{trade_id}"
    )


def test_normalize_cli_envelopes_bare_and_malformed(tmp_path: Path) -> None:
    envelope = orjson.dumps(
        {"exchange": "coinbase", "received_at": RECEIVED, "raw": _lines("coinbase.jsonl")[0]}
    )
    stdin = b"\n".join([envelope, (FIXTURES / "binance.jsonl").read_bytes().splitlines()[0], b"{broken", b""])
    dead = tmp_path / "dead.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "coattail", "normalize", "--dead-letter", str(dead)],
        input=stdin, capture_output=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [loads_trade(line) for line in result.stdout.splitlines()]
    assert [e.exchange for e in events] == ["coinbase"]  # the bare binance line needs --exchange
    assert events[0].ingestion_timestamp.isoformat().startswith("2023-11-14T22:13:25")
    assert "2 malformed" in result.stderr.decode()
    reasons = [orjson.loads(line)["reason"] for line in dead.read_text().splitlines()]
    assert any("--exchange" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)

    only_binance = subprocess.run(
        [sys.executable, "-m", "coattail", "normalize", "--exchange", "binance"],
        input=(FIXTURES / "binance.jsonl").read_bytes(), capture_output=True, cwd=REPO, timeout=120, check=False,  # noqa: E501
    )  # fmt: skip
    assert only_binance.returncode == 0
    assert len(only_binance.stdout.splitlines()) == 3
