"""Exchange-native symbols <-> normalised BASE-QUOTE.

Binance concatenates base and quote (``BTCUSDT``), so the split comes from exchangeInfo
(``baseAsset``/``quoteAsset``); offline (tests, replay, normalize) a bundled list of quote assets,
longest first, splits the common pairs. Coinbase product ids are already ``BASE-QUOTE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connectors.trade import NormalizeError, check_symbol

# Learned native spellings beyond this many are forgotten (a hostile feed must not grow memory).
_CACHE_LIMIT = 4096

# Quote assets in use on Binance spot, longest first so "FDUSD" wins over "USD"-like suffixes.
BUNDLED_QUOTES: tuple[str, ...] = tuple(
    sorted(
        (
            "USDT",
            "USDC",
            "FDUSD",
            "TUSD",
            "BUSD",
            "USDP",
            "DAI",
            "BTC",
            "ETH",
            "BNB",
            "EUR",
            "TRY",
            "BRL",
            "GBP",
            "AUD",
            "JPY",
            "RUB",
            "UAH",
            "ZAR",
            "PLN",
            "RON",
            "ARS",
            "MXN",
            "COP",
            "IDRT",
            "BIDR",
            "XRP",
            "TRX",
            "DOGE",
            "DOT",
            "SOL",
            "AEUR",
            "EURI",
            "U",
            "USD1",
        ),
        key=len,
        reverse=True,
    )
)


class BinanceSymbols:
    """Native ``BTCUSDT`` -> ``BTC-USDT``. Known pairs (config, exchangeInfo) win over the suffix rule."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        self.cache: dict[str, str] = {}
        self._pinned: dict[str, str] = {}  # config and exchangeInfo pairs: never forgotten
        for symbol in known:
            self.add(symbol)

    def add(self, normalised: str) -> None:
        check_symbol(normalised)
        native = normalised.replace("-", "")
        self.cache[native] = self._pinned[native] = normalised

    def load_exchange_info(self, info: Mapping[str, Any]) -> int:
        """Add every pair from a ``GET /api/v3/exchangeInfo`` body; returns how many were added."""
        added = 0
        entries = info.get("symbols", [])
        if not isinstance(entries, list):
            raise ValueError("exchangeInfo: symbols is not a list")
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            base, quote = entry.get("baseAsset"), entry.get("quoteAsset")
            if isinstance(base, str) and isinstance(quote, str) and base and quote:
                try:
                    self.add(f"{base.upper()}-{quote.upper()}")
                except NormalizeError:
                    continue  # exotic asset names (e.g. with lower-case letters) are not ours
                added += 1
        return added

    def normalise(self, native: str) -> str:
        cached = self.cache.get(native)
        if cached is not None:
            return cached
        upper = native.upper()
        cached = self.cache.get(upper)
        if cached is None:
            cached = self._split(upper)
        if len(self.cache) >= len(self._pinned) + _CACHE_LIMIT:
            self.cache.clear()  # same dict object: normalisers hold a reference to it
            self.cache.update(self._pinned)
        self.cache[native] = cached
        return cached

    @staticmethod
    def _split(upper: str) -> str:
        for quote in BUNDLED_QUOTES:
            if upper.endswith(quote) and len(upper) > len(quote):
                return check_symbol(f"{upper[: -len(quote)]}-{quote}")
        raise NormalizeError(f"symbol: cannot split {upper[:40]!r} into base and quote")

    @staticmethod
    def native(normalised: str) -> str:
        """``BTC-USDT`` -> ``btcusdt`` (stream names are lower case)."""
        return normalised.replace("-", "").lower()


def parse_symbol_list(text: str) -> list[str]:
    """``SYMBOLS`` env: comma list of ``BTC-USDT`` or native ``btcusdt`` entries, blanks ignored."""
    return [part.strip() for part in text.split(",") if part.strip()]
