"""Uniswap V2 arithmetic in exact integers, as UniswapV2Library and UniswapV2Pair compute it.

The simulator plans with these and the tests check the chain against them: a swap's output is the
constant-product formula with the 0.3 % fee taken from the input, rounded down.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from math import isqrt

FEE_NUMERATOR = 997  # 0.3 % fee: 997/1000 of the input counts
FEE_DENOMINATOR = 1000
MINIMUM_LIQUIDITY = 1000  # locked forever at the first mint


def amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """UniswapV2Library.getAmountOut."""
    if amount_in <= 0:
        raise ValueError("amount_in must be positive")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("the pool has no liquidity")
    with_fee = amount_in * FEE_NUMERATOR
    return with_fee * reserve_out // (reserve_in * FEE_DENOMINATOR + with_fee)


def amount_in(amount_out_: int, reserve_in: int, reserve_out: int) -> int:
    """UniswapV2Library.getAmountIn: the smallest input that yields ``amount_out_``."""
    if not 0 < amount_out_ < reserve_out or reserve_in <= 0:
        raise ValueError("amount_out must be positive and below the output reserve")
    return reserve_in * amount_out_ * FEE_DENOMINATOR // ((reserve_out - amount_out_) * FEE_NUMERATOR) + 1


def quote(amount_a: int, reserve_a: int, reserve_b: int) -> int:
    """UniswapV2Library.quote: the amount of B worth ``amount_a`` of A at the pool's ratio."""
    if amount_a <= 0 or reserve_a <= 0 or reserve_b <= 0:
        raise ValueError("quote needs a positive amount and reserves")
    return amount_a * reserve_b // reserve_a


def liquidity_minted(amount0: int, amount1: int, reserve0: int, reserve1: int, total_supply: int) -> int:
    """UniswapV2Pair.mint (protocol fee off)."""
    if total_supply == 0:
        return isqrt(amount0 * amount1) - MINIMUM_LIQUIDITY
    return min(amount0 * total_supply // reserve0, amount1 * total_supply // reserve1)


def burned_amounts(liquidity: int, balance0: int, balance1: int, total_supply: int) -> tuple[int, int]:
    """UniswapV2Pair.burn: each side pro rata to the liquidity returned."""
    return liquidity * balance0 // total_supply, liquidity * balance1 // total_supply


def price(reserve_base: int, reserve_quote: int, base_decimals: int, quote_decimals: int) -> Decimal:
    """Marginal price of one whole base token in whole quote tokens."""
    with localcontext() as ctx:
        ctx.prec = 40
        return (Decimal(reserve_quote).scaleb(-quote_decimals)) / Decimal(reserve_base).scaleb(-base_decimals)


def input_to_reach(reserve_in: int, reserve_out: int, target_out_per_in: Decimal) -> int:
    """Input that moves the pool's marginal price (out per in, raw units) down to ``target_out_per_in``.

    After a swap of ``a`` the reserves are ``r_in + a`` and ``r_out * r_in / (r_in + f a)`` (f = 0.997,
    the output rounding aside), so the price after is ``k / ((r_in + f a)(r_in + a))``; solving for
    that to equal the target is the quadratic ``f a^2 + (1 + f) r_in a + r_in^2 - k / target = 0``.
    Returns 0 when the pool is already at or below the target.
    """
    if target_out_per_in <= 0:
        raise ValueError("the target price must be positive")
    with localcontext() as ctx:
        ctx.prec = 80
        f = Decimal(FEE_NUMERATOR) / FEE_DENOMINATOR
        r_in = Decimal(reserve_in)
        c = r_in * r_in - r_in * Decimal(reserve_out) / target_out_per_in
        if c >= 0:
            return 0
        b = (1 + f) * r_in
        return int((-b + (b * b - 4 * f * c).sqrt()) / (2 * f))


def add_liquidity_amounts(a_desired: int, b_desired: int, reserve_a: int, reserve_b: int) -> tuple[int, int]:
    """UniswapV2Router02._addLiquidity: the amounts of A and B the router actually puts in."""
    if reserve_a == 0 and reserve_b == 0:
        return a_desired, b_desired
    b_optimal = quote(a_desired, reserve_a, reserve_b)
    if b_optimal <= b_desired:
        return a_desired, b_optimal
    a_optimal = quote(b_desired, reserve_b, reserve_a)
    if a_optimal > a_desired:
        raise ValueError("no amounts fit the desired ones at the pool's ratio")
    return a_optimal, b_desired
