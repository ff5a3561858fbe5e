"""The pure Solana normaliser on jsonParsed blocks and transactions in mainnet form (tests/chains/fixtures).

The fixture block (slot 312000002) holds: a vote; 1.5 SOL sent with compute-budget instructions; a
USDC ``transferChecked`` of 1234.567891; a plain ``transfer`` of 250 USDT (mint only in the token
balances); a failed SOL transfer; a Raydium AMM v4 swapBaseIn 10 USDC -> 0.0421 SOL (inner
transfers, the trader's wSOL account); a Jupiter v6 route through an Orca Whirlpool 2 SOL -> 471.234567
USDC with a temporary wSOL account and a Jito tip.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from coattail.chains.tokens import load_registry
from coattail.chains.valuation import PriceBook
from coattail.contracts.onchain import NATIVE_TOKEN, OnchainEvent, solana_log_index
from connectors.solana.normalize import UNKNOWN_BLOCK_HASH, SolanaNormalizer
from connectors.trade import NormalizeError

pytestmark = pytest.mark.unit
FIXTURES = Path(__file__).parent / "fixtures"
AT = "2026-12-01T12:00:00.000000Z"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
USDT = "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB"
WSOL = "So11111111111111111111111111111111111111112"
ALICE, BOB = "9ax8kKBip5oWizkevpwvCuehyZhYDHaUaCztkR3gzChD", "HPVJkZCWGojk6xGLfKRMKu4o668jpyv5YTw3rkNmvnXb"
CAROL, DAVE = "FgNJaayEyxDCnGwnwsraVji4eNWmj5QcSsJ1F5CsM9fv", "C7dFYsgr9ioocMJrQHP6Fe7J9TJH3mcf2QDZWUQVAZsY"
ERIN, FRANK = "B8JQu5aFk1VdoibgqUzqPC4hhgfaCChNPonFwvjDL9uv", "Gfq6nu9EX2XEyzQAWP4uWuLpJ7j6jfEf6tbrmgNigUJh"
IVAN, JANE = "GcA7u8z8P8WHqtygVKDPB3f45fVeukKy2fCoMqKKMZ3N", "8E3jGuTwNC1tByJDmxiL6YsSfy4xg1rKMjitjNC6pRkk"
JANE_WSOL = "APu2jVEet8VT8DPbJHU5tqZuF8H3RfQ2WbdedhiCu8vT"
RAYDIUM_SOL_USDC = "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2"
JUPITER = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"
ORCA_SOL_USDC = "HJPjoWUrhoZzkNfRpHuieeFk9WcZWjwy6PBjZ81ngndJ"
JITO_TIP = "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def normalizer() -> SolanaNormalizer:
    return SolanaNormalizer(load_registry("solana"))


@pytest.fixture(scope="module")
def block_events(normalizer: SolanaNormalizer) -> list[OnchainEvent]:
    data = load("solana_block.json")
    result = normalizer.block(data["slot"], data["block"], AT)
    assert result.rejected == []
    assert result.notes == []
    return result.events


def of_tx(events: list[OnchainEvent], position: int) -> list[OnchainEvent]:
    sig = load("solana_block.json")["block"]["transactions"][position]["transaction"]["signatures"][0]
    return [e for e in events if e.tx_hash == sig]


def test_block_fields_come_from_the_block(block_events: list[OnchainEvent]) -> None:
    block = load("solana_block.json")["block"]
    assert {e.block_number for e in block_events} == {312000002}
    assert {e.block_hash for e in block_events} == {block["blockhash"]}
    assert {e.block_timestamp for e in block_events} == {datetime(2024, 12, 1, tzinfo=UTC)}
    assert all(e.blockchain == "solana" and e.usd_value is None for e in block_events)
    # 1 SOL + 1 USDC + 1 USDT + (2 inner + swap) Raydium + (SOL wrap, 2 inner, tip, swap) Jupiter
    assert len(block_events) == 11
    assert len({e.event_id for e in block_events}) == 11


def test_vote_and_failed_transactions_give_nothing(block_events: list[OnchainEvent]) -> None:
    assert of_tx(block_events, 0) == []
    assert of_tx(block_events, 4) == []  # meta.err is set: the 9 SOL never moved


def test_native_sol_transfer_is_lamports_over_1e9(block_events: list[OnchainEvent]) -> None:
    (event,) = of_tx(block_events, 1)
    assert event.event_type == "transfer"
    assert event.protocol is None
    assert (event.token, event.token_symbol, event.amount) == (NATIVE_TOKEN, "SOL", Decimal("1.500000000"))
    assert (event.from_address, event.to_address) == (ALICE, BOB)
    assert event.log_index == solana_log_index(2)  # after two compute-budget instructions


def test_transfer_checked_takes_mint_and_decimals_from_the_instruction(
    block_events: list[OnchainEvent],
) -> None:
    (event,) = of_tx(block_events, 2)
    assert (event.token, event.token_symbol, event.amount) == (USDC, "USDC", Decimal("1234.567891"))
    assert (event.from_address, event.to_address) == (CAROL, DAVE)  # the owners, not the token accounts
    assert event.trader == CAROL  # the fee payer
    assert event.log_index == 0


def test_plain_transfer_takes_the_mint_from_the_token_balances(block_events: list[OnchainEvent]) -> None:
    (event,) = of_tx(block_events, 3)
    assert (event.token, event.token_symbol, event.amount) == (USDT, "USDT", Decimal("250.000000"))
    assert (event.from_address, event.to_address) == (ERIN, FRANK)


def test_raydium_swap_from_the_signers_balances(block_events: list[OnchainEvent]) -> None:
    events = of_tx(block_events, 5)
    (swap,) = [e for e in events if e.event_type == "swap"]
    assert (swap.protocol, swap.pool, swap.trader) == ("raydium", RAYDIUM_SOL_USDC, IVAN)
    assert (swap.token_in, swap.token_in_symbol, swap.amount_in) == (USDC, "USDC", Decimal("10.000000"))
    assert (swap.token_out, swap.token_out_symbol, swap.amount_out) == (
        NATIVE_TOKEN,
        "SOL",
        Decimal("0.042100000"),
    )
    assert swap.log_index == solana_log_index(1)
    inner = sorted((e.log_index, e.token, e.amount) for e in events if e.event_type == "transfer")
    assert inner == [
        (solana_log_index(1, 0), USDC, Decimal("10.000000")),
        (solana_log_index(1, 1), WSOL, Decimal("0.042100000")),
    ]


def test_jupiter_route_is_one_jupiter_swap_without_the_tip(block_events: list[OnchainEvent]) -> None:
    events = of_tx(block_events, 6)
    (swap,) = [e for e in events if e.event_type == "swap"]
    # Jupiter is the outer DEX program (Orca runs beneath it); an aggregator's pool is its program id.
    assert (swap.protocol, swap.pool, swap.trader) == ("jupiter", JUPITER, JANE)
    assert (swap.token_in, swap.amount_in) == (NATIVE_TOKEN, Decimal("2.000000000"))
    assert (swap.token_out, swap.amount_out) == (USDC, Decimal("471.234567"))
    assert swap.log_index == solana_log_index(5)
    transfers = {e.log_index: e for e in events if e.event_type == "transfer"}
    assert sorted(transfers) == [
        solana_log_index(3),
        solana_log_index(5, 1),
        solana_log_index(5, 2),
        solana_log_index(7),
    ]
    wrap, tip = transfers[solana_log_index(3)], transfers[solana_log_index(7)]
    assert (wrap.from_address, wrap.to_address, wrap.amount) == (JANE, JANE_WSOL, Decimal("2.000000000"))
    assert (tip.to_address, tip.amount) == (JITO_TIP, Decimal("0.000100000"))
    # inner transferChecked (wSOL into the pool's vault; the temporary account is in no balance list)
    checked = transfers[solana_log_index(5, 1)]
    assert (checked.token, checked.amount, checked.to_address) == (
        WSOL,
        Decimal("2.000000000"),
        ORCA_SOL_USDC,
    )


def test_orca_whirlpool_swap_names_its_pool(normalizer: SolanaNormalizer) -> None:
    """The same route sent straight to the Orca program: the pool is the Whirlpool account."""
    data = load("solana_block.json")
    tx = copy.deepcopy(data["block"]["transactions"][6])
    inner = tx["meta"]["innerInstructions"][1]["instructions"]
    tx["transaction"]["message"]["instructions"][5] = inner[0] | {"stackHeight": None}
    del inner[0], inner[-1]
    events = normalizer.block(data["slot"], data["block"] | {"transactions": [tx]}, AT).events
    (swap,) = [e for e in events if e.event_type == "swap"]
    assert (swap.protocol, swap.pool, swap.amount_in, swap.amount_out) == (
        "orca", ORCA_SOL_USDC, Decimal("2.000000000"), Decimal("471.234567"),
    )  # fmt: skip


def test_two_tokens_in_is_no_swap(normalizer: SolanaNormalizer) -> None:
    """A liquidity add on a DEX program (two tokens fell, none rose) is noted, not called a swap."""
    data = load("solana_block.json")
    tx = copy.deepcopy(data["block"]["transactions"][5])
    post = tx["meta"]["postTokenBalances"]
    post[1]["uiTokenAmount"]["amount"] = "0"  # the wSOL account emptied as well
    tx["meta"]["postBalances"][2] = 2_039_280
    result = normalizer.block(data["slot"], data["block"] | {"transactions": [tx]}, AT)
    assert [e.event_type for e in result.events] == ["transfer", "transfer"]
    assert len(result.notes) == 1
    assert "without a clear swap" in result.notes[0]


def test_usd_value_from_the_price_book() -> None:
    book = PriceBook()
    book.update(
        "binance", "SOL-USDT", Decimal("235.10"), datetime(2024, 12, 1, tzinfo=UTC) - timedelta(seconds=3)
    )
    normalizer = SolanaNormalizer(load_registry("solana"), book)
    data = load("solana_block.json")
    events = normalizer.block(data["slot"], data["block"], AT).events
    sol = next(e for e in events if e.from_address == ALICE)
    assert sol.usd_value == Decimal("352.65")
    usdc = next(e for e in events if e.from_address == CAROL)
    assert usdc.usd_value == Decimal("1234.567891")
    swap = next(e for e in events if e.event_type == "swap" and e.protocol == "jupiter")
    assert swap.usd_value == Decimal("471.234567")  # the dollar side of the swap


def test_get_transaction_line(normalizer: SolanaNormalizer) -> None:
    (event,) = normalizer.line(load("solana_get_transaction.json"), AT)
    assert (event.block_number, event.block_hash, event.amount) == (
        312000002,
        UNKNOWN_BLOCK_HASH,
        Decimal("1234.567891"),
    )
    # the same transaction read from its block is the same event
    data = load("solana_block.json")
    from_block = normalizer.block(data["slot"], data["block"], AT).events
    assert event.event_id in {e.event_id for e in from_block}


def test_block_line(normalizer: SolanaNormalizer) -> None:
    assert len(normalizer.line(load("solana_block.json"), AT)) == 11


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ([1, 2], "line: expected a JSON object"),
        ({"blockhash": "x" * 43, "parentSlot": 5, "transactions": []}, "does not carry its slot"),
        ({"slot": -1, "block": {}}, "slot: expected a slot number"),
        ({"slot": 7, "block": {"blockhash": "abc", "blockTime": 1}}, "blockhash: expected a base58 hash"),
        ({"jsonrpc": "2.0", "result": None, "id": 1}, "result (null"),
        (
            {"jsonrpc": "2.0", "error": {"code": -32007, "message": "Slot 7 was skipped"}, "id": 1},
            "JSON-RPC error",
        ),
        ({"foo": 1}, "not a Solana getBlock"),
    ],
)
def test_bad_lines_say_why_in_one_line(normalizer: SolanaNormalizer, line: Any, reason: str) -> None:
    with pytest.raises(NormalizeError) as caught:
        normalizer.line(line, AT)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_block_time_null_is_refused(normalizer: SolanaNormalizer) -> None:
    data = load("solana_block.json")
    with pytest.raises(NormalizeError, match="blockTime"):
        normalizer.block(data["slot"], data["block"] | {"blockTime": None}, AT)


def test_a_malformed_transaction_is_rejected_and_the_rest_kept(normalizer: SolanaNormalizer) -> None:
    data = load("solana_block.json")
    block = copy.deepcopy(data["block"])
    block["transactions"][2]["transaction"]["message"]["instructions"][0]["parsed"]["info"]["tokenAmount"][
        "amount"
    ] = "-5"
    block["transactions"][3]["transaction"] = ["AQAB...", "base64"]
    result = normalizer.block(data["slot"], block, AT)
    assert len(result.events) == 9
    reasons = [r.reason for r in result.rejected]
    assert len(reasons) == 2
    assert "tokenAmount.amount: expected an unsigned 64-bit integer" in reasons[0]
    assert "jsonParsed" in reasons[1]
    # the block line as a whole is a dead letter with the first reason
    with pytest.raises(NormalizeError, match=r"tokenAmount\.amount"):
        normalizer.line({"slot": data["slot"], "block": block}, AT)


def test_bad_address_is_refused(normalizer: SolanaNormalizer) -> None:
    data = load("solana_block.json")
    block = copy.deepcopy(data["block"])
    block["transactions"][1]["transaction"]["message"]["instructions"][2]["parsed"]["info"]["destination"] = (
        "0OIl" * 10
    )
    result = normalizer.block(data["slot"], block, AT)
    assert "destination" in result.rejected[0].reason
    assert "base58" in result.rejected[0].reason


def test_token_2022_transfer_checked_with_fee_counts_the_gross_amount(normalizer: SolanaNormalizer) -> None:
    data = load("solana_block.json")
    tx = copy.deepcopy(data["block"]["transactions"][2])
    ix = tx["transaction"]["message"]["instructions"][0]
    ix["programId"], ix["program"] = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb", "spl-token-2022"
    ix["parsed"]["type"] = "transferCheckedWithFee"
    ix["parsed"]["info"]["feeAmount"] = {"amount": "1234", "decimals": 6, "uiAmountString": "0.001234"}
    (event,) = normalizer.block(data["slot"], data["block"] | {"transactions": [tx]}, AT).events
    assert (event.token, event.amount) == (USDC, Decimal("1234.567891"))
