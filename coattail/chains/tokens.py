"""The token registry (``config/tokens/<chain>.yaml`` plus operator files): what a token or pool is.

Addresses are matched case-insensitively on Ethereum (hex; the checksum is presentation) and exactly on
Solana (base58 is case-sensitive). Tokens learned from the chain at run time (an unknown token's
decimals from one ``eth_call``) are added with :meth:`TokenRegistry.learn` and kept for the process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from coattail.contracts.onchain import BLOCKCHAINS, NATIVE_TOKEN, PROTOCOL_PATTERN, TOKEN_SYMBOL_PATTERN
from coattail.contracts.types import check_decimal_bounds
from coattail.errors import CoattailError
from coattail.settings.paths import config_dir

# An amount's fraction must fit the lake's DecimalType(38, 18) exactly.
MAX_DECIMALS = 18
_PRICE_REF = re.compile(r"^(usd|[a-z][a-z0-9_]{1,31}:[A-Z0-9]{1,20}-[A-Z0-9]{1,20})$")
_SYMBOL = re.compile(TOKEN_SYMBOL_PATTERN)
_PROTOCOL = re.compile(PROTOCOL_PATTERN)


class TokenRegistryError(CoattailError, ValueError):
    """A token file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Token:
    chain: str
    address: str  # NATIVE_TOKEN for the chain's own coin
    symbol: str
    decimals: int
    price_ref: str | None = None  # "usd" | "<exchange>:<BASE-QUOTE>" | None (no price known)


@dataclass(frozen=True)
class Pool:
    chain: str
    address: str
    protocol: str
    token0: str
    token1: str


def scale(raw: int, decimals: int) -> Decimal:
    """The amount of ``raw`` base units, exactly (``raw / 10**decimals``); ValueError if unrepresentable."""
    if not 0 <= decimals <= MAX_DECIMALS:
        raise ValueError(f"a token with {decimals} decimals is not supported (0..{MAX_DECIMALS})")
    if raw < 0:
        raise ValueError("a token amount cannot be negative")
    return check_decimal_bounds(Decimal(raw).scaleb(-decimals))


@dataclass
class TokenRegistry:
    chain: str
    native: Token
    tokens: dict[str, Token] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)
    programs: dict[str, str] = field(default_factory=dict)  # contract/program id -> protocol

    def key(self, address: str) -> str:
        return address.lower() if self.chain == "ethereum" else address

    def token(self, address: str | None) -> Token | None:
        if address is None:
            return None
        if address == NATIVE_TOKEN:
            return self.native
        return self.tokens.get(self.key(address))

    def pool(self, address: str | None) -> Pool | None:
        return None if address is None else self.pools.get(self.key(address))

    def program(self, address: str) -> str | None:
        """The protocol a DEX program/router id belongs to, if it is a configured one."""
        return self.programs.get(self.key(address))

    def learn(self, token: Token) -> Token:
        """Add a token found on the chain (decimals read once); a configured entry wins."""
        return self.tokens.setdefault(self.key(token.address), token)

    def learn_pool(self, pool: Pool) -> Pool:
        return self.pools.setdefault(self.key(pool.address), pool)

    def merge(self, data: Mapping[str, Any], source: str) -> None:
        """Entries of one token file on top of this registry (later files win)."""
        _check_keys(data, {"native", "tokens", "pools", "programs"}, source)
        if "native" in data:
            self.native = _token(self.chain, NATIVE_TOKEN, data["native"], f"{source}: native")
        for address, entry in _mapping(data.get("tokens"), f"{source}: tokens").items():
            token = _token(self.chain, str(address), entry, f"{source}: tokens.{address}")
            self.tokens[self.key(token.address)] = token
        for address, entry in _mapping(data.get("pools"), f"{source}: pools").items():
            pool = _pool(self.chain, str(address), entry, f"{source}: pools.{address}")
            self.pools[self.key(pool.address)] = pool
        for address, protocol in _mapping(data.get("programs"), f"{source}: programs").items():
            if not isinstance(protocol, str) or not _PROTOCOL.fullmatch(protocol):
                raise TokenRegistryError(f"{source}: programs.{address}: {protocol!r} is not a protocol name")
            self.programs[self.key(str(address))] = protocol


def load_registry(
    chain: str, extra_files: Iterable[str | Path] = (), cfg_dir: Path | None = None
) -> TokenRegistry:
    """The shipped ``config/tokens/<chain>.yaml`` with ``extra_files`` merged on top, in order."""
    if chain not in BLOCKCHAINS:
        raise TokenRegistryError(f"unknown chain {chain[:40]!r}; known: {', '.join(BLOCKCHAINS)}")
    shipped = (cfg_dir or config_dir()) / "tokens" / f"{chain}.yaml"
    registry = TokenRegistry(chain=chain, native=Token(chain, NATIVE_TOKEN, chain.upper()[:3], 18))
    for path in (shipped, *map(Path, extra_files)):
        registry.merge(_read(path), str(path))
    return registry


def _read(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise TokenRegistryError(f"token file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise TokenRegistryError(f"token file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return _mapping(data, str(path))


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TokenRegistryError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _check_keys(entry: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise TokenRegistryError(
            f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _token(chain: str, address: str, entry: Any, where: str) -> Token:
    entry = _mapping(entry, where)
    _check_keys(entry, {"symbol", "decimals", "price_ref"}, where)
    symbol, decimals, price_ref = entry.get("symbol"), entry.get("decimals"), entry.get("price_ref")
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        raise TokenRegistryError(f"{where}: symbol {symbol!r} is not a token symbol")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= MAX_DECIMALS:
        raise TokenRegistryError(f"{where}: decimals must be an integer 0..{MAX_DECIMALS}, got {decimals!r}")
    if price_ref is not None and (not isinstance(price_ref, str) or not _PRICE_REF.fullmatch(price_ref)):
        raise TokenRegistryError(
            f"{where}: price_ref {price_ref!r} is neither 'usd' nor 'exchange:BASE-QUOTE'"
        )
    return Token(chain, address, symbol, decimals, price_ref)


def _pool(chain: str, address: str, entry: Any, where: str) -> Pool:
    entry = _mapping(entry, where)
    _check_keys(entry, {"protocol", "token0", "token1"}, where)
    protocol, token0, token1 = entry.get("protocol"), entry.get("token0"), entry.get("token1")
    if not isinstance(protocol, str) or not _PROTOCOL.fullmatch(protocol):
        raise TokenRegistryError(f"{where}: protocol {protocol!r} is not a protocol name")
    if not isinstance(token0, str) or not isinstance(token1, str):
        raise TokenRegistryError(f"{where}: token0 and token1 must be addresses")
    return Pool(chain, address, protocol, token0, token1)
