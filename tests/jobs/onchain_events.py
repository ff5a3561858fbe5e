"""Crafted OnchainEvents (mainnet token addresses, a Uniswap V2 USDC/WETH pool) for the MOD-008/009 tests."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from coattail.contracts import dumps
from coattail.contracts.onchain import OnchainEvent

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a window-aligned start
WETH = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
POOL = "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"  # Uniswap V2 USDC/WETH (token0 USDC, token1 WETH)
D = Decimal


def _common(i: int, at: float) -> dict[str, Any]:
    when = T0 + timedelta(seconds=at)
    return {
        "blockchain": "ethereum",
        "block_number": 19_000_000 + i,
        "block_hash": f"0x{i:064x}",
        "block_timestamp": when,
        "tx_hash": f"0x{i + 10**6:064x}",
        "log_index": i % 50,
        "ingestion_timestamp": when + timedelta(seconds=2),
    }


def transfer(
    i: int, at: float, usd: str | None, *, amount: str | None = None, token: tuple[str, str] = (USDC, "USDC")
) -> OnchainEvent:
    return OnchainEvent.create(
        **_common(i, at),
        event_type="transfer",
        token=token[0],
        token_symbol=token[1],
        amount=D(amount or usd or "1"),
        from_address="0x" + "a1" * 20,
        to_address="0x" + "b2" * 20,
        usd_value=None if usd is None else D(usd),
    )


def swap(
    i: int,
    at: float,
    usdc_in: str,
    weth_out: str,
    reserves: tuple[str, str],
    prices: tuple[str, str] | None = None,
) -> OnchainEvent:
    """USDC -> WETH on the pool (a buy of WETH); ``reserves`` (USDC, WETH) after it, as its Sync says."""
    before, after = prices or (None, None)
    return OnchainEvent.create(
        **_common(i, at),
        event_type="swap",
        protocol="uniswap-v2",
        pool=POOL,
        trader="0x" + "c3" * 20,
        token_in=USDC,
        token_in_symbol="USDC",
        amount_in=D(usdc_in),
        token_out=WETH,
        token_out_symbol="WETH",
        amount_out=D(weth_out),
        reserve_in=D(reserves[0]),
        reserve_out=D(reserves[1]),
        price_before=None if before is None else D(before),
        price_after=None if after is None else D(after),
        usd_value=D(usdc_in),
    )


def liquidity_add(i: int, at: float, usdc: str, weth: str, reserves: tuple[str, str]) -> OnchainEvent:
    return OnchainEvent.create(
        **_common(i, at),
        event_type="liquidity_add",
        protocol="uniswap-v2",
        pool=POOL,
        trader="0x" + "d4" * 20,
        token_in=USDC,
        token_in_symbol="USDC",
        amount_in=D(usdc),
        token_out=WETH,
        token_out_symbol="WETH",
        amount_out=D(weth),
        reserve_in=D(reserves[0]),
        reserve_out=D(reserves[1]),
        usd_value=D(usdc) * 2,
    )


def scenario() -> dict[str, OnchainEvent]:
    """Named events with known outcomes (pool: 3,000,000 USDC / 1000 WETH, 3000 USD per WETH)."""
    return {
        "transfer_50k": transfer(1, 1, "50000"),  # exactly 50K: nothing
        "transfer_medium": transfer(2, 2, "50000.01"),
        "transfer_high": transfer(3, 3, "2500000"),
        "transfer_unpriced": transfer(4, 4, None, amount="9000000"),
        # 3000 USDC for 0.997 WETH: a low dex_swap, no large swap; impact from the pool's prices
        "swap_small": swap(5, 5, "3000", "0.997", ("3003000", "999.003"), ("0.000333333", "0.000332668")),
        # 150K USDC: dex_swap medium; large_dex_swap (100K..1M is medium, but impact 9.29 % > 1 %: high)
        "swap_large": swap(6, 20, "150000", "47.5", ("3153000", "951.503"), ("0.000332668", "0.000301777")),
        # next minute: +30 % liquidity (900K USDC + 300 WETH at 3000) -> liquidity_change high
        "add_liquidity": liquidity_add(7, 70, "900000", "300", ("4053000", "1251.503")),
    }


def bad_lines() -> list[str]:
    """Records the on-chain quality stage dead-letters, each with its own reason."""
    good = dumps(transfer(90, 30, "70000")).decode()
    return [
        good.replace('"amount":"70000"', '"amount":"-5"'),  # negative amount
        good.replace('"blockchain":"ethereum"', '"blockchain":"dogecoin"'),  # unknown chain
        "not json at all",
    ]


def jsonl(events: list[OnchainEvent], extra: list[str] = ()) -> str:  # type: ignore[assignment]
    return "".join(dumps(e).decode() + "\n" for e in events) + "".join(x + "\n" for x in extra)


def onchain_config(tmp: Path, modules: str = "[MOD-002, MOD-008, MOD-009]") -> Path:
    """A copy of config/ with a tier that runs the on-chain modules (the shipped large tier also lists
    MOD-004/005/010/011, which are not built yet)."""
    from coattail.settings.paths import config_dir

    target = tmp / "config"
    shutil.copytree(config_dir(), target)
    (target / "tiers" / "onchain.yaml").write_text(f"modules: {modules}\nconnectors: []\n")
    return target
