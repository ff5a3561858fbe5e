"""The chain simulator against a real anvil: deployment, exact Uniswap V2 amounts, truth, price tracking."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3
from web3.logs import DISCARD

from connectors.chainsim import amm
from connectors.chainsim.deploy import NO_DEADLINE, contract, reserves, send
from tests.chains.conftest import ChainWorld

pytestmark = pytest.mark.services


def test_deploy_puts_up_uniswap_with_a_6_and_an_18_decimal_token(chain_world: ChainWorld) -> None:
    w3, d = chain_world.w3, chain_world.deployment
    for address in (d.factory, d.router, d.weth, d.usdc.address, d.dai.address):
        assert len(w3.eth.get_code(address)) > 0
    assert contract(w3, "TestToken", d.usdc.address).functions.decimals().call() == 6
    assert contract(w3, "TestToken", d.dai.address).functions.decimals().call() == 18
    router = contract(w3, "UniswapV2Router02", d.router)
    assert router.functions.factory().call() == d.factory
    assert router.functions.WETH().call() == d.weth
    factory = contract(w3, "UniswapV2Factory", d.factory)
    assert factory.functions.allPairsLength().call() == 2
    pool = d.usdc_weth
    assert factory.functions.getPair(d.usdc.address, d.weth).call() == pool.address
    pair = contract(w3, "UniswapV2Pair", pool.address)
    assert (pair.functions.token0().call(), pair.functions.token1().call()) == (pool.token0, pool.token1)
    # Seeded at 1000 WETH : 3,000,000 USDC, in the pair's own token order.
    usdc_raw, weth_raw = 3_000_000 * 10**6, 1000 * 10**18
    expected = (usdc_raw, weth_raw) if pool.token0 == d.usdc.address else (weth_raw, usdc_raw)
    assert reserves(w3, pool) == expected
    kinds = [(e["kind"], e["purpose"], e["pool"]) for e in chain_world.seed_events]
    assert kinds == [("liquidity_add", "seed_pool", p.address) for p in d.pools.values()]


def _swap_event(w3: Web3, receipt: Any, pair_address: str) -> dict[str, Any]:
    pair = contract(w3, "UniswapV2Pair", pair_address)
    events = [
        e for e in pair.events.Swap().process_receipt(receipt, errors=DISCARD) if e["address"] == pair_address
    ]
    assert len(events) == 1
    return dict(events[0]["args"])


def test_a_router_swap_pays_exactly_the_constant_product_amount(chain_snapshot: ChainWorld) -> None:
    w3, d = chain_snapshot.w3, chain_snapshot.deployment
    trader = w3.eth.accounts[5]
    pool = d.usdc_weth
    usdc = contract(w3, "TestToken", d.usdc.address)
    weth = contract(w3, "TestToken", d.weth)
    router = contract(w3, "UniswapV2Router02", d.router)
    send(w3, usdc.functions.transfer(trader, 1_000_000 * 10**6), d.deployer)
    send(w3, usdc.functions.approve(d.router, 2**256 - 1), trader)

    raw_in = 12_345_678_901  # 12,345.678901 USDC: every one of the 6 decimals matters
    r0, r1 = reserves(w3, pool)
    r_usdc, r_weth = (r0, r1) if pool.token0 == d.usdc.address else (r1, r0)
    # Uniswap V2: out = in*997*R_out / (R_in*1000 + in*997), rounded down (the 0.3 % fee on the input).
    expected_out = raw_in * 997 * r_weth // (r_usdc * 1000 + raw_in * 997)
    assert expected_out == amm.amount_out(raw_in, r_usdc, r_weth)
    before = weth.functions.balanceOf(trader).call()
    receipt = send(
        w3,
        router.functions.swapExactTokensForTokens(raw_in, 0, [d.usdc.address, d.weth], trader, NO_DEADLINE),
        trader,
    )
    assert weth.functions.balanceOf(trader).call() - before == expected_out
    after = reserves(w3, pool)
    assert after == (
        (r_usdc + raw_in, r_weth - expected_out)
        if pool.token0 == d.usdc.address
        else (r_weth - expected_out, r_usdc + raw_in)
    )
    # k grows by the fee: the pool never loses value on a swap.
    assert after[0] * after[1] > r0 * r1
    swap = _swap_event(w3, receipt, pool.address)
    usdc_is_0 = pool.token0 == d.usdc.address
    assert (swap["amount0In"], swap["amount1In"]) == ((raw_in, 0) if usdc_is_0 else (0, raw_in))
    assert (swap["amount0Out"], swap["amount1Out"]) == ((0, expected_out) if usdc_is_0 else (expected_out, 0))


def test_eth_for_the_6_decimal_token_is_exact_and_recorded_exactly(chain_snapshot: ChainWorld) -> None:
    from connectors.chainsim.drive import ChainDriver
    from connectors.chainsim.truth import TruthLog

    w3, d = chain_snapshot.w3, chain_snapshot.deployment
    truth = TruthLog(w3, d)
    driver = ChainDriver(w3, d, truth, seed=7)
    trader = driver.traders[0]
    usdc = contract(w3, "TestToken", d.usdc.address)
    before_usdc, before_eth = usdc.functions.balanceOf(trader).call(), w3.eth.get_balance(trader)
    r0, r1 = reserves(w3, d.usdc_weth)
    r_usdc, r_weth = (r0, r1) if d.usdc_weth.token0 == d.usdc.address else (r1, r0)
    raw_in = 3 * 10**18 + 1  # 3.000000000000000001 ETH, as native value (swapExactETHForTokens)
    receipt = driver.swap(trader, d.usdc_weth, d.weth, raw_in, "test")
    out = raw_in * 997 * r_usdc // (r_weth * 1000 + raw_in * 997)
    assert usdc.functions.balanceOf(trader).call() - before_usdc == out
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert before_eth - w3.eth.get_balance(trader) == raw_in + gas
    (entry,) = truth.events
    assert entry["kind"] == "swap"
    assert entry["tx_hash"] == receipt["transactionHash"].to_0x_hex()
    assert (entry["token_in_symbol"], entry["token_out_symbol"]) == ("WETH", "USDC")
    assert entry["amount_in"] == "3.000000000000000001"
    assert Decimal(entry["amount_out"]) == Decimal(out).scaleb(-6)
    assert entry["amount_out"] == f"{out // 10**6}.{out % 10**6:06d}".rstrip("0").rstrip(".")
    assert Decimal(entry["reserve_in"]) == Decimal(r_weth + raw_in).scaleb(-18)
    assert Decimal(entry["reserve_out"]) == Decimal(r_usdc - out).scaleb(-6)
    assert reserves(w3, d.usdc_weth) == (
        (r_usdc - out, r_weth + raw_in)
        if d.usdc_weth.token0 == d.usdc.address
        else (r_weth + raw_in, r_usdc - out)
    )


def test_liquidity_add_and_remove_match_the_mint_and_burn(chain_snapshot: ChainWorld) -> None:
    from connectors.chainsim.drive import ChainDriver
    from connectors.chainsim.truth import TruthLog

    w3, d = chain_snapshot.w3, chain_snapshot.deployment
    truth = TruthLog(w3, d)
    driver = ChainDriver(w3, d, truth, seed=8)
    driver.fund()
    funding = len(truth.events)
    pool = d.usdc_weth
    pair = contract(w3, "UniswapV2Pair", pool.address)
    lp_before = pair.functions.balanceOf(driver.provider).call()
    add = driver.add_liquidity(driver.provider, pool, 123 * 10**18 + 7)
    remove = driver.remove_liquidity(driver.provider, pool, Decimal("0.5"))
    added, removed = truth.events[funding:]
    (mint,) = pair.events.Mint().process_receipt(add, errors=DISCARD)
    (burn,) = pair.events.Burn().process_receipt(remove, errors=DISCARD)
    assert (mint["args"]["amount0"], mint["args"]["amount1"]) == (
        int(added["amount_in_raw"]),
        int(added["amount_out_raw"]),
    )
    assert (burn["args"]["amount0"], burn["args"]["amount1"]) == (
        int(removed["amount_in_raw"]),
        int(removed["amount_out_raw"]),
    )
    minted = int(added["liquidity_raw"])
    assert pair.functions.balanceOf(driver.provider).call() == lp_before + minted - int(
        removed["liquidity_raw"]
    )
    assert int(removed["liquidity_raw"]) == (lp_before + minted) // 2
    r0, _r1 = reserves(w3, pool)
    sym0 = d.token_at(pool.token0)
    assert Decimal(removed["reserve_in"]) == Decimal(r0).scaleb(-sym0.decimals)
    assert (added["kind"], removed["kind"]) == ("liquidity_add", "liquidity_remove")


def _chain_events(w3: Web3, first_block: int, last_block: int) -> set[tuple[str, str]]:
    """(tx hash, kind) of what the chain holds, read from receipts independently of the simulator.

    A tx with a pair's Swap log is a swap, Mint a liquidity_add, Burn a liquidity_remove; otherwise a
    Transfer log makes it a transfer, and plain ETH value to an address without code a native transfer.
    Approvals alone are no event.
    """
    topics = {
        Web3.keccak(text=sig).to_0x_hex(): kind
        for sig, kind in (
            ("Swap(address,uint256,uint256,uint256,uint256,address)", "swap"),
            ("Mint(address,uint256,uint256)", "liquidity_add"),
            ("Burn(address,uint256,uint256,address)", "liquidity_remove"),
            ("Transfer(address,address,uint256)", "transfer"),
        )
    }
    found: set[tuple[str, str]] = set()
    for number in range(first_block, last_block + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            kinds = {topics.get(log["topics"][0].to_0x_hex()) for log in receipt["logs"]} - {None}
            kind = next(
                (k for k in ("swap", "liquidity_add", "liquidity_remove", "transfer") if k in kinds), None
            )
            if kind is None and tx["value"] > 0 and tx["to"] and not w3.eth.get_code(tx["to"]):
                kind = "transfer"
            if kind is not None:
                found.add((tx["hash"].to_0x_hex(), kind))
    return found


def test_the_truth_lists_every_planted_event_and_nothing_else(chain_snapshot: ChainWorld) -> None:
    from connectors.chainsim import prices
    from connectors.chainsim.drive import ChainDriver, DriveConfig
    from connectors.chainsim.truth import TruthLog

    w3, d = chain_snapshot.w3, chain_snapshot.deployment
    first = w3.eth.block_number + 1
    truth = TruthLog(w3, d)
    config = DriveConfig(
        whale_swap_every=3, whale_transfer_every=2, native_transfer_every=2, liquidity_every=3
    )
    driver = ChainDriver(w3, d, truth, seed=11, config=config)
    driver.run(prices.constant(Decimal("3050")), steps=12, interval=2)
    planted = {(e["tx_hash"], e["kind"]) for e in truth.events}
    assert len(planted) == len(truth.events)  # one entry per transaction
    assert planted == _chain_events(w3, first, w3.eth.block_number)
    purposes = {e["purpose"] for e in truth.events}
    assert {
        "funding",
        "noise",
        "whale_swap",
        "whale_transfer",
        "native_transfer",
        "arbitrage",
        "liquidity",
    } <= purposes
    kinds = {e["kind"] for e in truth.events}
    assert kinds == {"swap", "transfer", "liquidity_add", "liquidity_remove"}
    # Each entry's amounts are the chain's: the transfers' values and the swaps' Swap logs.
    for entry in truth.events:
        receipt = w3.eth.get_transaction_receipt(entry["tx_hash"])
        assert receipt["blockNumber"] == entry["block_number"]
        if entry["kind"] == "transfer" and entry["token"] == "native":
            assert w3.eth.get_transaction(entry["tx_hash"])["value"] == int(entry["amount_raw"])
        elif entry["kind"] == "transfer":
            erc20 = contract(w3, "TestToken", entry["token"])
            (log,) = erc20.events.Transfer().process_receipt(receipt, errors=DISCARD)
            assert (log["args"]["from"], log["args"]["to"]) == (entry["from_address"], entry["to_address"])
            assert log["args"]["value"] == int(entry["amount_raw"])
            decimals = d.token_at(entry["token"]).decimals
            assert Decimal(entry["amount"]) == Decimal(int(entry["amount_raw"])).scaleb(-decimals)
        elif entry["kind"] == "swap":
            swap = _swap_event(w3, receipt, entry["pool"])
            pool = next(p for p in d.pools.values() if p.address == entry["pool"])
            in0 = entry["token_in"] == pool.token0
            assert (swap["amount0In"] if in0 else swap["amount1In"]) == int(entry["amount_in_raw"])
            assert (swap["amount1Out"] if in0 else swap["amount0Out"]) == int(entry["amount_out_raw"])


def test_the_pools_follow_the_price_path(chain_snapshot: ChainWorld) -> None:
    from connectors.chainsim import prices
    from connectors.chainsim.drive import ChainDriver
    from connectors.chainsim.truth import TruthLog

    w3, d = chain_snapshot.w3, chain_snapshot.deployment
    # A path with real moves (+8 %, -12 %, back) on top of the CEX simulator's own walk.
    walk = prices.from_cex_simulator(5, 2, __import__("datetime").datetime(2026, 1, 1), bases=("BTC", "ETH"))
    shape = [Decimal(1), Decimal("1.08"), Decimal("1.03"), Decimal("0.95"), Decimal("0.92"), Decimal(1)]
    times = list(range(0, 60, 2))
    targets = [walk.offset(t) * shape[i * len(shape) // len(times)] for i, t in enumerate(times)]
    path = prices.PricePath(times, targets, "test path")
    truth = TruthLog(w3, d)
    driver = ChainDriver(w3, d, truth, seed=12)
    driver.run(path, steps=len(times), interval=2)
    assert len(truth.prices) == len(times)
    tolerance = Decimal("0.001")  # the arbitrage threshold (0.05 %) plus rounding
    for step, target in zip(truth.prices, targets, strict=True):
        assert Decimal(step["target"]) == target
        assert abs(Decimal(step["pool"]) / target - 1) <= tolerance, step
    assert abs(driver.pool_price(d.pools["DAI/WETH"]) / targets[-1] - 1) <= tolerance
    # The whale swaps in between moved the pool; the arbitrage brought it back each step.
    assert any(e["purpose"] == "arbitrage" for e in truth.events)


def test_the_cex_walk_is_the_cex_simulators_price(tmp_path: Path) -> None:
    """Without a file the chain follows the same fair price the CEX simulator trades around."""
    import datetime as dt

    import orjson

    from connectors.chainsim import prices
    from connectors.simulator import simulate

    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    instruments = {"binance": ["BTC-USDT", "ETH-USDT"], "coinbase": ["ETH-USD"]}
    lines, _ = simulate(seed=9, minutes=3, rate=5, start=start, instruments=instruments, equivalences={})
    raw = tmp_path / "cex.jsonl"
    raw.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    traded = prices.from_trades_file(raw, "binance:ETH-USDT")
    walk = prices.from_cex_simulator(9, 3, start, bases={"BTC", "ETH"})
    assert len(traded.times) > 50
    for t, price in zip(traded.times, traded.prices, strict=True):
        assert abs(price / walk.at(t) - 1) < Decimal("0.0005"), t  # the simulator's 0.004 % noise, ticked
    assert traded.source.startswith("binance:ETH-USDT trades")


def test_simulate_chain_cli_writes_truth_and_a_token_overlay(
    chain_snapshot: ChainWorld, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    from coattail.chains.tokens import load_registry

    url = chain_snapshot.node.url
    truth, tokens, record = tmp_path / "truth.json", tmp_path / "tokens.yaml", tmp_path / "deployment.json"
    argv = [
        sys.executable,
        "-m",
        "coattail",
        "simulate-chain",
        "--rpc-url",
        url,
        "--steps",
        "6",
        "--seed",
        "4",
        "--eth-price",
        "2999.5",
        "--truth",
        str(truth),
        "--tokens-out",
        str(tokens),
        "--deployment",
        str(record),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert "simulate-chain: 6 steps on chain 31337 following constant 2999.5" in done.stderr
    data = json.loads(truth.read_text())
    deployed = data["deployment"]
    assert data["counts"]["liquidity_add"] >= 2
    assert data["counts"]["swap"] >= 1
    assert sum(data["counts"].values()) == len(data["events"])
    registry = load_registry("ethereum", extra_files=[tokens])
    usdc = registry.token(deployed["tokens"]["USDC"]["address"])
    weth = registry.token(deployed["weth"])
    assert usdc is not None
    assert (usdc.symbol, usdc.decimals, usdc.price_ref) == ("USDC", 6, "usd")
    assert weth is not None
    assert (weth.decimals, weth.price_ref) == (18, "binance:ETH-USDT")
    pool = registry.pool(deployed["pools"]["USDC/WETH"]["address"])
    assert pool is not None
    assert pool.protocol == "uniswap-v2"
    assert registry.program(deployed["router"]) == "uniswap-v2"
    # A second run reuses the recorded world: no new deployment, no seeding.
    again = subprocess.run(
        [*argv[:-2], "--deployment", str(record), "--truth", str(tmp_path / "t2.json")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    second = json.loads((tmp_path / "t2.json").read_text())
    assert second["deployment"]["factory"] == deployed["factory"]
    assert "liquidity_add" not in {e["purpose"] for e in second["events"] if e["purpose"] == "seed_pool"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--rpc-url", "http://127.0.0.1:9", "--steps", "1", "--eth-price", "3000"],
            "no Ethereum JSON-RPC node answers",
        ),
        (["--rpc-url", "http://127.0.0.1:9", "--steps", "1", "--seconds", "2"], "give --steps or --seconds"),
        (["--rpc-url", "http://127.0.0.1:9", "--eth-price", "cheap"], "--eth-price 'cheap' is not a number"),
        (
            ["--rpc-url", "http://127.0.0.1:9", "--eth-prices", "/nonexistent.jsonl"],
            "cannot read /nonexistent.jsonl",
        ),
    ],
)
def test_simulate_chain_bad_input_is_one_line(args: list[str], message: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "coattail", "simulate-chain", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: "), done.stderr
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
