"""Crafted OnchainEvents for the MOD-004 Spark tests: an informed wallet that buys WETH an hour before
each 1 % rise of the CEX price (seen in valued WETH transfers), three noise wallets with mixed luck, and
two Solana wallets trading WSOL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from coattail.contracts.onchain import OnchainEvent

T0 = datetime(2026, 1, 5, tzinfo=UTC)
D = Decimal
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
POOL = "0xb4e16d0168e52d35cacd2c6185b44281ec28c9dc"
SMART = "0x" + "11" * 20
NOISE = ("0x" + "21" * 20, "0x" + "22" * 20, "0x" + "23" * 20)
SOL_USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
WSOL = "So11111111111111111111111111111111111111112"
SOL_WALLETS = ("9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM", "5Q544fKrFoe6tsEbD7S8EmxGTJYAKtTVhAW5Q5pge4j1")
_ids = count()


def _common(chain: str, at: datetime) -> dict[str, Any]:
    i = next(_ids)
    return {
        "blockchain": chain,
        "block_number": 1000 + i,
        "block_hash": f"0x{i:064x}",
        "block_timestamp": at,
        "tx_hash": f"0x{i + 10**6:064x}" if chain == "ethereum" else f"sig{i:020d}",
        "log_index": 0,
        "ingestion_timestamp": at + timedelta(seconds=2),
    }


def priced_transfer(at: datetime, price: str, chain: str = "ethereum") -> OnchainEvent:
    """2 WETH (WSOL) moved, valued at the CEX ``price``: P(token) = price."""
    token, symbol = (WETH, "WETH") if chain == "ethereum" else (WSOL, "WSOL")
    return OnchainEvent.create(
        **_common(chain, at), event_type="transfer", token=token, token_symbol=symbol, amount=D(2),
        from_address="0x" + "a1" * 20, to_address="0x" + "b2" * 20, usd_value=D(price) * 2,
    )  # fmt: skip


def trade(at: datetime, wallet: str, side: str, price: str, chain: str = "ethereum") -> OnchainEvent:
    """``wallet`` buys or sells one WETH (WSOL) for USDC at ``price``."""
    coin = (WETH, "WETH") if chain == "ethereum" else (WSOL, "WSOL")
    dollars = (USDC if chain == "ethereum" else SOL_USDC, "USDC")
    give, get = (dollars, coin) if side == "buy" else (coin, dollars)
    amount = {dollars[0]: D(price), coin[0]: D(1)}
    return OnchainEvent.create(
        **_common(chain, at), event_type="swap", protocol="uniswap-v2" if chain == "ethereum" else "raydium",
        pool=POOL if chain == "ethereum" else "58oQChx4yWmvKdwLLZzBi4ChoCc2fqCUWBkwMihLYQo2", trader=wallet,
        token_in=give[0], token_in_symbol=give[1], amount_in=amount[give[0]],
        token_out=get[0], token_out_symbol=get[1], amount_out=amount[get[0]], usd_value=D(price),
    )  # fmt: skip


def round_trip(
    at: datetime, wallet: str, side: str, after: str, chain: str = "ethereum"
) -> list[OnchainEvent]:
    """The CEX price at 3000 a minute before a trade, and ``after`` a minute before its horizon (1 h)."""
    return [
        priced_transfer(at - timedelta(minutes=1), "3000", chain),
        trade(at, wallet, side, "3000", chain),
        priced_transfer(at + timedelta(minutes=59), after, chain),
    ]


def scenario() -> list[OnchainEvent]:
    """Ethereum: SMART scores 7 of 7 (+1 % each), the noise wallets the same mixed six; Solana: two
    wallets, one right five times, one wrong five times. Sorted by time, ends with two far closers."""
    events: list[OnchainEvent] = []
    base = T0 + timedelta(hours=10)
    for k in range(6):
        events += round_trip(base + timedelta(hours=10 * k), SMART, "buy", "3030")
        for j, wallet in enumerate(NOISE):
            at = base + timedelta(hours=10 * k + 2 * (j + 1), minutes=30)
            events += round_trip(at, wallet, "buy" if k % 2 else "sell", "2990" if k % 3 else "3015")
        for j, wallet in enumerate(SOL_WALLETS):
            if k < 5:
                at = base + timedelta(hours=10 * k + 1, minutes=15 + 20 * j)
                events += round_trip(at, wallet, "buy", "3060" if j == 0 else "2970", "solana")
    events.sort(key=lambda e: e.block_timestamp)
    last = events[-1].block_timestamp
    events += round_trip(last + timedelta(hours=2), SMART, "buy", "3030")  # while SMART is the top wallet
    end = last + timedelta(hours=8)
    events += [priced_transfer(end, "3000"), priced_transfer(end + timedelta(minutes=5), "3000")]
    return events
