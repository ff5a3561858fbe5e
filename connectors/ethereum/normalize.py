"""Pure raw Ethereum RPC objects -> OnchainEvents: the one normaliser of the connector and `normalize`.

Two ways in:

* :meth:`EthereumNormalizer.block_events` — the connector: one block (``eth_getBlockByNumber(n, true)``),
  its decoded logs and the hashes of its failed transactions. Unknown tokens and pools must have been
  learned into the registry first (the connector asks the chain; see :meth:`unknown_pools` and
  :meth:`unknown_tokens`).
* :meth:`EthereumNormalizer.normalize_line` — offline, one JSON object per line: a log object as
  ``eth_getLogs`` returns it plus ``blockTimestamp``; a transaction object (with ``blockHash``,
  ``blockNumber``, ``blockTimestamp``); or a whole block with full transactions. Offline there is no
  chain to ask: a token (or pool) missing from the registry is a ValueError naming it — add it to a
  token file (``token_files``). State carried between lines, so put lines in chain order: a pool's
  ``Sync`` gives the reserves of the ``Swap``/``Mint``/``Burn`` that follows it in the same transaction
  (UniswapV2Pair emits Sync first), and a transaction line gives its logs' ``trader`` (its ``from``;
  without it ``trader`` is null). A transaction line may carry its receipt's ``status``: ``"0x0"``
  (reverted) moved no ETH and yields nothing.

Semantics (``coattail/contracts/onchain.py``): amounts are raw integers scaled exactly by the token's
decimals; a V2 swap's direction comes from amount0In/1In/0Out/1Out (net of any flash-swap repayment),
its reserves after the swap from the preceding Sync and its prices (token_out per token_in) from the
reserves before (after minus the swap's net amounts) and after. A V3 swap's price after comes from
``sqrtPriceX96``; the price before from the liquidity L and the output side, fee-free: token0 in ->
``sqrt(P)`` rose by ``-amount1 / L`` back to before; token1 in -> ``1/sqrt(P)`` moved by ``amount0 / L``.
Exact within one tick range (a swap that crossed ticks used more than one L: an estimate then). Prices
are rounded to the lake's 18 fraction digits; one that does not fit the contract's bounds is null.
Native ETH transfers are the transactions' own ``value`` (value moved by contract code inside a
transaction, "internal transactions", needs traces and is not seen).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from typing import Any

from pydantic import ValidationError

from coattail.chains.tokens import Pool, Token, TokenRegistry, scale
from coattail.chains.valuation import PriceBook, usd_value
from coattail.contracts.codec import one_line
from coattail.contracts.onchain import NATIVE_LOG_INDEX, NATIVE_TOKEN, OnchainEvent
from coattail.contracts.types import check_decimal_bounds
from connectors.ethereum.abi import DecodedLog, address, decode_log, hash32, quantity

BLOCKCHAIN = "ethereum"
# The protocol of a pool the registry does not list, by the event family that revealed it.
PROTOCOL_OF_KIND = {"v2_swap": "uniswap-v2", "v2_sync": "uniswap-v2", "v2_mint": "uniswap-v2",
                    "v2_burn": "uniswap-v2", "v3_swap": "uniswap-v3"}  # fmt: skip
POOL_KINDS = frozenset(PROTOCOL_OF_KIND)
_LAKE_FRACTION = Decimal(1).scaleb(-18)
_PRICE_CONTEXT = Context(prec=60)  # ample for 10**38 reserves; rounded to 18 fraction digits after
_SYMBOL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.$_+-")
LINE_MEMORY = 100_000  # transactions whose sender / pools whose last Sync the line mode remembers


class UnknownTokenError(ValueError):
    """Offline, a token or pool that the registry does not list (no chain to ask)."""


def clean_symbol(symbol: str | None) -> str | None:
    """A token symbol as the contract allows it (TOKEN_SYMBOL_PATTERN), or None for one it cannot carry."""
    if not symbol:
        return None
    kept = "".join(c for c in symbol if c in _SYMBOL_CHARS)[:20]
    return kept or None


def _symbol(token: Token) -> str | None:
    return (
        token.symbol
        if token.symbol and len(token.symbol) <= 20 and set(token.symbol) <= _SYMBOL_CHARS
        else None
    )


def price_of(numerator: Fraction) -> Decimal | None:
    """A derived price (exact fraction) rounded to 18 fraction digits; None when it cannot be carried."""
    if numerator <= 0:
        return None
    value = _PRICE_CONTEXT.divide(Decimal(numerator.numerator), Decimal(numerator.denominator))
    try:
        rounded = check_decimal_bounds(
            value.quantize(_LAKE_FRACTION, rounding=ROUND_HALF_EVEN, context=_PRICE_CONTEXT)
        )
    except (ValueError, ArithmeticError):
        return None
    return rounded if rounded > 0 else None  # a price below 1e-18 is not "free"


class _Bounded(OrderedDict[Any, Any]):
    """Insertion-ordered dict that forgets its oldest entries beyond ``limit`` (the line mode's memory)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


class EthereumNormalizer:
    """Decoded logs and transactions -> OnchainEvents, valued from ``book`` (an empty book: usd null)."""

    source = BLOCKCHAIN

    def __init__(
        self, registry: TokenRegistry, book: PriceBook | None = None, *, memory: int = LINE_MEMORY
    ) -> None:
        if registry.chain != BLOCKCHAIN:
            raise ValueError(
                f"the Ethereum normaliser needs the ethereum token registry, not {registry.chain!r}"
            )
        self.registry = registry
        self.book = book
        self._senders = _Bounded(memory)  # line mode: tx hash -> from
        self._syncs = _Bounded(memory)  # line mode: (tx hash, pool) -> (log index, reserve0, reserve1)

    # -- offline: one JSON object per line ---------------------------------------------------------
    def normalize_line(self, obj: Any) -> list[OnchainEvent]:
        """Events of one log, transaction or block object ([] for a log that is not ours, a Sync, a
        removed log, a zero-value transaction); ValueError with a one-line reason for a bad one."""
        if type(obj) is not dict:
            raise ValueError(f"expected a JSON object (log, transaction or block), got {type(obj).__name__}")
        now = datetime.now(UTC)
        if "topics" in obj:
            if obj.get("removed") is True:
                return []  # a log the node withdrew in a reorg: not an event
            decoded = decode_log(obj)
            if decoded is None:
                return []
            if decoded.block_timestamp is None:
                raise ValueError("blockTimestamp: missing; add the block's timestamp to each log line")
            self._need_registered(decoded)
            event = self._log_event(
                decoded, self._senders.get(decoded.tx_hash), self._syncs, _utc(decoded.block_timestamp), now
            )
            return [] if event is None else [event]
        if "transactions" in obj:
            return self._block_line(obj, now)
        if "from" in obj and "value" in obj:
            return self._transaction_line(obj, None, now)
        raise ValueError("not a log (topics), a transaction (from, value) or a block (transactions) object")

    def _block_line(self, block: dict[str, Any], now: datetime) -> list[OnchainEvent]:
        txs = block["transactions"]
        if type(txs) is not list or any(type(tx) is not dict for tx in txs):
            raise ValueError(
                "transactions: expected full transaction objects (eth_getBlockByNumber(n, true))"
            )
        timestamp = quantity(block.get("timestamp"), "timestamp")
        events: list[OnchainEvent] = []
        for tx in txs:
            events += self._transaction_line(tx, timestamp, now)
        return events

    def _transaction_line(
        self, tx: dict[str, Any], block_time: int | None, now: datetime
    ) -> list[OnchainEvent]:
        tx_hash = hash32(tx.get("hash"), "hash")
        sender = address(tx.get("from"), "from")
        self._senders[tx_hash] = sender
        if tx.get("blockHash") is None:
            raise ValueError("blockHash: missing (a pending transaction has no block yet)")
        status = tx.get("status")
        if status is not None and quantity(status, "status") == 0:
            return []  # reverted: its value never moved
        if block_time is None:
            if tx.get("blockTimestamp") is None:
                raise ValueError(
                    "blockTimestamp: missing; add the block's timestamp to each transaction line"
                )
            block_time = quantity(tx.get("blockTimestamp"), "blockTimestamp")
        event = self.native_transfer(tx, _utc(block_time), now)
        return [] if event is None else [event]

    def _need_registered(self, decoded: DecodedLog) -> None:
        if decoded.kind == "v2_sync":
            return  # only remembered for the event that follows it
        if decoded.kind == "transfer":
            if self.registry.token(decoded.address) is None:
                raise UnknownTokenError(
                    f"token {decoded.address}: its decimals are unknown offline; add it to a token file "
                    "(tokens: in config/tokens or token_files)"
                )
            return
        pool = self.registry.pool(decoded.address)
        if pool is None:
            raise UnknownTokenError(
                f"pool {decoded.address}: its token0/token1 are unknown offline; add it to a token file "
                "(pools: in config/tokens or token_files)"
            )
        for token in (pool.token0, pool.token1):
            if self.registry.token(token) is None:
                raise UnknownTokenError(
                    f"token {token} (of pool {decoded.address}): its decimals are unknown offline; add it "
                    "to a token file"
                )

    # -- the connector: a whole block ---------------------------------------------------------------
    def unknown_pools(self, logs: Iterable[DecodedLog]) -> set[str]:
        """Emitters of pool events that the registry does not list (ask them token0()/token1())."""
        return {d.address for d in logs if d.kind in POOL_KINDS and self.registry.pool(d.address) is None}

    def unknown_tokens(self, logs: Iterable[DecodedLog]) -> set[str]:
        """Tokens of these logs (transferred, or a listed pool's sides) whose decimals are unknown."""
        wanted: set[str] = set()
        for d in logs:
            if d.kind == "transfer":
                wanted.add(d.address)
                continue
            pool = self.registry.pool(d.address)
            if pool is not None:
                wanted.update((pool.token0, pool.token1))
        return {a for a in wanted if self.registry.token(a) is None}

    def block_events(
        self,
        block: Mapping[str, Any],
        logs: list[DecodedLog],
        failed_txs: frozenset[str] | set[str] = frozenset(),
    ) -> tuple[list[OnchainEvent], list[tuple[str, Any]]]:
        """Events of one block in chain order (each transaction's value transfer before its logs), and
        (reason, raw) for what could not be normalised (the connector dead-letters those)."""
        now = datetime.now(UTC)
        at = _utc(quantity(block.get("timestamp"), "timestamp"))
        txs = block.get("transactions") or []
        senders: dict[str, str] = {}
        order: dict[str, int] = {}
        keyed: list[tuple[tuple[int, int], OnchainEvent]] = []
        rejects: list[tuple[str, Any]] = []
        for position, tx in enumerate(txs):
            try:
                tx_hash = hash32(tx.get("hash"), "hash")
                senders[tx_hash] = address(tx.get("from"), "from")
                order[tx_hash] = position
                if tx_hash in failed_txs:
                    continue
                event = self.native_transfer(tx, at, now)
            except (ValueError, AttributeError, ArithmeticError) as exc:  # one bad transaction, not the block
                rejects.append((f"transaction: {exc}", tx))
                continue
            if event is not None:
                keyed.append(((position, NATIVE_LOG_INDEX), event))
        syncs: dict[tuple[str, str], tuple[int, int, int]] = {}
        for d in sorted(logs, key=lambda d: d.log_index):
            try:
                self._need_resolved(d)
                event = self._log_event(d, senders.get(d.tx_hash), syncs, at, now)
            except (ValueError, ArithmeticError) as exc:  # one bad log, not the block
                rejects.append((str(exc) or type(exc).__name__, d.raw))
                continue
            if event is not None:
                keyed.append(((order.get(d.tx_hash, len(txs)), d.log_index), event))
        keyed.sort(key=lambda pair: pair[0])
        return [event for _, event in keyed], rejects

    def _need_resolved(self, d: DecodedLog) -> None:
        if d.kind == "v2_sync":
            return
        if d.kind == "transfer":
            if self.registry.token(d.address) is None:
                raise UnknownTokenError(f"token {d.address}: decimals unknown (decimals() failed)")
        elif self.registry.pool(d.address) is None:
            raise UnknownTokenError(f"pool {d.address}: token0()/token1() unknown (the calls failed)")

    # -- one event -----------------------------------------------------------------------------------
    def native_transfer(self, tx: Mapping[str, Any], at: datetime, now: datetime) -> OnchainEvent | None:
        """A transaction's own ETH value transfer (None for a zero-value transaction)."""
        value = quantity(tx.get("value"), "value")
        if value == 0:
            return None
        native = self.registry.native
        to = tx.get("to")
        event = _create(
            blockchain=BLOCKCHAIN,
            block_number=quantity(tx.get("blockNumber"), "blockNumber"),
            block_hash=hash32(tx.get("blockHash"), "blockHash"),
            block_timestamp=at,
            tx_hash=hash32(tx.get("hash"), "hash"),
            log_index=NATIVE_LOG_INDEX,
            event_type="transfer",
            from_address=address(tx.get("from"), "from"),
            to_address=None if to is None else address(to, "to"),  # None: a contract creation
            trader=address(tx.get("from"), "from"),
            token=NATIVE_TOKEN,
            token_symbol=_symbol(native),
            amount=scale(value, native.decimals),
            ingestion_timestamp=now,
        )
        return self._valued(event)

    def _log_event(
        self,
        d: DecodedLog,
        trader: str | None,
        syncs: dict[tuple[str, str], tuple[int, int, int]],
        at: datetime,
        now: datetime,
    ) -> OnchainEvent | None:
        kind, args = d.kind, d.args
        if kind == "v2_sync":
            syncs[(d.tx_hash, d.address)] = (d.log_index, args["reserve0"], args["reserve1"])
            return None
        base: dict[str, Any] = {
            "blockchain": BLOCKCHAIN, "block_number": d.block_number, "block_hash": d.block_hash,
            "block_timestamp": at, "tx_hash": d.tx_hash, "log_index": d.log_index, "trader": trader,
            "ingestion_timestamp": now,
        }  # fmt: skip
        if kind == "transfer":
            token = self._token(d.address)
            event = _create(
                **base, event_type="transfer", from_address=args["from"], to_address=args["to"],
                token=d.address, token_symbol=_symbol(token), amount=scale(args["value"], token.decimals),
            )  # fmt: skip
            return self._valued(event)
        pool = self._pool(d)
        t0, t1 = self._token(pool.token0), self._token(pool.token1)
        sync = syncs.get((d.tx_hash, d.address))
        reserves = (sync[1], sync[2]) if sync is not None and sync[0] < d.log_index else None
        if kind == "v2_swap":
            fields = _v2_swap(args, t0, t1, reserves)
        elif kind == "v3_swap":
            fields = _v3_swap(args, t0, t1)
        else:  # v2_mint / v2_burn: token0 as the in side, token1 as the out side
            fields = {
                "event_type": "liquidity_add" if kind == "v2_mint" else "liquidity_remove",
                "from_address": args["sender"],
                "to_address": args.get("to"),
                **_two_sides(t0, args["amount0"], t1, args["amount1"]),
            }
            if reserves is not None:
                fields["reserve_in"] = scale(reserves[0], t0.decimals)
                fields["reserve_out"] = scale(reserves[1], t1.decimals)
        event = _create(**base, protocol=pool.protocol, pool=d.address, **fields)
        return self._valued(event)

    def _token(self, token_address: str) -> Token:
        token = self.registry.token(token_address)
        if token is None:
            raise UnknownTokenError(f"token {token_address}: decimals unknown")
        return token

    def _pool(self, d: DecodedLog) -> Pool:
        pool = self.registry.pool(d.address)
        if pool is None:
            raise UnknownTokenError(f"pool {d.address}: token0/token1 unknown")
        return pool

    def _valued(self, event: OnchainEvent) -> OnchainEvent:
        if self.book is None:
            return event
        return event.valued(usd_value(event, self.registry, self.book))


def _create(**fields: Any) -> OnchainEvent:
    """The event, or a one-line ValueError naming the field the contract refused (pydantic's is long)."""
    try:
        return OnchainEvent.create(**fields)
    except ValidationError as exc:
        raise ValueError(f"not a valid OnchainEvent: {one_line(exc)}") from None


def _utc(seconds: int) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"blockTimestamp: {seconds} is not a time") from None


