"""Solana ``getBlock`` / ``getTransaction`` results (``jsonParsed`` encoding) -> OnchainEvents. Pure: no I/O.

What becomes an event:

* **transfers**: system-program ``transfer``/``transferWithSeed`` (lamports / 10^9 as the native token)
  and SPL-token / Token-2022 ``transfer`` and ``transferChecked``, in the outer instructions *and* the
  inner ones (``meta.innerInstructions``). ``log_index`` = :func:`solana_log_index` (i, inner j).
  ``transfer`` names no mint: it comes from the source (else destination) account's entry in the
  transaction's token balances, the decimals from that entry (else the token registry).
  ``from_address``/``to_address`` are the *wallets* owning the token accounts (what labels are about),
  the token account itself when the transaction's token balances do not name its owner; ``trader`` is
  the transaction's fee payer (its first signer), on every event.
* **swaps**: a transaction that invokes a DEX program of the registry's ``programs:`` gives one swap,
  read from the fee payer's (first signer's) balance changes: ``token_in`` is what fell, ``token_out``
  what rose. SOL is counted as lamports of the wallet plus of its token accounts (so wrapped SOL,
  rent of created/closed accounts and the fee cancel out; the fee is added back), reported as the
  native token. When more than one token fell (or rose), SOL is dropped from that side first (a tip
  or rent, not the trade); still ambiguous (e.g. a liquidity add: two tokens in) -> no swap, a note.
  ``protocol`` comes from the first DEX instruction (outer before inner: Jupiter routing through
  Raydium is a Jupiter swap); ``pool`` is a configured pool among that instruction's accounts, else
  the pool account of a Raydium AMM v4 swap (account 1) or Orca Whirlpool swap/swapV2 (account 2/4),
  else the program id itself (an aggregator such as Jupiter has no single pool). ``log_index`` is the
  DEX instruction's own index.
* **failed transactions** (``meta.err`` not null) give nothing; neither do votes and other programs.

A malformed transaction raises :class:`~connectors.trade.NormalizeError` (one line, with where);
:meth:`SolanaNormalizer.block` keeps going and returns it as a rejected transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, WRAPPED_SOL_MINT

from coattail.chains.tokens import TokenRegistry, scale
from coattail.chains.valuation import PriceBook, usd_value
from coattail.contracts.onchain import NATIVE_TOKEN, SOLANA_INNER_SLOTS, OnchainEvent, solana_log_index
from coattail.contracts.types import TIMESTAMP_CEILING, TIMESTAMP_FLOOR, format_utc
from connectors.trade import NormalizeError, now_iso

CHAIN = "solana"
SYSTEM_PROGRAM = str(SYSTEM_PROGRAM_ID)
TOKEN_PROGRAMS = frozenset((str(TOKEN_PROGRAM_ID), str(TOKEN_2022_PROGRAM_ID)))
WRAPPED_SOL = str(WRAPPED_SOL_MINT)
NATIVE_DECIMALS = 9  # lamports per SOL: 10^9
SYSTEM_TRANSFERS = frozenset(("transfer", "transferWithSeed"))
# Token-2022's transferCheckedWithFee counts the gross amount (the fee is withheld at the destination).
TOKEN_TRANSFERS = frozenset(("transfer", "transferChecked", "transferCheckedWithFee"))
# getTransaction results carry no block hash; events built from one say so (the event_id does not
# depend on it, so the same transaction read from getBlock later is the same event).
UNKNOWN_BLOCK_HASH = "unknown"
U64_MAX = 2**64 - 1

# Where the pool account sits in a DEX instruction, by program (see the module docstring).
RAYDIUM_AMM_V4 = "675kPX9MHTjS2zt1qfr1NYHuzeLXfQM9H24wFSUt1Mp8"
RAYDIUM_SWAPS = frozenset((9, 11))  # AmmInstruction::SwapBaseIn, SwapBaseOut; the amm is account 1
ORCA_WHIRLPOOL = "whirLbMiicVdio4qvUfM5KAg6Ct8VwpYzGff3uctyCc"


def _anchor_discriminator(name: str) -> bytes:
    """Anchor programs start instruction data with sha256("global:<name>")[:8]."""
    return hashlib.sha256(f"global:{name}".encode()).digest()[:8]


ORCA_POOL_ACCOUNT = {_anchor_discriminator("swap"): 2, _anchor_discriminator("swap_v2"): 4}


@dataclass(frozen=True)
class Rejected:
    """A transaction of a block that could not be read, with the reason (goes to the dead letters)."""

    signature: str | None
    reason: str
    raw: Any


@dataclass
class BlockEvents:
    """A block's events, its unreadable transactions and notes on what was deliberately not emitted."""

    slot: int
    events: list[OnchainEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Block:
    slot: int
    block_hash: str
    timestamp: datetime
    ingested_at: str


@dataclass(frozen=True)
class _TokenAccount:
    index: int
    mint: str
    owner: str | None
    decimals: int


class SolanaNormalizer:
    """Pure jsonParsed block/transaction -> events, with the token registry and an optional price book."""

    blockchain = CHAIN

    def __init__(self, registry: TokenRegistry, book: PriceBook | None = None) -> None:
        if registry.chain != CHAIN:
            raise ValueError(f"a Solana normaliser needs the solana token registry, not {registry.chain!r}")
        self.registry = registry
        self.book = book

    # -- entry points ------------------------------------------------------------------------------
    def block(self, slot: int, block: Any, ingested_at: str) -> BlockEvents:
        """Every event of one ``getBlock`` result (``transactionDetails: full``) at ``slot``.

        A malformed block (no hash, no time) raises NormalizeError; a malformed transaction in it is
        returned in ``rejected`` and the others still count.
        """
        header = self._block_header(slot, block, ingested_at)
        out = BlockEvents(slot)
        transactions = block.get("transactions", [])
        if not isinstance(transactions, list):
            raise NormalizeError(f"slot {slot}: transactions: expected a list")
        for position, tx in enumerate(transactions):
            try:
                out.events.extend(self._transaction(header, tx, out.notes))
            except (NormalizeError, ValueError, ArithmeticError) as exc:  # one bad transaction, not the block
                signature = _first_signature(tx)
                reason = f"slot {slot} transaction {signature or f'#{position}'}: {exc}"
                out.rejected.append(Rejected(signature, reason, tx))
        return out

    def transaction(self, result: Any, ingested_at: str, block_hash: str | None = None) -> list[OnchainEvent]:
        """Events of one ``getTransaction`` result (it has ``slot`` and ``blockTime``, no block hash)."""
        tx = _object(result, "getTransaction result")
        slot = _slot(tx.get("slot"), "slot")
        header = _Block(slot, block_hash or UNKNOWN_BLOCK_HASH, _block_time(tx.get("blockTime")), ingested_at)
        return self._transaction(header, tx, [])

    def normalize_line(self, data: Any) -> list[OnchainEvent]:
        """:meth:`line` ingested now: the ``coattail normalize --source solana`` entry (as Ethereum's)."""
        return self.line(data, now_iso())

    def line(self, data: Any, ingested_at: str) -> list[OnchainEvent]:
        """One ``coattail normalize --source solana`` line (parsed JSON); NormalizeError says why not.

        Accepted: ``{"slot": N, "block": <getBlock result>}``; a ``getTransaction`` result (has
        ``slot``, ``blockTime``, ``transaction``, ``meta``; may add ``blockhash``); either of those as
        a JSON-RPC response (``{"jsonrpc": "2.0", "result": ...}``). A bare getBlock result is refused:
        it does not carry its own slot, and ``parentSlot + 1`` is wrong after every skipped slot.
        """
        obj = _object(data, "line")
        if "jsonrpc" in obj:
            if obj.get("error") is not None:
                raise NormalizeError("a JSON-RPC error response holds no block or transaction")
            obj = _object(obj.get("result"), "result (null: block or transaction not found)")
        if "block" in obj:
            if "slot" not in obj:
                raise NormalizeError('a block line needs its slot: {"slot": N, "block": {...}}')
            result = self.block(_slot(obj.get("slot"), "slot"), obj["block"], ingested_at)
            if result.rejected:
                raise NormalizeError(result.rejected[0].reason)
            return result.events
        if "transaction" in obj and "slot" in obj:
            block_hash = obj.get("blockhash")
            return self.transaction(obj, ingested_at, block_hash if isinstance(block_hash, str) else None)
        if "blockhash" in obj and "parentSlot" in obj:
            raise NormalizeError(
                'a bare getBlock result does not carry its slot; wrap it as {"slot": N, "block": {...}}'
            )
        raise NormalizeError('not a Solana getBlock ({"slot": N, "block": {...}}) or getTransaction result')

    # -- one transaction -------------------------------------------------------------------------------
    def _block_header(self, slot: int, block: Any, ingested_at: str) -> _Block:
        if not isinstance(block, Mapping):
            raise NormalizeError(f"slot {slot}: block: expected a JSON object")
        block_hash = block.get("blockhash")
        if not isinstance(block_hash, str) or not 32 <= len(block_hash) <= 44:
            raise NormalizeError(f"slot {slot}: blockhash: expected a base58 hash")
        return _Block(slot, block_hash, _block_time(block.get("blockTime")), ingested_at)

    def _transaction(self, block: _Block, tx_with_meta: Any, notes: list[str]) -> list[OnchainEvent]:
        entry = _object(tx_with_meta, "transaction entry")
        meta = entry.get("meta")
        if meta is None:
            notes.append(f"slot {block.slot}: a transaction without status meta was skipped")
            return []
        meta = _object(meta, "meta")
        if meta.get("err") is not None:
            return []  # failed: its instructions moved nothing
        tx = entry.get("transaction")
        if not isinstance(tx, Mapping):
            raise NormalizeError("transaction: expected an object (request encoding jsonParsed, not base64)")
        message = _object(tx.get("message"), "transaction.message")
        signature = _signature(tx.get("signatures"))
        keys = _account_keys(message.get("accountKeys"))
        tokens = _token_accounts(meta, keys)
        ctx = _Tx(block, signature, keys, tokens, meta)
        events: list[OnchainEvent] = []
        dex: tuple[int, Mapping[str, Any], str] | None = None
        for log_index, ix in _instructions(message, meta):
            program = ix.get("programId")
            if not isinstance(program, str):
                raise NormalizeError(f"instruction {log_index}: programId: expected a string")
            parsed = ix.get("parsed")
            if isinstance(parsed, Mapping):
                event = self._transfer(ctx, log_index, program, parsed)
                if event is not None:
                    events.append(event)
            if dex is None:
                protocol = self.registry.program(program)
                if protocol is not None:
                    dex = (log_index, ix, protocol)
        if dex is not None:
            swap = self._swap(ctx, *dex, notes)
            if swap is not None:
                events.append(swap)
        return [self._valued(e) for e in events]

    def _valued(self, event: OnchainEvent) -> OnchainEvent:
        if self.book is None:
            return event
        return event.valued(usd_value(event, self.registry, self.book))

    def _transfer(
        self, ctx: _Tx, log_index: int, program: str, parsed: Mapping[str, Any]
    ) -> OnchainEvent | None:
        kind = parsed.get("type")
        where = f"instruction {log_index} ({kind})"
        if program == SYSTEM_PROGRAM and kind in SYSTEM_TRANSFERS:
            info = _object(parsed.get("info"), f"{where}: info")
            lamports = _u64(info.get("lamports"), f"{where}: lamports")
            sender = _address(info.get("source"), f"{where}: source")
            receiver = _address(info.get("destination"), f"{where}: destination")
            ctx.sol_transfers.append((log_index, sender, receiver, lamports))
            return ctx.event(
                log_index,
                event_type="transfer",
                from_address=sender,
                to_address=receiver,
                token=NATIVE_TOKEN,
                token_symbol=self.registry.native.symbol,
                amount=_scale(lamports, NATIVE_DECIMALS, where),
            )
        if program not in TOKEN_PROGRAMS or kind not in TOKEN_TRANSFERS:
            return None
        info = _object(parsed.get("info"), f"{where}: info")
        source = _address(info.get("source"), f"{where}: source")
        destination = _address(info.get("destination"), f"{where}: destination")
        known = ctx.tokens.get(source) or ctx.tokens.get(destination)
        if kind != "transfer":  # transferChecked(WithFee): mint and decimals in the instruction
            token_amount = _object(info.get("tokenAmount"), f"{where}: tokenAmount")
            mint = _address(info.get("mint"), f"{where}: mint")
            raw = _u64(token_amount.get("amount"), f"{where}: tokenAmount.amount")
            decimals = _decimals(token_amount.get("decimals"), f"{where}: tokenAmount.decimals")
        else:
            raw = _u64(info.get("amount"), f"{where}: amount")
            if known is None:
                raise NormalizeError(
                    f"{where}: the source and destination have no token balance (mint unknown)"
                )
            mint, decimals = known.mint, known.decimals
        registered = self.registry.token(mint)
        return ctx.event(
            log_index,
            event_type="transfer",
            from_address=ctx.owner_of(source),
            to_address=ctx.owner_of(destination),
            token=mint,
            token_symbol=registered.symbol if registered else None,
            amount=_scale(raw, decimals, where),
        )

    def _swap(
        self, ctx: _Tx, log_index: int, ix: Mapping[str, Any], protocol: str, notes: list[str]
    ) -> OnchainEvent | None:
        trader_index = ctx.first_signer()
        trader = ctx.keys[trader_index]
        changes = ctx.balance_changes(trader_index, _side_payments(ctx, trader, log_index, ix))
        fell = {token: -delta for token, (delta, _) in changes.items() if delta < 0}
        rose = {token: delta for token, (delta, _) in changes.items() if delta > 0}
        for side in (fell, rose):
            if len(side) > 1:
                side.pop(NATIVE_TOKEN, None)  # a tip or rent beside the traded token, not the trade
        if len(fell) != 1 or len(rose) != 1:
            notes.append(
                f"{ctx.signature}: {protocol} transaction without a clear swap for {trader} "
                f"({len(fell)} token(s) fell, {len(rose)} rose)"
            )
            return None
        (token_in, raw_in), (token_out, raw_out) = next(iter(fell.items())), next(iter(rose.items()))
        where = f"{protocol} swap"
        return ctx.event(
            log_index,
            event_type="swap",
            protocol=protocol,
            pool=self._pool(ix),
            trader=trader,
            token_in=token_in,
            token_in_symbol=self._symbol(token_in),
            amount_in=_scale(raw_in, changes[token_in][1], where),
            token_out=token_out,
            token_out_symbol=self._symbol(token_out),
            amount_out=_scale(raw_out, changes[token_out][1], where),
        )

    def _symbol(self, token: str) -> str | None:
        found = self.registry.token(token)
        return found.symbol if found else None

    def _pool(self, ix: Mapping[str, Any]) -> str:
        program = str(ix["programId"])
        accounts = ix.get("accounts")
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            return program
        for account in accounts:
            if self.registry.pool(account) is not None:
                return str(account)
        data = _base58(ix.get("data"))
        position: int | None = None
        if program == RAYDIUM_AMM_V4 and data[:1] and data[0] in RAYDIUM_SWAPS:
            position = 1
        elif program == ORCA_WHIRLPOOL:
            position = ORCA_POOL_ACCOUNT.get(data[:8])
        if position is not None and position < len(accounts):
            return _address(accounts[position], "pool account")
        return program


class _Tx:
    """One transaction's shared facts while its instructions become events."""

    def __init__(
        self,
        block: _Block,
        signature: str,
        keys: list[tuple[str, bool]],
        tokens: dict[str, _TokenAccount],
        meta: Mapping[str, Any],
    ) -> None:
        self.block = block
        self.signature = signature
        self.signers = [i for i, (_, signer) in enumerate(keys) if signer]
        self.keys = [key for key, _ in keys]
        self.tokens = tokens
        self.meta = meta
        self.sol_transfers: list[tuple[int, str, str, int]] = []  # (log_index, from, to, lamports)

    def event(self, log_index: int, **fields: Any) -> OnchainEvent:
        """An event of this transaction; ``trader`` is its fee payer unless given (as Ethereum's ``from``)."""
        if self.signers:
            fields.setdefault("trader", self.keys[self.signers[0]])
        try:
            return OnchainEvent.create(
                blockchain=CHAIN,
                block_number=self.block.slot,
                block_hash=self.block.block_hash,
                block_timestamp=self.block.timestamp,
                tx_hash=self.signature,
                log_index=log_index,
                ingestion_timestamp=self.block.ingested_at,
                **fields,
            )
        except ValueError as exc:  # pydantic's ValidationError: first problem, one line
            first = str(exc).splitlines()
            raise NormalizeError(f"instruction {log_index}: {' '.join(first[:3])}") from None

    def owner_of(self, token_account: str) -> str:
        known = self.tokens.get(token_account)
        return known.owner if known is not None and known.owner else token_account

    def first_signer(self) -> int:
        if not self.signers:
            raise NormalizeError("accountKeys: no signer (the fee payer signs every transaction)")
        return self.signers[0]

    def balance_changes(self, wallet: int, side_payments: int = 0) -> dict[str, tuple[int, int]]:
        """token -> (raw change, decimals) for the wallet: SPL mints by owner, SOL as lamports (plus the
        ``side_payments`` lamports it sent outside the trade)."""
        owner = self.keys[wallet]
        pre = _balances(self.meta.get("preTokenBalances"), "preTokenBalances")
        post = _balances(self.meta.get("postTokenBalances"), "postTokenBalances")
        changes: dict[str, tuple[int, int]] = {}
        owned: set[int] = set()
        for sign, entries in ((-1, pre), (1, post)):
            for index, (account, amount) in entries.items():
                if account.owner != owner:
                    continue
                owned.add(index)
                if account.mint == WRAPPED_SOL:
                    continue  # counted as lamports below (with the native SOL it wraps)
                delta, _ = changes.get(account.mint, (0, account.decimals))
                changes[account.mint] = (delta + sign * amount, account.decimals)
        lamports = _lamport_list(self.meta.get("preBalances"), "preBalances", len(self.keys))
        lamports_after = _lamport_list(self.meta.get("postBalances"), "postBalances", len(self.keys))
        sol = sum(lamports_after[i] - lamports[i] for i in {wallet, *owned}) + side_payments
        if wallet == 0:  # the fee payer paid the fee: not part of the trade
            sol += _u64(self.meta.get("fee", 0), "meta.fee")
        changes[NATIVE_TOKEN] = (sol, NATIVE_DECIMALS)
        return {token: change for token, change in changes.items() if change[0] != 0}


def _side_payments(ctx: _Tx, trader: str, dex_index: int, dex: Mapping[str, Any]) -> int:
    """Lamports the trader sent, outside the DEX instruction, to accounts that instruction does not touch
    (a Jito tip, a fee to a front end): separate transfers, not what the swap cost."""
    outer = dex_index // SOLANA_INNER_SLOTS
    accounts = dex.get("accounts")
    touched = set(accounts) if isinstance(accounts, list) else set()
    return sum(
        lamports
        for log_index, sender, receiver, lamports in ctx.sol_transfers
        if sender == trader
        and log_index // SOLANA_INNER_SLOTS != outer
        and receiver not in touched
        and receiver not in ctx.tokens
    )


# -- reading the jsonParsed shapes ---------------------------------------------------------------------
def _instructions(
    message: Mapping[str, Any], meta: Mapping[str, Any]
) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(log_index, instruction) for every outer instruction, each followed by its inner instructions."""
    outer = message.get("instructions")
    if not isinstance(outer, list):
        raise NormalizeError("transaction.message.instructions: expected a list")
    inner: dict[int, list[Any]] = {}
    groups = meta.get("innerInstructions") or []
    if not isinstance(groups, list):
        raise NormalizeError("meta.innerInstructions: expected a list")
    for group in groups:
        group = _object(group, "meta.innerInstructions[]")
        index, instructions = group.get("index"), group.get("instructions")
        if type(index) is not int or not 0 <= index < len(outer) or not isinstance(instructions, list):
            raise NormalizeError(
                "meta.innerInstructions[]: expected an outer index and a list of instructions"
            )
        inner.setdefault(index, []).extend(instructions)
    for i, ix in enumerate(outer):
        yield solana_log_index(i), _object(ix, f"instruction {i}")
        for j, inner_ix in enumerate(inner.get(i, ())):
            try:
                log_index = solana_log_index(i, j)
            except ValueError as exc:
                raise NormalizeError(f"instruction {i}: {exc}") from None
            yield log_index, _object(inner_ix, f"instruction {i} inner {j}")


def _account_keys(value: Any) -> list[tuple[str, bool]]:
    """(pubkey, signer) of every account, lookup-table ones included (jsonParsed lists them all)."""
    if not isinstance(value, list) or not value:
        raise NormalizeError("transaction.message.accountKeys: expected a non-empty list")
    keys = []
    for i, key in enumerate(value):
        if not isinstance(key, Mapping):
            raise NormalizeError("accountKeys: expected objects with pubkey and signer (jsonParsed encoding)")
        keys.append((_address(key.get("pubkey"), f"accountKeys[{i}].pubkey"), key.get("signer") is True))
    return keys


def _token_accounts(meta: Mapping[str, Any], keys: list[tuple[str, bool]]) -> dict[str, _TokenAccount]:
    """Token account pubkey -> its mint, owner and decimals, from the pre and post token balances."""
    found: dict[str, _TokenAccount] = {}
    for name in ("preTokenBalances", "postTokenBalances"):
        for index, (account, _) in _balances(meta.get(name), name).items():
            if index >= len(keys):
                raise NormalizeError(
                    f"meta.{name}: accountIndex {index} is not an account of the transaction"
                )
            found.setdefault(keys[index][0], account)
    return found


def _balances(value: Any, name: str) -> dict[int, tuple[_TokenAccount, int]]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise NormalizeError(f"meta.{name}: expected a list")
    out: dict[int, tuple[_TokenAccount, int]] = {}
    for entry in value:
        entry = _object(entry, f"meta.{name}[]")
        index = entry.get("accountIndex")
        if type(index) is not int or index < 0:
            raise NormalizeError(f"meta.{name}[].accountIndex: expected an index")
        where = f"meta.{name}[{index}]"
        ui = _object(entry.get("uiTokenAmount"), f"{where}.uiTokenAmount")
        owner = entry.get("owner")
        account = _TokenAccount(
            index,
            _address(entry.get("mint"), f"{where}.mint"),
            _address(owner, f"{where}.owner") if owner is not None else None,
            _decimals(ui.get("decimals"), f"{where}.uiTokenAmount.decimals"),
        )
        out[index] = (account, _u64(ui.get("amount"), f"{where}.uiTokenAmount.amount"))
    return out


def _lamport_list(value: Any, name: str, size: int) -> list[int]:
    if not isinstance(value, list) or len(value) != size:
        raise NormalizeError(f"meta.{name}: expected one balance per account ({size})")
    return [_u64(v, f"meta.{name}[]") for v in value]


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise NormalizeError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _slot(value: Any, where: str) -> int:
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise NormalizeError(f"{where}: expected a slot number")
    return value


def _block_time(value: Any) -> datetime:
    if type(value) is not int:
        raise NormalizeError(
            "blockTime: expected Unix seconds (null: the node does not know the block's time)"
        )
    try:
        at = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise NormalizeError(f"blockTime: {value} is out of range") from None
    if not TIMESTAMP_FLOOR <= at < TIMESTAMP_CEILING:
        raise NormalizeError(f"blockTime: {format_utc(at)} is outside the accepted time window")
    return at


def _u64(value: Any, where: str) -> int:
    """A u64 as jsonParsed writes it: a JSON number (lamports) or a decimal string (token amounts)."""
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise NormalizeError(f"{where}: expected an unsigned 64-bit integer")
    return value


def _decimals(value: Any, where: str) -> int:
    if type(value) is not int or not 0 <= value <= 255:
        raise NormalizeError(f"{where}: expected a number of decimals")
    return value


def _scale(raw: int, decimals: int, where: str) -> Decimal:
    try:
        return scale(raw, decimals)
    except ValueError as exc:
        raise NormalizeError(f"{where}: {exc}") from None


def _address(value: Any, where: str) -> str:
    if type(value) is not str or not 32 <= len(value) <= 44:
        raise NormalizeError(f"{where}: expected a base58 address")
    try:
        Pubkey.from_string(value)
    except ValueError:
        raise NormalizeError(f"{where}: {value!r} is not a base58 address") from None
    return value


def _signature(value: Any) -> str:
    if not isinstance(value, list) or not value or type(value[0]) is not str or len(value[0]) > 88:
        raise NormalizeError("transaction.signatures: expected a list of base58 signatures")
    try:
        Signature.from_string(value[0])
    except ValueError:
        raise NormalizeError(f"transaction.signatures[0]: {value[0][:20]!r}... is not a signature") from None
    return value[0]


def _first_signature(tx: Any) -> str | None:
    try:
        sigs = tx["transaction"]["signatures"]
        return sigs[0] if isinstance(sigs[0], str) else None
    except (KeyError, IndexError, TypeError):
        return None


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def _base58(value: Any) -> bytes:
    """Instruction data of an unparsed instruction (base58); b"" when absent or not base58."""
    if type(value) is not str or len(value) > 2048:
        return b""
    number = 0
    for char in value:
        digit = _B58_INDEX.get(char)
        if digit is None:
            return b""
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(value) - len(value.lstrip("1"))) + body
