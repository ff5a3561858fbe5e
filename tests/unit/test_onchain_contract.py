"""OnchainEvent contract, token registry and valuation: exact amounts, deterministic ids, null prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from coattail.chains.tokens import Token, TokenRegistryError, load_registry, scale
from coattail.chains.valuation import PriceBook, usd_value, value_event
from coattail.contracts import ContractError, OnchainEvent, dumps, loads_onchain, onchain_event_id
from coattail.contracts.onchain import NATIVE_TOKEN, solana_log_index
from coattail.contracts.spark import spark_schema

USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
PAIR = "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _transfer(**over: object) -> OnchainEvent:
    fields: dict[str, object] = {
        "blockchain": "ethereum", "block_number": 19_000_000, "block_hash": "0x" + "ab" * 32,
        "block_timestamp": T0, "tx_hash": "0x" + "CD" * 32, "log_index": 7, "event_type": "transfer",
        "from_address": "0x" + "11" * 20, "to_address": "0x" + "22" * 20, "token": USDC,
        "token_symbol": "USDC", "amount": "1250000.5", "ingestion_timestamp": T0 + timedelta(seconds=30),
    }  # fmt: skip
    fields.update(over)
    return OnchainEvent.create(**fields)


def _swap(**over: object) -> OnchainEvent:
    fields: dict[str, object] = {
        "blockchain": "ethereum", "block_number": 19_000_000, "block_hash": "0x" + "ab" * 32,
        "block_timestamp": T0, "tx_hash": "0x" + "ef" * 32, "log_index": 12, "event_type": "swap",
        "protocol": "uniswap-v2", "pool": PAIR, "trader": "0x" + "33" * 20, "token_in": WETH,
        "token_in_symbol": "WETH", "amount_in": "10", "token_out": USDC, "token_out_symbol": "USDC",
        "amount_out": "30123.456789", "ingestion_timestamp": T0 + timedelta(seconds=30),
    }  # fmt: skip
    fields.update(over)
    return OnchainEvent.create(**fields)


def test_event_id_is_chain_tx_and_index_and_ignores_hex_case() -> None:
    event = _transfer()
    assert event.event_id == onchain_event_id("ethereum", "0x" + "cd" * 32, 7)
    assert _transfer(block_hash="0x" + "99" * 32).event_id == event.event_id  # same log after a re-read
    assert _transfer(log_index=8).event_id != event.event_id
    # Solana signatures are base58: case is part of the value.
    assert onchain_event_id("solana", "5abC", 0) != onchain_event_id("solana", "5ABC", 0)


def test_round_trip_is_exact_and_the_spark_schema_follows_the_model() -> None:
    event = _swap(reserve_in="1234.000000000000000001", reserve_out="3702000.123456")
    again = loads_onchain(dumps(event))
    assert again == event
    assert again.reserve_in == Decimal("1234.000000000000000001")
    schema = spark_schema(OnchainEvent)
    assert schema.fieldNames() == list(OnchainEvent.model_fields)
    assert schema["amount_in"].dataType.simpleString() == "decimal(38,18)"
    assert schema["usd_value"].nullable
    assert not schema["block_number"].nullable


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": "-1"}, "amount"),
        ({"amount": None}, "a transfer needs token and amount"),
        ({"blockchain": "bitcoin"}, "blockchain"),
        ({"event_type": "mint"}, "event_type"),
        ({"amount": 1.5}, "floats are not accepted"),
    ],
)
def test_a_bad_event_is_one_line(change: dict[str, object], message: str) -> None:
    payload = _transfer().model_dump(mode="json") | change
    with pytest.raises(ContractError, match=message) as info:
        loads_onchain(__import__("orjson").dumps(payload))
    assert "\n" not in str(info.value)


def test_a_swap_needs_both_sides_and_its_pool() -> None:
    with pytest.raises(ValueError, match="needs token_in, amount_in, token_out and amount_out"):
        _swap(amount_out=None)
    with pytest.raises(ValueError, match="needs protocol and pool"):
        _swap(pool=None)


def test_solana_instruction_positions_do_not_collide() -> None:
    seen = {solana_log_index(i, j) for i in range(3) for j in (None, 0, 1, 997)}
    assert len(seen) == 12
    assert solana_log_index(2) == 2000
    assert solana_log_index(2, 0) == 2001


def test_scale_is_exact_for_6_and_18_decimals() -> None:
    assert scale(1_234_567, 6) == Decimal("1.234567")
    assert scale(10**18 + 1, 18) == Decimal("1.000000000000000001")
    with pytest.raises(ValueError, match="19 decimals is not supported"):
        scale(1, 19)


def test_the_shipped_registries_and_an_operator_file_on_top(tmp_path: Path) -> None:
    eth = load_registry("ethereum")
    assert eth.token(USDC.lower()) == Token("ethereum", USDC, "USDC", 6, "usd")
    assert eth.token(NATIVE_TOKEN) == Token("ethereum", NATIVE_TOKEN, "ETH", 18, "binance:ETH-USDT")
    pool = eth.pool(PAIR.upper().replace("0X", "0x"))
    assert pool is not None
    assert (pool.token0, pool.token1) == (USDC, WETH)
    sol = load_registry("solana")
    assert sol.token("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v").decimals == 6
    assert sol.token("epjfwdd5aufqssqem2qn1xzybapc8g4wegGkzwytdt1v") is None  # base58 is case-sensitive
    assert sol.program("JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4") == "jupiter"
    extra = tmp_path / "local.yaml"
    extra.write_text("tokens:\n  '0x" + "aa" * 20 + "': {symbol: TUSD, decimals: 6, price_ref: usd}\n")
    merged = load_registry("ethereum", [extra])
    assert merged.token("0x" + "AA" * 20).symbol == "TUSD"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tokens:\n  '0x1': {symbol: X, decimals: 30}\n", "decimals must be an integer 0..18"),
        ("tokens:\n  '0x1': {symbol: X, decimals: 6, price_ref: 'coinbase'}\n", "price_ref 'coinbase'"),
        ("tokens:\n  '0x1': {symbol: X, decimals: 6, colour: red}\n", "unknown key 'colour'"),
        ("pools: [1, 2]\n", "pools: expected a mapping"),
        ("tokens: {", "not valid YAML"),
    ],
)
def test_a_bad_token_file_names_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TokenRegistryError, match=message):
        load_registry("ethereum", [path])


def test_price_book_reads_the_last_price_before_the_block_and_not_a_stale_one() -> None:
    book = PriceBook(max_age=timedelta(minutes=5))
    book.update("binance", "ETH-USDT", Decimal("3000"), T0 - timedelta(minutes=2))
    book.update("binance", "ETH-USDT", Decimal("3010"), T0 + timedelta(seconds=1))  # after the block
    book.update("binance", "ETH-USDT", Decimal("2990"), T0 - timedelta(minutes=1))  # a gap fill, late
    assert book.price("binance:ETH-USDT", T0) == Decimal("2990")
    assert book.price("binance:ETH-USDT", T0 + timedelta(minutes=7)) is None  # 6 min old: stale
    assert book.price("binance:ETH-USDT", T0 - timedelta(minutes=3)) is None  # nothing before
    assert book.price("usd", T0) == 1
    assert book.price(None, T0) is None
    book.update(
        "coinbase", "SOL-USD", Decimal("150"), T0
    )  # the reference venue has none: same base in dollars
    assert book.price("binance:SOL-USDT", T0) == Decimal("150")


def test_usd_value_per_event_kind() -> None:
    eth = load_registry("ethereum")
    book = PriceBook()
    assert usd_value(_transfer(), eth, book) == Decimal("1250000.5")  # a stablecoin needs no price
    weth = _transfer(token=WETH, token_symbol="WETH", amount="2")
    assert usd_value(weth, eth, book) is None  # no price yet: null, never 0
    book.update("binance", "ETH-USDT", Decimal("3000.25"), T0 - timedelta(seconds=3))
    assert usd_value(weth, eth, book) == Decimal("6000.5")
    assert usd_value(_swap(), eth, book) == Decimal("30123.456789")  # the dollar side
    liq = _swap(event_type="liquidity_add", token_in=USDC, amount_in="3000", token_out=WETH, amount_out="1")
    assert usd_value(liq, eth, book) == Decimal("6000.25")
    unknown = _transfer(token="0x" + "77" * 20, token_symbol=None)
    assert usd_value(unknown, eth, book) is None
    assert value_event(weth, eth, book).usd_value == Decimal("6000.5")


def test_derived_prices_are_rounded_to_the_lakes_18_digits() -> None:
    event = _swap(price_before="0.0003319000000000000004999", price_after="3012.5")
    assert event.price_before == Decimal("0.000331900000000000")
    assert event.price_after == Decimal("3012.5")


def test_big_values_are_exact_and_beyond_the_lake_none() -> None:
    eth = load_registry("ethereum")
    book = PriceBook()
    book.update("binance", "ETH-USDT", Decimal("3000.123456789012345678"), T0)
    # 10M ETH: 29 significant digits at 18 fraction digits (the default decimal context keeps 28).
    whale = _transfer(token=WETH, token_symbol="WETH", amount="10000000.000000000000000001")
    assert usd_value(whale, eth, book) == Decimal("30001234567.890123456780003000")
    absurd = _transfer(token=WETH, token_symbol="WETH", amount="99999999999999999999")
    assert usd_value(absurd, eth, book) is None  # beyond the lake's 20 integer digits: no figure
    big = _swap(price_after="12345678901234567.123456789012345678901")
    assert big.price_after == Decimal("12345678901234567.123456789012345679")
