"""Exchange name -> connector class / normaliser (the place to register a new exchange)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from connectors.base import BaseConnector
from connectors.binance import BinanceConnector, BinanceNormalizer
from connectors.coinbase import CoinbaseConnector, CoinbaseNormalizer
from connectors.symbols import BinanceSymbols
from connectors.trade import Trade

CONNECTORS: dict[str, type[BaseConnector]] = {"binance": BinanceConnector, "coinbase": CoinbaseConnector}


class Normalizer(Protocol):
    exchange: str

    def message(self, msg: Any, received_at: str) -> list[Trade]: ...


def normalizer(exchange: str, known_symbols: Iterable[str] = ()) -> Normalizer:
    """Offline normaliser (replay, normalize CLI, simulator checks); Binance splits with the bundled list."""
    if exchange == "binance":
        return BinanceNormalizer(BinanceSymbols(known_symbols))
    if exchange == "coinbase":
        return CoinbaseNormalizer()
    raise ValueError(f"unknown exchange {exchange[:40]!r}; known: {', '.join(sorted(CONNECTORS))}")
