"""The events and calls the Ethereum connector understands, decoded with eth-abi (no hand-rolled slicing).

An event is its Solidity signature split into indexed and data parameters; ``topic0`` is the keccak of
the signature. :func:`decode_log` turns one raw log (as ``eth_getLogs`` returns it) into a
:class:`DecodedLog`: ``topics[1:]`` (one ABI word per indexed parameter) and ``data`` decoded together by
one ``eth_abi.decode`` of the event's parameter types in strict mode (every parameter of these events is
static, so they form one ABI head); non-zero padding or short data is refused, not misread.

ERC-20 and ERC-721 share ``Transfer``'s topic0; an ERC-721 ``Transfer`` indexes its third parameter
(four topics, no data) and is not an ERC-20 transfer: :func:`decode_log` returns None for it, as for
any event that is not ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak


@dataclass(frozen=True, slots=True)
class EventAbi:
    """One event: ``kind`` names it for the normaliser; ``params`` are (name, type, indexed) in
    declaration order (the order of the signature whose keccak is ``topic0``)."""

    kind: str
    name: str
    params: tuple[tuple[str, str, bool], ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(t for _, t, _ in self.params)})"

    @property
    def topic0(self) -> str:
        return "0x" + keccak(text=self.signature).hex()

    @property
    def indexed(self) -> tuple[tuple[str, str], ...]:
        return tuple((n, t) for n, t, i in self.params if i)

    @property
    def data(self) -> tuple[tuple[str, str], ...]:
        return tuple((n, t) for n, t, i in self.params if not i)


IX, DATA = True, False
ERC20_TRANSFER = EventAbi(
    "transfer", "Transfer", (("from", "address", IX), ("to", "address", IX), ("value", "uint256", DATA))
)
V2_SWAP = EventAbi(
    "v2_swap",
    "Swap",
    (
        ("sender", "address", IX), ("amount0In", "uint256", DATA), ("amount1In", "uint256", DATA),
        ("amount0Out", "uint256", DATA), ("amount1Out", "uint256", DATA), ("to", "address", IX),
    ),
)  # fmt: skip
V2_SYNC = EventAbi("v2_sync", "Sync", (("reserve0", "uint112", DATA), ("reserve1", "uint112", DATA)))
V2_MINT = EventAbi(
    "v2_mint", "Mint", (("sender", "address", IX), ("amount0", "uint256", DATA), ("amount1", "uint256", DATA))
)
V2_BURN = EventAbi(
    "v2_burn",
    "Burn",
    (
        ("sender", "address", IX), ("amount0", "uint256", DATA), ("amount1", "uint256", DATA),
        ("to", "address", IX),
    ),
)  # fmt: skip
V3_SWAP = EventAbi(
    "v3_swap",
    "Swap",
    (
        ("sender", "address", IX), ("recipient", "address", IX), ("amount0", "int256", DATA),
        ("amount1", "int256", DATA), ("sqrtPriceX96", "uint160", DATA), ("liquidity", "uint128", DATA),
        ("tick", "int24", DATA),
    ),
)  # fmt: skip

EVENTS: tuple[EventAbi, ...] = (ERC20_TRANSFER, V2_SWAP, V2_SYNC, V2_MINT, V2_BURN, V3_SWAP)
BY_TOPIC0: dict[str, EventAbi] = {event.topic0: event for event in EVENTS}
# The eth_getLogs filter: any of our events (a list in topics[0] is an OR).
LOG_TOPICS: list[list[str]] = [[event.topic0 for event in EVENTS]]


@dataclass(frozen=True, slots=True)
class _Layout:
    """An event's decode plan, computed once: indexed parameters first (one 32-byte word per topic),
    then the data's, as the type tuple ``eth_abi.decode`` takes; which of them are addresses."""

    event: EventAbi
    topics: int
    names: tuple[str, ...]
    types: tuple[str, ...]
    address_names: tuple[str, ...]


def _layout(event: EventAbi) -> _Layout:
    params = [*event.indexed, *event.data]
    # One decode of topics + data is right only for static types (a dynamic one is an offset into data).
    assert all(t == "address" or t.startswith(("uint", "int")) for _, t in params), event.signature
    return _Layout(
        event,
        1 + len(event.indexed),
        tuple(n for n, _ in params),
        # An address word decoded as uint160 (eth_abi still refuses non-zero padding): its checksum form
        # comes from our cache instead of eth_abi's per-value normalisation, the decoder's largest cost.
        tuple("uint160" if t == "address" else t for _, t in params),
        tuple(n for n, t in params if t == "address"),
    )


_LAYOUTS: dict[str, _Layout] = {event.topic0: _layout(event) for event in EVENTS}


