"""Normalisation of realistic Binance/Coinbase messages, junk input and the `coattail normalize` CLI."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coattail.contracts import dumps, loads_trade, trade_event_id
from coattail.contracts.trade import FUTURE_MARGIN_SECONDS
from coattail.contracts.types import format_utc
from connectors.base import DEAD_LETTER_RAW_MAX_CHARS, DeadLetter
from connectors.binance import BinanceNormalizer, BinanceSymbols
from connectors.coinbase import CoinbaseNormalizer
from connectors.normalize_cli import run_normalize
from connectors.trade import FLOOR_MS, EventIds, NormalizeError

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]
RECEIVED = "2023-11-14T22:13:25.000000Z"


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
    assert trade.timestamp == "2023-11-14T22:13:20.120000Z"
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
    assert buy_maker.timestamp == "2023-11-14T22:13:19.000000Z"
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
    assert counts["dead_lettered"] == counts["lines"] == 1
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
    t_ms=st.integers(min_value=FLOOR_MS, max_value=4_102_444_800_000),
    lag_ms=st.integers(min_value=-(FUTURE_MARGIN_SECONDS - 1) * 1000, max_value=10**9),
)
def test_fast_path_equals_the_validated_contract(
    trade_id: int, price: Decimal, qty: Decimal, maker: bool, t_ms: int, lag_ms: int
) -> None:
    received = datetime.fromtimestamp(max(FLOOR_MS, t_ms + lag_ms) / 1000, UTC)
    msg = {
        "e": "aggTrade",
        "s": "ETHBTC",
        "a": trade_id,
        "p": f"{price:f}",
        "q": f"{qty:f}",
        "T": t_ms,
        "m": maker,
    }
    [trade] = BinanceNormalizer().message(msg, format_utc(received))
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
    assert "3 lines: 1 trades from 1 lines, 0 ignored" in result.stderr.decode()
    assert "2 dead-lettered" in result.stderr.decode()
    reasons = [orjson.loads(line)["reason"] for line in dead.read_text().splitlines()]
    assert any("--exchange" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)

    only_binance = subprocess.run(
        [sys.executable, "-m", "coattail", "normalize", "--exchange", "binance"],
        input=(FIXTURES / "binance.jsonl").read_bytes(), capture_output=True, cwd=REPO, timeout=120, check=False,  # noqa: E501
    )  # fmt: skip
    assert only_binance.returncode == 0
    assert len(only_binance.stdout.splitlines()) == 3


# -- issue 18: poison messages, one class each ---------------------------------------------------------
def _agg(**fields: object) -> dict[str, object]:
    return {
        "e": "aggTrade",
        "s": "BTCUSDT",
        "a": 1,
        "p": "1.5",
        "q": "2",
        "T": 1_700_000_000_000,
        "m": True,
    } | fields


def _match(**fields: object) -> dict[str, object]:
    base = {"type": "match", "trade_id": 1, "product_id": "BTC-USD", "price": "1", "size": "1", "side": "buy",
            "time": "2023-11-14T22:13:20.123456Z"}  # fmt: skip
    return base | fields


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_agg(T=253_402_300_799_999), "T: 253402300799999 ms is outside [2009-01-03"),  # 9999-12-31
        (_agg(T=1_700_000_000 * 1_000_000), "outside"),  # epoch seconds read as ms... times 1000: year 55k
        (_agg(T=4_102_444_800_000), "T: 2100-01-01T00:00:00.000000Z is more than 300 s after received_at"),
        (_agg(T=1_230_940_799_999), "outside [2009-01-03"),  # just before the floor
        (_agg(p="1e999999"), "scientific notation"),
        (_agg(p="1E+999999"), "scientific notation"),
        (_agg(q="1e999999999"), "scientific notation"),
        (_agg(p="١٢٣"), "not a plain decimal"),  # Arabic-Indic digits: Decimal() would accept them
        (_agg(p="１２３"), "not a plain decimal"),  # full-width digits
        (_agg(q="1_000"), "not a plain decimal"),
        (_agg(p="9" * 21), "more than 20 integer or 18 fraction digits"),
        (_agg(p="0." + "0" * 18 + "1"), "more than 20 integer or 18 fraction digits"),
        (_agg(p="9" * 5000), "longer than 39 characters"),
        (_agg(p="9" * 15, q="9" * 15), "more than 20 integer digits"),  # price × quantity
        (_agg(a=True), "a: expected a non-negative integer trade id below 2^63"),
        (_agg(a=[]), "a: expected a non-negative integer trade id"),
        (_agg(a=2**63), "below 2^63"),
        (_agg(s="BTCUSDT\n"), "cannot split"),
        (_agg(e={}), "e: unknown message type '{}'"),
        (_agg(e="bookTicker2"), "unknown message type 'bookTicker2'"),
        ({"u": 1, "s": "BTCUSDT"}, "unknown message type 'None'"),
    ],
)
def test_binance_poison_is_refused_with_its_reason(msg: dict[str, object], reason: str) -> None:
    with pytest.raises(NormalizeError) as err:
        BinanceNormalizer().message(msg, RECEIVED)
    assert reason in str(err.value)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_match(time="9999-12-31T23:59:59.000000Z"), "time: 9999-12-31T23:59:59.000000Z is outside"),
        (_match(time="9999-12-31T23:59:59-05:00"), "outside the representable range"),  # OverflowError
        (_match(time="0001-01-01T00:00:00+01:00"), "outside the representable range"),
        (_match(time="2100-01-01T00:00:00Z"), "more than 300 s after received_at"),
        (_match(time="2023-11-14T22:18:25.000000Z"), "more than 300 s after received_at"),
        (_match(time="2023-11-14 22:13:20.123456Z"), ""),  # canonicalised, not passed on with a space
        (_match(price="1E+999999"), "scientific notation"),
        (_match(size="١"), "not a plain decimal"),
        (_match(size="1_000"), "not a plain decimal"),
        (_match(product_id="BTC-USD\n"), "symbol: 'BTC-USD\\n' is not BASE-QUOTE"),
        (_match(trade_id="9" * 5000), "trade_id: expected a non-negative integer id below 2^63"),
        (_match(trade_id=True), "trade_id"),
        (_match(trade_id=[]), "trade_id"),
        (_match(trade_id="١٢"), "trade_id"),
        (_match(type={}), "unknown message"),  # unhashable: must not reach a set lookup
        (_match(type=[]), "unknown message"),
        (_match(type="done2"), "unknown message type 'done2'"),
        ({"channel": {}, "events": []}, "unknown message channel '{}'"),
    ],
)
def test_coinbase_poison_is_refused_with_its_reason(msg: dict[str, object], reason: str) -> None:
    norm = CoinbaseNormalizer()
    if not reason:
        [trade] = norm.message(msg, RECEIVED)
        assert trade.timestamp == "2023-11-14T22:13:20.123456Z"
        return
    with pytest.raises(NormalizeError) as err:
        norm.message(msg, RECEIVED)
    assert reason in str(err.value)


def test_a_trade_up_to_the_margin_after_receipt_is_kept_and_passes_the_contract() -> None:
    [b] = BinanceNormalizer().message(_agg(T=1_700_000_299_999), "2023-11-14T22:13:20.000000Z")
    [c] = CoinbaseNormalizer().message(
        _match(time="2023-11-14T22:18:19.999999Z"), "2023-11-14T22:13:20.500000Z"
    )
    for trade in (b, c):
        assert loads_trade(trade.to_json()) == trade.to_event()


def test_known_control_messages_are_ignored_and_unknown_ones_are_not() -> None:
    assert BinanceNormalizer().message({"result": None, "id": 7}, RECEIVED) == []
    assert BinanceNormalizer().message({"stream": "x", "data": {"e": "24hrTicker"}}, RECEIVED) == []
    assert CoinbaseNormalizer().message({"type": "subscriptions", "channels": []}, RECEIVED) == []
    assert CoinbaseNormalizer().message({"channel": "heartbeats", "events": []}, RECEIVED) == []
    with pytest.raises(NormalizeError, match="unknown message"):
        CoinbaseNormalizer().message({"hello": "world"}, RECEIVED)


def _envelope(exchange: object, raw: object, received_at: object = RECEIVED) -> bytes:
    return orjson.dumps({"exchange": exchange, "received_at": received_at, "raw": raw})


def test_every_line_is_accounted_for_once_including_batches_and_case() -> None:
    batch = _lines("coinbase.jsonl")[4]  # two trades in one line
    lines = [
        _envelope("coinbase", batch),
        _envelope("Binance", _agg(a=5)),  # exchange name in another case: normalised, not dropped
        _envelope("COINBASE", {"type": "heartbeat"}),
        _envelope("binance", {"e": "somethingNew"}),
        _envelope("bitfinexx", _agg()),
        _envelope("binance", _agg(), "9999-12-31T23:59:59-05:00"),
        _envelope("binance", _agg(), "0001-01-01T00:00:00+01:00"),
        b"",
        b"{broken",
    ]
    out, dlq = io.BytesIO(), io.BytesIO()
    counts = run_normalize(io.BytesIO(b"\n".join(lines) + b"\n"), out, None, dlq)
    assert counts == {"lines": 9, "trades": 3, "trade_lines": 2, "ignored": 2, "dead_lettered": 5}
    assert [loads_trade(t).exchange for t in out.getvalue().splitlines()] == [
        "coinbase",
        "coinbase",
        "binance",
    ]
    reasons = [orjson.loads(line)["reason"] for line in dlq.getvalue().splitlines()]
    assert reasons[0] == "e: unknown message type 'somethingNew'"
    assert reasons[1].startswith("unknown exchange 'bitfinexx'")
    assert reasons[2] == "received_at: '9999-12-31T23:59:59-05:00' is outside the representable range"
    assert "outside the representable range" in reasons[3]
    assert reasons[4].startswith("not JSON")
    # With --exchange, envelopes of the other exchange are ignored (counted), "Binance" still matches.
    counts = run_normalize(io.BytesIO(b"\n".join(lines) + b"\n"), io.BytesIO(), "binance", None)
    assert counts["trade_lines"] == 1
    assert counts["trade_lines"] + counts["ignored"] + counts["dead_lettered"] == counts["lines"] == 9


def test_a_ninety_byte_bomb_stays_small() -> None:
    line = b'{"exchange":"binance","raw":{"e":"aggTrade","s":"BTCUSDT","a":1,"p":"1e999999999","q":"1"}}'
    assert len(line) <= 100
    out, dlq = io.BytesIO(), io.BytesIO()
    assert run_normalize(io.BytesIO(line), out, None, dlq)["dead_lettered"] == 1
    assert len(dlq.getvalue()) < 400


def test_dead_letters_are_bounded_so_the_stream_accepts_them() -> None:
    letter = DeadLetter.of("binance", "not JSON", b"x" * (DEAD_LETTER_RAW_MAX_CHARS + 10), RECEIVED)
    assert len(letter.raw) == DEAD_LETTER_RAW_MAX_CHARS
    assert (
        letter.reason
        == f"not JSON (raw cut to {DEAD_LETTER_RAW_MAX_CHARS} of {DEAD_LETTER_RAW_MAX_CHARS + 10} characters)"
    )
