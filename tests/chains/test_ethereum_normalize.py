"""The pure Ethereum normaliser on hand-checked log objects in mainnet form (tests/chains/fixtures).

The fixture is one block of the mainnet USDC/WETH Uniswap V2 pair 0xB4e16d01…C9Dc (token0 USDC, 6
decimals; token1 WETH, 18) plus the USDC/WETH 0.05 % V3 pool: a WETH->USDC swap, a USDC->WETH swap,
a native ETH transfer, a liquidity add, a V3 swap, an NFT transfer and a token the registry does not
list. Every expected figure below is worked out here from the raw integers in the fixture, with the
Uniswap formulas, not read back from the normaliser.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from coattail.chains.tokens import load_registry
from coattail.chains.valuation import PriceBook
from coattail.contracts.codec import dumps, loads_onchain
from coattail.contracts.onchain import NATIVE_LOG_INDEX, NATIVE_TOKEN, OnchainEvent
from coattail.contracts.trade import TradeEvent
from connectors.chain_lines import load_price_book, run_normalize
from connectors.ethereum import abi
from connectors.ethereum.normalize import EthereumNormalizer, UnknownTokenError

FIXTURE = Path(__file__).parent / "fixtures" / "ethereum_mainnet.jsonl"
PAIR = "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"
V3_POOL = "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
ROUTER = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
TRADER = "0x1f9090aaE28b8a3dCeaDf281B0F12828e676c326"
WHALE = "0x28C6c06298d514Db089934071355E5743bf21d60"
BLOCK_TIME = datetime.fromtimestamp(1693066895, UTC)  # the fixture block's timestamp 0x64ea268f
ETH_USDT = Decimal("1650.12")
# The pair's reserves before the block (raw): 31,234,567.891234 USDC and 18,765.432109876543210987 WETH.
R0, R1 = 31_234_567_891_234, 18_765_432_109_876_543_210_987


def lines() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text().splitlines()]


def book() -> PriceBook:
    prices = PriceBook()
    prices.update("binance", "ETH-USDT", ETH_USDT, datetime(2023, 8, 26, 16, 20, tzinfo=UTC))
    return prices


def lp_token_file(tmp_path: Path) -> Path:
    """The pair's own LP token (UNI-V2, 18 decimals): not in the shipped registry, so a token file."""
    path = tmp_path / "lp.yaml"
    path.write_text(f'tokens:\n  "{PAIR}": {{symbol: UNI-V2, decimals: 18}}\n')
    return path


def run(norm: EthereumNormalizer) -> tuple[list[OnchainEvent], list[str]]:
    events, errors = [], []
    for obj in lines():
        try:
            events += norm.normalize_line(obj)
        except ValueError as exc:
            errors.append(str(exc))
    return events, errors


def by_index(events: list[OnchainEvent]) -> dict[tuple[str, int], OnchainEvent]:
    return {(e.tx_hash, e.log_index): e for e in events}


def constant_product_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    with_fee = amount_in * 997
    return with_fee * reserve_out // (reserve_in * 1000 + with_fee)


def test_weth_to_usdc_swap_has_exact_amounts_direction_reserves_prices_and_usd_value(tmp_path: Path) -> None:
    events, _ = run(normalizer([lp_token_file(tmp_path)], book()))
    swaps = [e for e in events if e.event_type == "swap" and e.pool == PAIR]
    first = swaps[0]
    # 1.5 WETH in (amount1In); USDC out by the constant-product formula with the 0.3 % fee.
    out = constant_product_out(1_500_000_000_000_000_000, R1, R0)
    assert out == 2_489_022_031
    assert (first.token_in, first.token_in_symbol, first.amount_in) == (WETH, "WETH", Decimal("1.5"))
    assert (first.token_out, first.token_out_symbol, first.amount_out) == (
        USDC,
        "USDC",
        Decimal("2489.022031"),
    )
    assert str(first.amount_in) == "1.500000000000000000"  # exactly 18 decimals, no float on the way
    assert (first.protocol, first.trader, first.from_address, first.to_address) == (
        "uniswap-v2",
        TRADER,
        ROUTER,
        TRADER,
    )
    # Reserves after (from the Sync before the Swap): in = WETH, out = USDC.
    assert first.reserve_in == Decimal("18766.932109876543210987")
    assert first.reserve_out == Decimal("31232078.869203")
    # Marginal prices, USDC per WETH: before = R0/R1, after = the Sync's reserves, both decimal-adjusted.
    assert first.price_before == Decimal("1664.473682692057687781")
    assert first.price_before == round(Decimal(R0) / 10**6 / (Decimal(R1) / 10**18), 18)
    assert first.price_after == Decimal("1664.208016864214988521")
    assert first.price_after < first.price_before  # selling WETH into the pool cheapens WETH
    assert first.usd_value == Decimal("2489.022031")  # the dollar side: the USDC received
    assert (first.block_number, first.block_timestamp, first.log_index) == (18_000_000, BLOCK_TIME, 13)