@dataclass(frozen=True, slots=True)
class DecodedLog:
    """A raw log with its event's parameters decoded (addresses checksummed, integers exact)."""

    kind: str
    address: str  # the emitting contract (token or pool), checksummed
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    block_timestamp: int | None  # seconds; None when the log object does not carry it
    args: dict[str, Any]
    raw: Any = None  # the log object it came from (a dead letter carries it)


@lru_cache(maxsize=65536)
def checksum(address: str) -> str:
    """EIP-55 form of a 20-byte hex address (cached: the same pools and tokens recur in every block)."""
    return to_checksum_address(address)


def quantity(value: Any, field: str) -> int:
    """An RPC quantity (``"0x1b4"``; a plain non-negative int is accepted too) as an int."""
    if type(value) is int and value >= 0:
        return value
    if type(value) is str and value[:2] in ("0x", "0X") and 2 < len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise ValueError(f"{field}: expected a hex quantity such as '0x1b4', got {_show(value)}")


def hex_bytes(value: Any, field: str, size: int | None = None) -> bytes:
    """RPC DATA (``"0x..."``) as bytes, optionally of exactly ``size`` bytes."""
    if type(value) is str and value[:2] in ("0x", "0X"):
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raw = None
        if raw is not None and (size is None or len(raw) == size):
            return raw
    want = f"{size}-byte " if size is not None else ""
    raise ValueError(f"{field}: expected {want}hex data ('0x...'), got {_show(value)}")


def hash32(value: Any, field: str) -> str:
    """A 32-byte hash as lower-case ``0x`` hex (the form event ids are made from)."""
    hex_bytes(value, field, 32)
    return str(value).lower()


def address(value: Any, field: str) -> str:
    hex_bytes(value, field, 20)
    return checksum(str(value))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def decode_log(log: Any) -> DecodedLog | None:
    """One ``eth_getLogs`` log object decoded; None if it is not one of :data:`EVENTS` (or an ERC-721
    Transfer); ValueError with a one-line reason for a malformed one."""
    if type(log) is not dict:
        raise ValueError(f"expected a log object, got {type(log).__name__}")
    topics = log.get("topics")
    if type(topics) is not list or not topics:
        raise ValueError("topics: expected a non-empty list of 32-byte hex topics")
    topic0 = topics[0].lower() if type(topics[0]) is str else topics[0]
    layout = _LAYOUTS.get(topic0)
    if layout is None:
        hex_bytes(topics[0], "topics[0]", 32)
        return None
    event = layout.event
    if len(topics) != layout.topics:
        if event is ERC20_TRANSFER and len(topics) == 4:
            return None  # ERC-721 Transfer(from, to, tokenId indexed): an NFT, not an amount
        raise ValueError(f"{event.name}: expected {layout.topics} topics, got {len(topics)}")
    data = hex_bytes(log.get("data"), "data")
    # Every parameter of our events is a static type, so the indexed ones (one 32-byte word per topic)
    # followed by the data form one ABI head: a single strict decode of (indexed..., data...).
    words = b"".join([hex_bytes(t, "topics", 32) for t in topics[1:]]) if len(topics) > 1 else b""
    try:
        values = decode(layout.types, words + data)
    except DecodingError as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ValueError(f"{event.name} ({event.kind}): cannot decode its data: {reason}") from None
    args: dict[str, Any] = dict(zip(layout.names, values, strict=True))
    for name in layout.address_names:
        args[name] = checksum(f"0x{args[name]:040x}")
    timestamp = log.get("blockTimestamp")
    return DecodedLog(
        kind=event.kind,
        address=address(log.get("address"), "address"),
        block_number=quantity(log.get("blockNumber"), "blockNumber"),
        block_hash=hash32(log.get("blockHash"), "blockHash"),
        tx_hash=hash32(log.get("transactionHash"), "transactionHash"),
        log_index=quantity(log.get("logIndex"), "logIndex"),
        block_timestamp=None if timestamp is None else quantity(timestamp, "blockTimestamp"),
        args=args,
        raw=log,
    )


# -- calls: what the connector asks an unknown token or pool (one eth_call each, cached) -------------
def selector(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


DECIMALS = selector("decimals()")
SYMBOL = selector("symbol()")
TOKEN0 = selector("token0()")
TOKEN1 = selector("token1()")


def decode_uint8(result: bytes) -> int:
    (value,) = decode(("uint256",), result)  # uint8 padded to a word; wider values are refused
    if not 0 <= value <= 255:
        raise ValueError(f"decimals() returned {value}, not a uint8")
    return int(value)


def decode_address(result: bytes) -> str:
    (value,) = decode(("address",), result)
    return checksum(value)


def decode_symbol(result: bytes) -> str | None:
    """``symbol()`` as a string; old tokens (MKR, SAI) return bytes32 instead of string."""
    try:
        (text,) = decode(("string",), result)
        return str(text)
    except (DecodingError, UnicodeDecodeError):
        pass
    if len(result) == 32:
        return result.rstrip(b"\0").decode("utf-8", "replace")
    return None