def _two_sides(tin: Token, raw_in: int, tout: Token, raw_out: int) -> dict[str, Any]:
    """The in and out sides of a swap or liquidity change, amounts scaled exactly."""
    return {
        "token_in": tin.address,
        "token_in_symbol": _symbol(tin),
        "amount_in": scale(raw_in, tin.decimals),
        "token_out": tout.address,
        "token_out_symbol": _symbol(tout),
        "amount_out": scale(raw_out, tout.decimals),
    }


def _sides(in_is_0: bool, t0: Token, t1: Token) -> tuple[Token, Token]:
    return (t0, t1) if in_is_0 else (t1, t0)


def _v2_swap(
    args: Mapping[str, Any], t0: Token, t1: Token, reserves: tuple[int, int] | None
) -> dict[str, Any]:
    # Net of what went each way: a flash swap may pay back part of what it took in the same token.
    net0 = args["amount0In"] - args["amount0Out"]
    net1 = args["amount1In"] - args["amount1Out"]
    if net0 > 0 > net1:
        in_is_0, raw_in, raw_out = True, net0, -net1
    elif net1 > 0 > net0:
        in_is_0, raw_in, raw_out = False, net1, -net0
    else:
        raise ValueError(
            f"Swap has no direction (amount0In {args['amount0In']}, amount1In {args['amount1In']}, "
            f"amount0Out {args['amount0Out']}, amount1Out {args['amount1Out']})"
        )
    tin, tout = _sides(in_is_0, t0, t1)
    fields: dict[str, Any] = {
        "event_type": "swap", "from_address": args["sender"], "to_address": args["to"],
        **_two_sides(tin, raw_in, tout, raw_out),
    }  # fmt: skip
    if reserves is not None:
        r_in, r_out = (reserves[0], reserves[1]) if in_is_0 else (reserves[1], reserves[0])
        fields["reserve_in"] = scale(r_in, tin.decimals)
        fields["reserve_out"] = scale(r_out, tout.decimals)
        unit = Fraction(10**tin.decimals, 10**tout.decimals)  # raw out per raw in -> tokens out per token in
        before_in, before_out = r_in - raw_in, r_out + raw_out
        if before_in > 0:
            fields["price_before"] = price_of(Fraction(before_out, before_in) * unit)
        if r_in > 0:
            fields["price_after"] = price_of(Fraction(r_out, r_in) * unit)
    return fields