def test_usdc_to_weth_swap_goes_the_other_way_and_is_priced_from_the_previous_reserves(
    tmp_path: Path,
) -> None:
    events, _ = run(normalizer([lp_token_file(tmp_path)], book()))
    second = [e for e in events if e.event_type == "swap" and e.pool == PAIR][1]
    r0, r1 = R0 - 2_489_022_031, R1 + 1_500_000_000_000_000_000  # after the first swap
    out = constant_product_out(5_000_000_000, r0, r1)
    assert (second.token_in_symbol, second.amount_in) == ("USDC", Decimal("5000"))
    assert (second.token_out_symbol, second.amount_out) == ("WETH", Decimal(out).scaleb(-18))
    assert second.amount_out == Decimal("2.994940784430439355")
    assert second.trader == WHALE
    assert second.reserve_in == Decimal(r0 + 5_000_000_000).scaleb(-6)
    assert second.reserve_out == Decimal(r1 - out).scaleb(-18)
    # WETH per USDC, before and after; the price impact matches the constant-product pool.
    before = Fraction(r1, r0) * Fraction(10**6, 10**18)
    after = Fraction(r1 - out, r0 + 5_000_000_000) * Fraction(10**6, 10**18)
    assert second.price_before == round(Decimal(before.numerator) / Decimal(before.denominator), 18)
    assert second.price_after == round(Decimal(after.numerator) / Decimal(after.denominator), 18)
    assert second.usd_value == Decimal("5000.000000")


def test_transfers_native_eth_and_liquidity_add(tmp_path: Path) -> None:
    events, errors = run(normalizer([lp_token_file(tmp_path)], book()))
    transfers = [e for e in events if e.event_type == "transfer"]
    native = [e for e in transfers if e.token == NATIVE_TOKEN]
    assert len(native) == 1
    eth = native[0]
    assert (eth.log_index, eth.token_symbol, eth.amount, eth.from_address, eth.to_address) == (
        NATIVE_LOG_INDEX, "ETH", Decimal("2.5"), WHALE, TRADER,
    )  # fmt: skip
    assert eth.usd_value == Decimal("4125.300000000000000000")  # 2.5 × 1650.12
    weth_in = next(e for e in transfers if e.log_index == 10)
    assert (weth_in.token, weth_in.amount, weth_in.from_address, weth_in.to_address) == (
        WETH,
        Decimal("1.5"),
        TRADER,
        PAIR,
    )
    assert weth_in.usd_value == Decimal("2475.18")
    lp = next(e for e in transfers if e.token == PAIR)
    assert (lp.token_symbol, lp.amount, lp.usd_value) == (
        "UNI-V2",
        Decimal("0.000123456789012345"),
        None,
    )  # no price
    add = next(e for e in events if e.event_type == "liquidity_add")
    assert (add.token_in, add.amount_in, add.token_out, add.amount_out) == (
        USDC, Decimal("16500"), WETH, Decimal("9.911456976704150183"),
    )  # fmt: skip
    assert (add.reserve_in, add.reserve_out) == (
        Decimal("31253578.869203"),
        Decimal("18773.848626068816921815"),
    )
    # Liquidity: both sides priced (USDC at 1, WETH at the ETH-USDT price).
    assert add.usd_value == round(Decimal("16500") + Decimal("9.911456976704150183") * ETH_USDT, 18)
    # The unknown token is the only error: a clear line naming it.
    assert len(errors) == 1
    assert "0x95aD61b0a150d79219dCF64E1E6Cc01f0B64C4cE" in errors[0]
    assert "token file" in errors[0]


