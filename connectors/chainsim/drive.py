"""Simulated wallets trading on the deployed world, following a CEX price path, every event in the truth.

Roles among the node's unlocked accounts (the first one deployed the world and funds the others):

* the arbitrageur moves each pool's price to the step's target ETH price (the CEX price), exactly as
  far as the constant-product formula says, so the DEX and the CEX agree after every step;
* the liquidity provider adds to and removes from the pools;
* traders make small swaps (noise), whale swaps, large ERC-20 transfers and native ETH transfers, to
  each other and to fresh addresses.

Every amount is planned in exact integers before the transaction is sent (the router's minimum
amounts are set to exactly the planned figures, so a chain that computed anything else would revert)
and written to the :class:`~connectors.chainsim.truth.TruthLog`. Transactions go one at a time and each
is awaited, so the reserves a plan reads are the ones its transaction meets, with or without
``--block-time``.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, localcontext

from hexbytes import HexBytes
from web3 import Web3
from web3.types import TxReceipt

from coattail.contracts.onchain import NATIVE_TOKEN
from connectors.chainsim import amm
from connectors.chainsim.clock import EventClock
from connectors.chainsim.deploy import (
    NO_DEADLINE,
    ChainSimError,
    Deployment,
    PoolInfo,
    confirm,
    contract,
    reserves,
    send,
    send_raw,
    submit,
)
from connectors.chainsim.prices import PricePath
from connectors.chainsim.truth import TruthLog

WEI = 10**18
NATIVE_GAS = 21_000  # a plain ETH transfer to an address without code


@dataclass(frozen=True)
class DriveConfig:
    """How busy the chain is. Intervals count steps; amounts are in USD (converted at the step's price)."""

    wallets: int = 6  # accounts 1..wallets: arbitrageur, liquidity provider, then traders
    arb_threshold: Decimal = Decimal("0.0005")  # pool off the target by more than 0.05 %: arbitrage
    noise_probability: float = 0.8  # chance of one small swap per step
    noise_usd: tuple[float, float] = (200, 40_000)  # log-uniform
    whale_swap_every: int = 9
    whale_swap_usd: tuple[float, float] = (250_000, 1_500_000)
    whale_transfer_every: int = 7
    whale_transfer_usd: tuple[float, float] = (200_000, 5_000_000)
    native_transfer_every: int = 5
    native_transfer_eth: tuple[float, float] = (5, 400)
    liquidity_every: int = 11
    liquidity_eth: tuple[float, float] = (20, 200)
    funding_usd: int = 200_000_000  # of each stablecoin per wallet at set-up

    def __post_init__(self) -> None:
        if self.wallets < 3:
            raise ChainSimError("the simulator needs at least 3 wallets (arbitrageur, provider, a trader)")
        for name in ("whale_swap_every", "whale_transfer_every", "native_transfer_every", "liquidity_every"):
            if getattr(self, name) < 1:
                raise ChainSimError(f"{name} must be at least 1")


class ChainDriver:
    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        truth: TruthLog,
        *,
        seed: int = 1,
        config: DriveConfig | None = None,
    ):
        self.w3 = w3
        self.d = deployment
        self.truth = truth
        self.rng = random.Random(seed)
        self.config = config or DriveConfig()
        accounts = [Web3.to_checksum_address(a) for a in w3.eth.accounts]
        if len(accounts) < self.config.wallets + 1:
            raise ChainSimError(
                f"the node unlocks {len(accounts)} accounts; the simulator needs {self.config.wallets + 1} "
                "(start anvil with --accounts)"
            )
        self.deployer = Web3.to_checksum_address(deployment.deployer)
        wallets = [a for a in accounts if a != self.deployer][: self.config.wallets]
        self.arbitrageur, self.provider, *self.traders = wallets
        self.router = contract(w3, "UniswapV2Router02", deployment.router)
        self.step_count = 0
        self._funded = False

    # -- set-up ---------------------------------------------------------------------------------
    def fund(self) -> None:
        """Give every wallet stablecoins (planted transfers) and let the router spend their tokens."""
        if self._funded:
            return
        # All sent before any is awaited: with --block-time they share blocks instead of one each.
        wallets = [self.arbitrageur, self.provider, *self.traders]
        funding: list[tuple[HexBytes, str, str, int]] = []
        for token in (self.d.usdc, self.d.dai):
            erc20 = contract(self.w3, "TestToken", token.address)
            raw = self.config.funding_usd * 10**token.decimals
            for wallet in wallets:
                if erc20.functions.balanceOf(wallet).call() < raw // 2:
                    call = erc20.functions.transfer(wallet, raw)
                    funding.append((submit(call, self.deployer, what="funding"), token.address, wallet, raw))
        approvals: list[HexBytes] = []
        spenders = [t.address for t in self.d.tokens.values()] + [p.address for p in self.d.pools.values()]
        for wallet in wallets:
            for address in spenders:
                erc20 = contract(self.w3, "TestToken", address)
                if erc20.functions.allowance(wallet, self.d.router).call() < 2**255:
                    call = erc20.functions.approve(self.d.router, 2**256 - 1)
                    approvals.append(submit(call, wallet, what="approving the router"))
        for tx_hash, token_address, receiver, raw in funding:
            receipt = confirm(self.w3, tx_hash, "funding")
            self.truth.transfer(
                receipt, token=token_address, sender=self.deployer, to=receiver, raw=raw, purpose="funding"
            )
        for tx_hash in approvals:
            confirm(self.w3, tx_hash, "approving the router")
        self._funded = True

    # -- one step -------------------------------------------------------------------------------
    def step(self, eth_price: Decimal, timestamp: int | None = None) -> None:
        """The step's planted activity, then arbitrage of every pool to ``eth_price``.

        ``timestamp`` is the step's event time when the simulator sets block time (the truth notes it).
        """
        self.fund()
        self.step_count += 1
        n, c, rng = self.step_count, self.config, self.rng
        if rng.random() < c.noise_probability:
            self.random_swap(eth_price, c.noise_usd, "noise")
        if n % c.whale_swap_every == 0:
            self.random_swap(eth_price, c.whale_swap_usd, "whale_swap")
        if n % c.whale_transfer_every == 0:
            token = rng.choice((self.d.usdc, self.d.dai))
            usd = _log_uniform(rng, c.whale_transfer_usd)
            raw = int(Decimal(str(round(usd, 2))) * 10**token.decimals)
            sender = rng.choice(self.traders)
            self.transfer_token(sender, token.address, self._recipient(sender), raw, "whale_transfer")
        if n % c.native_transfer_every == 0:
            raw = int(Decimal(str(round(_log_uniform(rng, c.native_transfer_eth), 6))) * WEI)
            sender = rng.choice(self.traders)
            self.transfer_native(sender, self._recipient(sender), raw, "native_transfer")
        if n % c.liquidity_every == 0:
            pool = rng.choice(list(self.d.pools.values()))
            lp = contract(self.w3, "UniswapV2Pair", pool.address).functions.balanceOf(self.provider).call()
            if lp > 0 and (n // c.liquidity_every) % 2 == 0:
                self.remove_liquidity(self.provider, pool, Decimal(str(round(rng.uniform(0.3, 0.6), 3))))
            else:
                eth = int(Decimal(str(round(_log_uniform(rng, c.liquidity_eth), 6))) * WEI)
                self.add_liquidity(self.provider, pool, eth)
        for pool in self.d.pools.values():
            self.arbitrage(pool, eth_price)
        self.truth.price_step(
            self.w3.eth.block_number, eth_price, self.pool_price(self.d.usdc_weth), timestamp
        )

    def run(
        self,
        path: PricePath,
        *,
        steps: int,
        interval: float,
        realtime: bool = False,
        on_step: Callable[[int, Decimal], None] | None = None,
    ) -> None:
        """``steps`` steps, step i at ``i * interval`` seconds into the price path (paced when realtime)."""
        began = time.monotonic()
        for i in range(steps):
            if realtime and (delay := began + i * interval - time.monotonic()) > 0:
                time.sleep(delay)
            price = path.offset(i * interval)
            self.step(price)
            if on_step is not None:
                on_step(i, price)

    def run_in_event_time(
        self,
        path: PricePath,
        *,
        steps: int,
        step_seconds: int,
        clock: EventClock,
        before_step: Callable[[int, Decimal], None] | None = None,
        on_step: Callable[[int, int, Decimal], None] | None = None,
    ) -> None:
        """``steps`` steps at block times ``path.start + i * step_seconds``, as fast as the node mines.

        The clock (started by the caller) pins each step's first block to the step's time, and the
        price is the path's at that time: the pools follow the path in event time, so what happens on
        the chain at a block time is what the path says then. ``before_step`` plants the step's own
        actions (the wallets scenario) before the background activity and the arbitrage.
        """
        if step_seconds < 1:
            raise ChainSimError("block seconds per step must be at least 1")
        for i in range(steps):
            at = path.start + i * step_seconds
            clock.next_block_at(at)
            price = path.at(at)
            if before_step is not None:
                before_step(i, price)
            self.step(price, at)
            if on_step is not None:
                on_step(i, at, price)

    # -- actions --------------------------------------------------------------------------------
    def swap(self, wallet: str, pool: PoolInfo, token_in: str, raw_in: int, purpose: str) -> TxReceipt:
        """Sell exactly ``raw_in`` of ``token_in`` on ``pool`` through Router02.

        WETH goes in as native ETH (``swapExactETHForTokens``) unless the wallet holds the WETH
        (``swapExactTokensForTokens``); the pair sees WETH either way.
        """
        token_out = pool.token1 if token_in == pool.token0 else pool.token0
        r0, r1 = reserves(self.w3, pool)
        r_in, r_out = (r0, r1) if token_in == pool.token0 else (r1, r0)
        out = amm.amount_out(raw_in, r_in, r_out)
        if out <= 0:
            raise ChainSimError(f"a swap of {raw_in} on {pool.name} would give nothing")
        path = [token_in, token_out]
        as_eth = token_in == self.d.weth and self._balance(self.d.weth, wallet) < raw_in
        if as_eth:
            call = self.router.functions.swapExactETHForTokens(out, path, wallet, NO_DEADLINE)
            receipt = send(self.w3, call, wallet, value=raw_in, what=f"{purpose} swap on {pool.name}")
        else:
            call = self.router.functions.swapExactTokensForTokens(raw_in, out, path, wallet, NO_DEADLINE)
            receipt = send(self.w3, call, wallet, what=f"{purpose} swap on {pool.name}")
        self.truth.swap(
            receipt,
            pool=pool,
            trader=wallet,
            to=wallet,
            token_in=token_in,
            raw_in=raw_in,
            token_out=token_out,
            raw_out=out,
            reserve_in_raw=r_in + raw_in,
            reserve_out_raw=r_out - out,
            purpose=purpose,
        )
        return receipt

    def transfer_token(self, sender: str, token: str, to: str, raw: int, purpose: str) -> TxReceipt:
        erc20 = contract(self.w3, "TestToken", token)
        receipt = send(self.w3, erc20.functions.transfer(to, raw), sender, what=f"{purpose} transfer")
        self.truth.transfer(receipt, token=token, sender=sender, to=to, raw=raw, purpose=purpose)
        return receipt

    def transfer_native(self, sender: str, to: str, raw: int, purpose: str) -> TxReceipt:
        tx = {"from": sender, "to": to, "gas": hex(NATIVE_GAS)}
        try:
            tx_hash = send_raw(self.w3, tx, raw)
        except ChainSimError as exc:
            raise ChainSimError(f"{purpose} ETH transfer failed: {exc}") from None
        receipt = confirm(self.w3, tx_hash, f"{purpose} ETH transfer")
        self.truth.transfer(receipt, token=NATIVE_TOKEN, sender=sender, to=to, raw=raw, purpose=purpose)
        return receipt

    def add_liquidity(
        self, wallet: str, pool: PoolInfo, eth_raw: int, purpose: str = "liquidity"
    ) -> TxReceipt:
        """``addLiquidityETH`` with ``eth_raw`` wei and the token amount at the pool's ratio."""
        token = pool.token0 if pool.token1 == self.d.weth else pool.token1
        r0, r1 = reserves(self.w3, pool)
        r_token, r_weth = (r0, r1) if pool.token0 == token else (r1, r0)
        token_desired = amm.quote(eth_raw, r_weth, r_token)
        put_token, put_eth = amm.add_liquidity_amounts(token_desired, eth_raw, r_token, r_weth)
        raw0, raw1 = (put_token, put_eth) if pool.token0 == token else (put_eth, put_token)
        supply = contract(self.w3, "UniswapV2Pair", pool.address).functions.totalSupply().call()
        minted = amm.liquidity_minted(raw0, raw1, r0, r1, supply)
        call = self.router.functions.addLiquidityETH(
            token, token_desired, put_token, put_eth, wallet, NO_DEADLINE
        )
        receipt = send(self.w3, call, wallet, value=eth_raw, what=f"adding liquidity to {pool.name}")
        self.truth.liquidity(
            receipt,
            kind="liquidity_add",
            pool=pool,
            provider=wallet,
            raw0=raw0,
            raw1=raw1,
            liquidity_raw=minted,
            reserve0_raw=r0 + raw0,
            reserve1_raw=r1 + raw1,
            purpose=purpose,
        )
        return receipt

    def remove_liquidity(
        self, wallet: str, pool: PoolInfo, fraction: Decimal, purpose: str = "liquidity"
    ) -> TxReceipt:
        """``removeLiquidity`` of ``fraction`` of the wallet's LP tokens, both sides to the wallet."""
        pair = contract(self.w3, "UniswapV2Pair", pool.address)
        held = pair.functions.balanceOf(wallet).call()
        liquidity = int(held * fraction)
        if liquidity <= 0:
            raise ChainSimError(f"{wallet} holds no liquidity of {pool.name} to remove")
        supply = pair.functions.totalSupply().call()
        r0, r1 = reserves(self.w3, pool)  # the pair's balances: nobody donates to it here
        raw0, raw1 = amm.burned_amounts(liquidity, r0, r1, supply)
        call = self.router.functions.removeLiquidity(
            pool.token0, pool.token1, liquidity, raw0, raw1, wallet, NO_DEADLINE
        )
        receipt = send(self.w3, call, wallet, what=f"removing liquidity from {pool.name}")
        self.truth.liquidity(
            receipt,
            kind="liquidity_remove",
            pool=pool,
            provider=wallet,
            raw0=raw0,
            raw1=raw1,
            liquidity_raw=liquidity,
            reserve0_raw=r0 - raw0,
            reserve1_raw=r1 - raw1,
            purpose=purpose,
        )
        return receipt

    def arbitrage(self, pool: PoolInfo, eth_price: Decimal) -> TxReceipt | None:
        """Trade ``pool`` to ``eth_price`` (stablecoin per ETH); nothing when it is already close."""
        stable = self.d.token_at(pool.token0 if pool.token1 == self.d.weth else pool.token1)
        current = self.pool_price(pool)
        if abs(current / eth_price - 1) <= self.config.arb_threshold:
            return None
        r0, r1 = reserves(self.w3, pool)
        r_stable, r_weth = (r0, r1) if pool.token0 == stable.address else (r1, r0)
        with localcontext() as ctx:
            ctx.prec = 60
            raw_price = eth_price * Decimal(10**stable.decimals) / WEI  # stable raw per wei
            if current < eth_price:  # ETH cheap on the pool: buy WETH with the stablecoin
                raw_in = amm.input_to_reach(r_stable, r_weth, 1 / raw_price)
                token_in = stable.address
            else:  # ETH dear on the pool: sell ETH
                raw_in = amm.input_to_reach(r_weth, r_stable, raw_price)
                token_in = self.d.weth
        if raw_in <= 0:
            return None
        return self.swap(self.arbitrageur, pool, token_in, raw_in, "arbitrage")

    def random_swap(self, eth_price: Decimal, usd_range: tuple[float, float], purpose: str) -> TxReceipt:
        rng = self.rng
        pool = rng.choice(list(self.d.pools.values()))
        sell_eth = rng.random() < 0.5
        usd = Decimal(str(round(_log_uniform(rng, usd_range), 2)))
        if sell_eth:
            token_in, raw_in = self.d.weth, int(usd / eth_price * WEI)
        else:
            stable = self.d.token_at(pool.token0 if pool.token1 == self.d.weth else pool.token1)
            token_in, raw_in = stable.address, int(usd * 10**stable.decimals)
        return self.swap(rng.choice(self.traders), pool, token_in, raw_in, purpose)

    # -- reading --------------------------------------------------------------------------------
    def pool_price(self, pool: PoolInfo) -> Decimal:
        """One WETH in the pool's stablecoin at the current reserves."""
        stable = self.d.token_at(pool.token0 if pool.token1 == self.d.weth else pool.token1)
        r0, r1 = reserves(self.w3, pool)
        r_stable, r_weth = (r0, r1) if pool.token0 == stable.address else (r1, r0)
        return amm.price(r_weth, r_stable, 18, stable.decimals)

    def _balance(self, token: str, wallet: str) -> int:
        return int(contract(self.w3, "TestToken", token).functions.balanceOf(wallet).call())

    def _recipient(self, sender: str) -> str:
        """A new address two times out of three (a whale paying someone new), else another wallet."""
        if self.rng.random() < 2 / 3:
            return Web3.to_checksum_address(self.rng.getrandbits(160).to_bytes(20, "big"))
        return self.rng.choice([w for w in (self.arbitrageur, self.provider, *self.traders) if w != sender])


def _log_uniform(rng: random.Random, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))