def _v3_swap(args: Mapping[str, Any], t0: Token, t1: Token) -> dict[str, Any]:
    # Signed from the pool's side: positive = the pool received it (token in).
    a0, a1 = args["amount0"], args["amount1"]
    if a0 > 0 > a1:
        in_is_0 = True
    elif a1 > 0 > a0:
        in_is_0 = False
    else:
        raise ValueError(f"Swap has no direction (amount0 {a0}, amount1 {a1})")
    tin, tout = _sides(in_is_0, t0, t1)
    raw_in, raw_out = (a0, -a1) if in_is_0 else (a1, -a0)
    fields: dict[str, Any] = {
        "event_type": "swap", "from_address": args["sender"], "to_address": args["recipient"],
        **_two_sides(tin, raw_in, tout, raw_out),
    }  # fmt: skip
    sqrt_after = Fraction(args["sqrtPriceX96"], 2**96)
    liquidity = args["liquidity"]
    sqrt_before: Fraction | None = None
    if liquidity > 0 and sqrt_after > 0:
        if in_is_0:  # token1 went out (fee-free): sqrt(P) fell by -a1 / L
            sqrt_before = sqrt_after - Fraction(a1, liquidity)
        else:  # token0 went out: 1/sqrt(P) fell by -a0 / L
            inverse = 1 / sqrt_after - Fraction(a0, liquidity)
            sqrt_before = 1 / inverse if inverse > 0 else None
    unit = Fraction(10**t0.decimals, 10**t1.decimals)  # raw token1 per raw token0 -> token1 per token0

    def out_per_in(sqrt: Fraction | None) -> Decimal | None:
        if sqrt is None or sqrt <= 0:
            return None
        one_per_zero = sqrt * sqrt * unit
        return price_of(one_per_zero if in_is_0 else 1 / one_per_zero)

    fields["price_before"] = out_per_in(sqrt_before)
    fields["price_after"] = out_per_in(sqrt_after)
    return fields
