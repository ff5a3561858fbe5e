"""Ground truth of the chain simulator: every event it planted, with exact amounts.

Entries are named like the OnchainEvent they must become (coattail/contracts/onchain.py):
``kind`` is its ``event_type`` (transfer | swap | liquidity_add | liquidity_remove) and the fields are
its fields, amounts as exact decimal strings already scaled by the token's decimals, with the raw
integer beside them (``*_raw``, a string: JSON readers lose big integers). The amounts are the ones the
simulator planned from the Uniswap formulas (connectors/chainsim/amm.py) *before* sending, not read
back from the chain, so a test comparing them with the chain checks the chain and the decoder both.

A planted action lists only its primary event. The ERC-20 Transfer logs inside a swap or a liquidity
change (token into the pair, out to the trader, LP tokens minted or burnt), the native value a
``swapExactETHForTokens``/``addLiquidityETH`` carries to the router and WETH's Deposit/Withdrawal
are consequences of it and are not listed separately; ``purpose`` says why it was planted.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.types import TxReceipt

from coattail.chains.tokens import scale
from coattail.contracts.onchain import NATIVE_TOKEN
from connectors.chainsim.deploy import Deployment, PoolInfo

NATIVE_SYMBOL = "ETH"


class TruthLog:
    def __init__(self, w3: Web3, deployment: Deployment | None = None):
        self.w3 = w3
        self.deployment = deployment
        self.events: list[dict[str, Any]] = []
        self.prices: list[dict[str, str]] = []  # the path followed: target and pool price per step
        self._timestamps: dict[int, int] = {}
        self.wallets: dict[str, Any] | None = None  # the wallets scenario's planted wallets, when it ran

    def attach(self, deployment: Deployment) -> None:
        self.deployment = deployment

    # -- recording ------------------------------------------------------------------------------
    def transfer(
        self, receipt: TxReceipt, *, token: str, sender: str, to: str, raw: int, purpose: str
    ) -> dict[str, Any]:
        """An ERC-20 transfer (``token`` an address) or a native one (``token`` = NATIVE_TOKEN)."""
        symbol, decimals = self._token(token)
        return self._add(
            receipt,
            "transfer",
            purpose,
            from_address=sender,
            to_address=to,
            token=token,
            token_symbol=symbol,
            amount=_dec(scale(raw, decimals)),
            amount_raw=str(raw),
        )

    def swap(
        self,
        receipt: TxReceipt,
        *,
        pool: PoolInfo,
        trader: str,
        to: str,
        token_in: str,
        raw_in: int,
        token_out: str,
        raw_out: int,
        reserve_in_raw: int,
        reserve_out_raw: int,
        purpose: str,
    ) -> dict[str, Any]:
        sym_in, dec_in = self._token(token_in)
        sym_out, dec_out = self._token(token_out)
        return self._add(
            receipt,
            "swap",
            purpose,
            protocol=pool.protocol,
            pool=pool.address,
            trader=trader,
            to_address=to,
            token_in=token_in,
            token_in_symbol=sym_in,
            amount_in=_dec(scale(raw_in, dec_in)),
            amount_in_raw=str(raw_in),
            token_out=token_out,
            token_out_symbol=sym_out,
            amount_out=_dec(scale(raw_out, dec_out)),
            amount_out_raw=str(raw_out),
            reserve_in=_dec(scale(reserve_in_raw, dec_in)),
            reserve_out=_dec(scale(reserve_out_raw, dec_out)),
        )

    def liquidity(
        self,
        receipt: TxReceipt,
        *,
        kind: str,
        pool: PoolInfo,
        provider: str,
        raw0: int,
        raw1: int,
        liquidity_raw: int,
        reserve0_raw: int,
        reserve1_raw: int,
        purpose: str,
    ) -> dict[str, Any]:
        """A liquidity_add / liquidity_remove: token0 as token_in, token1 as token_out (the contract rule)."""
        sym0, dec0 = self._token(pool.token0)
        sym1, dec1 = self._token(pool.token1)
        return self._add(
            receipt,
            kind,
            purpose,
            protocol=pool.protocol,
            pool=pool.address,
            trader=provider,
            token_in=pool.token0,
            token_in_symbol=sym0,
            amount_in=_dec(scale(raw0, dec0)),
            amount_in_raw=str(raw0),
            token_out=pool.token1,
            token_out_symbol=sym1,
            amount_out=_dec(scale(raw1, dec1)),
            amount_out_raw=str(raw1),
            reserve_in=_dec(scale(reserve0_raw, dec0)),
            reserve_out=_dec(scale(reserve1_raw, dec1)),
            liquidity_raw=str(liquidity_raw),
        )

    def price_step(
        self, block: int, target: Decimal, pool_price: Decimal, timestamp: int | None = None
    ) -> None:
        step = {"block_number": str(block), "target": _dec(target), "pool": _dec(pool_price)}
        if timestamp is not None:  # the step's event time, when the simulator sets block time
            step["timestamp"] = str(timestamp)
        self.prices.append(step)

    def annotate_last(self, **fields: Any) -> None:
        """More fields on the entry just recorded (who a planted wallet is, a whale move's direction)."""
        self.events[-1].update(fields)

    # -- output ---------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event["kind"]] = counts.get(event["kind"], 0) + 1
        return {
            "chain_id": self.w3.eth.chain_id,
            "deployment": asdict(self.deployment) if self.deployment else None,
            "counts": counts,
            "events": self.events,
            "prices": self.prices,
            **({"wallets": self.wallets} if self.wallets is not None else {}),
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")

    # -- helpers --------------------------------------------------------------------------------
    def _token(self, address: str) -> tuple[str, int]:
        if address == NATIVE_TOKEN:
            return NATIVE_SYMBOL, 18
        if self.deployment is None:
            raise RuntimeError("the truth log needs the deployment to name tokens")
        token = self.deployment.token_at(address)
        return token.symbol, token.decimals

    def _block_time(self, block_number: int) -> int:
        if block_number not in self._timestamps:
            self._timestamps[block_number] = int(self.w3.eth.get_block(block_number)["timestamp"])
        return self._timestamps[block_number]

    def _add(self, receipt: TxReceipt, kind: str, purpose: str, **fields: Any) -> dict[str, Any]:
        block = int(receipt["blockNumber"])
        entry = {
            "kind": kind,
            "purpose": purpose,
            "tx_hash": receipt["transactionHash"].to_0x_hex(),
            "block_number": block,
            "block_timestamp": self._block_time(block),
            **fields,
        }
        self.events.append(entry)
        return entry


def _dec(value: Decimal) -> str:
    """Plain decimal text without exponent or trailing zeros ("3000", "0.000001")."""
    text = format(value.normalize(), "f") if value else "0"
    return text