def test_v3_swap_prices_from_sqrt_price_and_liquidity() -> None:
    events, _ = run(normalizer([], book()))
    swap = next(e for e in events if e.pool == V3_POOL)
    raw = next(line for line in lines() if line.get("address") == V3_POOL.lower())
    args = abi.decode_log(raw).args
    assert (swap.protocol, swap.token_in_symbol, swap.amount_in) == ("uniswap-v3", "WETH", Decimal("2"))
    assert (swap.token_out_symbol, swap.amount_out) == ("USDC", Decimal(-args["amount0"]).scaleb(-6))
    assert (swap.reserve_in, swap.reserve_out) == (None, None)  # V3 reports no reserves
    # After: P = (sqrtPriceX96 / 2**96)**2 raw WETH per raw USDC -> USDC per WETH = 1 / (P × 10**(6-18)).
    sqrt_after = Fraction(args["sqrtPriceX96"], 2**96)
    usdc_per_weth = 1 / (sqrt_after**2 * Fraction(10**6, 10**18))
    assert swap.price_after == round(
        Decimal(usdc_per_weth.numerator) / Decimal(usdc_per_weth.denominator), 18
    )
    # Before, the independent way: token1 in moves sqrt(P) by its fee-free part / L (0.05 % fee).
    sqrt_before = sqrt_after - Fraction(2 * 10**18 * 9995 // 10000, args["liquidity"])
    expected = 1 / (sqrt_before**2 * Fraction(10**6, 10**18))
    assert abs(swap.price_before - Decimal(expected.numerator) / Decimal(expected.denominator)) < Decimal(
        "1e-9"
    )
    assert swap.price_before > swap.price_after  # WETH sold into the pool: fewer USDC per WETH after


def test_each_event_once_with_deterministic_ids(tmp_path: Path) -> None:
    first, _ = run(normalizer([lp_token_file(tmp_path)]))
    again, _ = run(normalizer([lp_token_file(tmp_path)]))
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert len({e.event_id for e in first}) == len(first) == 12
    kinds = sorted(e.event_type for e in first)
    assert kinds == ["liquidity_add"] + ["swap"] * 3 + ["transfer"] * 8
    assert all(e.usd_value is None for e in first)  # no price book: null, never 0


def test_without_the_sync_a_swap_has_no_reserves_and_without_its_transaction_no_trader() -> None:
    norm = normalizer()
    swap_line = next(line for line in lines() if "topics" in line and line["topics"][0] == abi.V2_SWAP.topic0)
    (swap,) = norm.normalize_line(swap_line)
    assert (swap.reserve_in, swap.price_before, swap.trader) == (None, None, None)
    assert swap.amount_in == Decimal("1.5")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o.pop("blockTimestamp"), "blockTimestamp: missing"),
        (lambda o: o.update(data="0x1234"), "cannot decode"),
        (lambda o: o.update(topics=o["topics"][:2]), "expected 3 topics"),
        (lambda o: o.update(blockNumber=12), None),  # a plain int is accepted
        (lambda o: o.update(blockNumber="12"), "blockNumber: expected a hex quantity"),
        (lambda o: o.update(transactionHash="0x12"), "transactionHash: expected 32-byte hex"),
        (lambda o: o.update(address="not an address"), "address: expected 20-byte hex"),
        (lambda o: o.update(topics="0xabc"), "topics: expected a non-empty list"),
    ],
)
def test_bad_log_objects_are_one_line_value_errors(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    obj = next(line for line in lines() if line.get("logIndex") == "0xa")  # the WETH transfer
    mutate(obj)
    norm = normalizer()
    if reason is None:
        assert len(norm.normalize_line(obj)) == 1
        return
    with pytest.raises(ValueError, match=reason) as err:
        norm.normalize_line(obj)
    assert "\n" not in str(err.value)


def test_non_objects_unknown_events_nfts_and_removed_logs() -> None:
    norm = normalizer()
    with pytest.raises(ValueError, match="expected a JSON object"):
        norm.normalize_line([1, 2])
    with pytest.raises(ValueError, match="not a log"):
        norm.normalize_line({"hello": 1})
    nft = next(line for line in lines() if len(line.get("topics", [])) == 4)
    assert norm.normalize_line(nft) == []
    other = dict(lines()[1], topics=["0x" + "ab" * 32])
    assert norm.normalize_line(other) == []
    assert norm.normalize_line(dict(lines()[1], removed=True)) == []


def test_transactions_blocks_reverts_and_pending() -> None:
    norm = normalizer()
    tx = next(line for line in lines() if line.get("value") == hex(2_500_000_000_000_000_000))
    assert [e.amount for e in norm.normalize_line(tx)] == [Decimal("2.5")]
    assert norm.normalize_line(dict(tx, status="0x0")) == []  # reverted: no ETH moved
    with pytest.raises(ValueError, match="pending"):
        norm.normalize_line(dict(tx, blockHash=None))
    block = {
        "number": tx["blockNumber"],
        "timestamp": tx["blockTimestamp"],
        "transactions": [tx, dict(tx, value="0x0")],
    }
    assert len(norm.normalize_line(block)) == 1
    with pytest.raises(ValueError, match="full transaction objects"):
        norm.normalize_line(dict(block, transactions=[tx["hash"]]))


def test_unknown_pool_offline_is_a_clear_error() -> None:
    norm = EthereumNormalizer(load_registry("ethereum"))
    swap_line = next(line for line in lines() if "topics" in line and line["topics"][0] == abi.V2_SWAP.topic0)
    with pytest.raises(
        UnknownTokenError, match="pool 0x1111111111111111111111111111111111111111: its token0/token1"
    ):
        norm.normalize_line(dict(swap_line, address="0x" + "11" * 20))


def test_the_jsonl_loop_counts_every_line_once_and_values_from_a_prices_file(tmp_path: Path) -> None:
    """What ``coattail normalize --source ethereum --prices FILE --dead-letter FILE`` runs."""
    prices = tmp_path / "trades.jsonl"
    trade = TradeEvent.create(
        exchange="binance", symbol="ETH-USDT", trade_id=1, price="1650.12", quantity="0.5", side="buy",
        timestamp="2023-08-26T16:20:00Z", ingestion_timestamp="2023-08-26T16:20:00.100Z",
    )  # fmt: skip
    prices.write_bytes(dumps(trade) + b"\n")
    src = [*FIXTURE.read_bytes().splitlines(keepends=True), b"\n", b"{not json\n"]
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    with out.open("wb") as o, dlq.open("wb") as d:
        counts = run_normalize(src, o, normalizer([lp_token_file(tmp_path)], load_price_book(prices)), d)
    assert counts["lines"] == 23
    assert counts["lines"] == counts["event_lines"] + counts["ignored"] + counts["dead_lettered"]
    # Ignored: 3 Syncs, the NFT, the 4 transactions without value and the blank line; dead: the unknown
    # token and the line that is not JSON.
    assert (counts["events"], counts["ignored"], counts["dead_lettered"]) == (12, 9, 2)
    events = [loads_onchain(line) for line in out.read_bytes().splitlines()]
    assert next(e for e in events if e.token == NATIVE_TOKEN).usd_value == Decimal("4125.3")
    reasons = [json.loads(line)["reason"] for line in dlq.read_bytes().splitlines()]
    assert reasons[0].startswith("token 0x95aD61b0a150d79219dCF64E1E6Cc01f0B64C4cE: its decimals are unknown")
    assert reasons[1].startswith("not JSON")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"price": 1}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: not a TradeEvent"):
        load_price_book(bad)


def normalizer(token_files: list[Path] | None = None, book: PriceBook | None = None) -> EthereumNormalizer:
    """The offline normaliser: the shipped token registry plus ``token_files``."""
    return EthereumNormalizer(load_registry("ethereum", token_files or []), book)
