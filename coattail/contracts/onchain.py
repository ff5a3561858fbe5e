"""OnchainEvent: the normalised on-chain event every chain connector writes (DESIGN.md "Contracts").

One model for transfers, swaps and liquidity changes on every chain; fields that a kind of event does
not have are null. Amounts are exact decimals already scaled by the token's decimals.

Field use per ``event_type``:

* ``transfer``: ``from_address`` → ``to_address``, ``token``/``token_symbol``/``amount``. A native
  transfer (ETH, SOL) has ``token`` = :data:`NATIVE_TOKEN`.
* ``swap``: ``trader`` gave ``amount_in`` of ``token_in`` to ``pool`` and got ``amount_out`` of
  ``token_out``. ``reserve_in``/``reserve_out`` are the pool's reserves of those tokens *after* the
  swap where the pool reports them (Uniswap V2 ``Sync``); ``price_before``/``price_after`` are the
  pool's marginal price (``token_out`` per one ``token_in``) around the swap (V2 from the reserves,
  V3 from ``sqrtPriceX96`` and the liquidity).
* ``liquidity_add``/``liquidity_remove``: the pool's two sides, token0 as ``token_in``/``amount_in``
  and token1 as ``token_out``/``amount_out`` (amounts added to or removed from the pool), with the
  reserves after the change.

``log_index`` is the log's index in its block on Ethereum (:data:`NATIVE_LOG_INDEX` for a
transaction's own value transfer) and :func:`solana_log_index` of the instruction on Solana.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from coattail.contracts.ids import onchain_event_id
from coattail.contracts.spark import DECIMAL_SCALE as LAKE_FRACTION_DIGITS
from coattail.contracts.types import ExactDecimal, UtcDatetime

Blockchain = Literal["ethereum", "solana"]
BLOCKCHAINS: tuple[Blockchain, ...] = ("ethereum", "solana")
OnchainEventType = Literal["transfer", "swap", "liquidity_add", "liquidity_remove"]
LIQUIDITY_EVENTS = ("liquidity_add", "liquidity_remove")
# The token of a chain's native coin transfer (ETH on Ethereum, SOL on Solana) in the token registry.
NATIVE_TOKEN = "native"  # noqa: S105 - a token name, not a secret
# A transaction's own value transfer has no log; it sorts before the transaction's logs.
NATIVE_LOG_INDEX = -1
# Solana: instruction i of a transaction is i * SOLANA_INNER_SLOTS; its j-th inner instruction adds j + 1.
SOLANA_INNER_SLOTS = 1000
ADDRESS_MAX_CHARS = 64  # 0x + 40 hex (Ethereum), base58 of 32 bytes (Solana, 32-44 chars)
HASH_MAX_CHARS = 100  # 0x + 64 hex (Ethereum), base58 of a 64-byte signature (Solana, up to 88)
_WIDE = Context(prec=80, rounding=ROUND_HALF_EVEN)  # quantize never runs out of digits (28 by default)
PROTOCOL_PATTERN = r"^[a-z][a-z0-9-]{1,31}$"
TOKEN_SYMBOL_PATTERN = r"^[A-Za-z0-9.$_+-]{1,20}$"  # noqa: S105


def solana_log_index(instruction: int, inner: int | None = None) -> int:
    """Position of a Solana instruction (or of inner instruction ``inner`` beneath it) in its transaction."""
    if inner is not None and not 0 <= inner < SOLANA_INNER_SLOTS - 1:
        raise ValueError(f"inner instruction index {inner} is out of range")
    return instruction * SOLANA_INNER_SLOTS + (0 if inner is None else inner + 1)


Address = str  # documented alias: checksummed hex on Ethereum, base58 on Solana


class OnchainEvent(BaseModel):
    """One on-chain transfer, swap or liquidity change; ``event_id`` is UUIDv5 of chain, tx and index."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, max_length=64)
    blockchain: Blockchain
    block_number: int = Field(ge=0, description="block number; the slot on Solana")
    block_hash: str = Field(min_length=1, max_length=HASH_MAX_CHARS)
    block_timestamp: UtcDatetime
    tx_hash: str = Field(min_length=1, max_length=HASH_MAX_CHARS, description="the signature on Solana")
    log_index: int = Field(ge=NATIVE_LOG_INDEX)
    event_type: OnchainEventType
    protocol: str | None = Field(default=None, pattern=PROTOCOL_PATTERN)
    pool: str | None = Field(default=None, max_length=ADDRESS_MAX_CHARS)
    from_address: str | None = Field(default=None, max_length=ADDRESS_MAX_CHARS)
    to_address: str | None = Field(default=None, max_length=ADDRESS_MAX_CHARS)
    trader: str | None = Field(default=None, max_length=ADDRESS_MAX_CHARS)
    token: str | None = Field(default=None, max_length=ADDRESS_MAX_CHARS)
    token_symbol: str | None = Field(default=None, pattern=TOKEN_SYMBOL_PATTERN)
    amount: ExactDecimal | None = Field(default=None, ge=0)
    token_in: str | None = Field(default=None, max_length=ADDRESS_MAX_CHARS)
    token_in_symbol: str | None = Field(default=None, pattern=TOKEN_SYMBOL_PATTERN)
    amount_in: ExactDecimal | None = Field(default=None, ge=0)
    token_out: str | None = Field(default=None, max_length=ADDRESS_MAX_CHARS)
    token_out_symbol: str | None = Field(default=None, pattern=TOKEN_SYMBOL_PATTERN)
    amount_out: ExactDecimal | None = Field(default=None, ge=0)
    reserve_in: ExactDecimal | None = Field(default=None, ge=0)
    reserve_out: ExactDecimal | None = Field(default=None, ge=0)
    price_before: ExactDecimal | None = Field(default=None, ge=0)
    price_after: ExactDecimal | None = Field(default=None, ge=0)
    usd_value: ExactDecimal | None = Field(default=None, ge=0, description="null (never 0) without a price")
    ingestion_timestamp: UtcDatetime

    @field_validator("price_before", "price_after", "usd_value")
    @classmethod
    def _lake_precision(cls, value: Decimal | None) -> Decimal | None:
        # Derived figures (prices, values) are inexact anyway: round them to the lake's 18 digits here,
        # so the stream, the lake and the batch path all hold the same number.
        exponent = None if value is None else value.as_tuple().exponent
        if value is not None and isinstance(exponent, int) and exponent < -LAKE_FRACTION_DIGITS:
            return value.quantize(Decimal(1).scaleb(-LAKE_FRACTION_DIGITS), context=_WIDE)
        return value

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> OnchainEvent:
        if self.event_type == "transfer":
            if self.token is None or self.amount is None:
                raise ValueError("a transfer needs token and amount")
        elif None in (self.token_in, self.amount_in, self.token_out, self.amount_out):
            raise ValueError(f"a {self.event_type} needs token_in, amount_in, token_out and amount_out")
        elif self.protocol is None or self.pool is None:
            raise ValueError(f"a {self.event_type} needs protocol and pool")
        return self

    @classmethod
    def create(cls, **fields: object) -> OnchainEvent:
        """Build an event with its deterministic ``event_id`` (from blockchain, tx_hash, log_index)."""
        index = fields["log_index"]
        if not isinstance(index, int):
            raise ValueError(f"log_index must be an integer, got {type(index).__name__}")
        event_id = onchain_event_id(str(fields["blockchain"]), str(fields["tx_hash"]), index)
        return cls.model_validate({"event_id": event_id, **fields})

    def valued(self, usd_value: Decimal | None) -> OnchainEvent:
        """This event with ``usd_value`` set (the valuation stage; None stays null)."""
        return self.model_copy(update={"usd_value": usd_value})
