"""USD value of an on-chain event from the latest CEX price at its block time (DESIGN.md "Contracts").

A :class:`PriceBook` keeps recent trade prices per instrument (``exchange:BASE-QUOTE``) as they stream
by; :func:`usd_value` prices an event from its tokens' ``price_ref``. Null, never 0, when no price is
known: a missing price must not look like a worthless transfer.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal

from coattail.chains.tokens import Token, TokenRegistry
from coattail.contracts.onchain import OnchainEvent
from coattail.contracts.trade import TradeEvent

# Quotes that count as dollars when a reference instrument itself has no price yet.
DOLLAR_QUOTES = ("USD", "USDT", "USDC")
_LAKE_FRACTION = Decimal(1).scaleb(-18)  # the lake's DecimalType(38, 18)
_LAKE_LIMIT = Decimal(10) ** 20  # its integer digits
# Wide enough for any product of two lake decimals: the default context (28 digits) would round
# 10M ETH × 3000 USD to 28 digits and refuse to quantize it to 18 fraction digits.
_WIDE = Context(prec=80, rounding=ROUND_HALF_EVEN)


def quantize(value: Decimal) -> Decimal | None:
    """A derived (inexact) figure rounded to the lake's 18 fraction digits; None beyond its range."""
    if not value.is_finite() or abs(value) >= _LAKE_LIMIT:
        return None
    return value.quantize(_LAKE_FRACTION, context=_WIDE)


class PriceBook:
    """Recent prices per instrument; ``price(ref, at)`` is the last one at or before ``at``.

    ``max_age``: a price older than this at the block time is no price (a stale feed must not value
    today's transfer). History beyond ``keep`` behind the newest trade is dropped to bound memory.
    """

    def __init__(
        self, max_age: timedelta = timedelta(minutes=15), keep: timedelta = timedelta(hours=2)
    ) -> None:
        self.max_age = max_age
        self.keep = keep
        self._times: dict[str, list[datetime]] = defaultdict(list)
        self._prices: dict[str, list[Decimal]] = defaultdict(list)
        self._by_base: dict[str, set[str]] = defaultdict(set)

    def update(self, exchange: str, symbol: str, price: Decimal, at: datetime) -> None:
        key = f"{exchange}:{symbol}"
        times, prices = self._times[key], self._prices[key]
        if times and at < times[-1]:  # out of order (a gap fill): keep the series sorted
            i = bisect.bisect_right(times, at)
            times.insert(i, at)
            prices.insert(i, price)
        else:
            times.append(at)
            prices.append(price)
        if times[0] < times[-1] - self.keep:
            cut = bisect.bisect_left(times, times[-1] - self.keep)
            del times[:cut], prices[:cut]
        base, _, quote = symbol.partition("-")
        if quote in DOLLAR_QUOTES:
            self._by_base[base].add(key)

    def update_trade(self, trade: TradeEvent) -> None:
        self.update(trade.exchange, trade.symbol, trade.price, trade.timestamp)

    def price(self, ref: str | None, at: datetime) -> Decimal | None:
        """Dollar price of ``ref`` at ``at``: the reference instrument, else the same base in dollars."""
        if ref is None:
            return None
        if ref == "usd":
            return Decimal(1)
        found = self._at(ref, at)
        if found is not None:
            return found
        base = ref.partition(":")[2].partition("-")[0]
        candidates = [
            p for p in (self._at(key, at) for key in sorted(self._by_base.get(base, ()))) if p is not None
        ]
        return candidates[0] if candidates else None

    def _at(self, key: str, at: datetime) -> Decimal | None:
        times = self._times.get(key)
        if not times:
            return None
        i = bisect.bisect_right(times, at) - 1
        if i < 0 or at - times[i] > self.max_age:
            return None
        return self._prices[key][i]


def usd_value(event: OnchainEvent, registry: TokenRegistry, book: PriceBook) -> Decimal | None:
    """The event's dollar value at its block time, or None when neither side has a price.

    Transfers: amount × price. Swaps: a dollar side's amount if there is one, else the priced side.
    Liquidity: both sides; with one side priced, twice it (a constant-product pool holds equal value).
    """
    at = event.block_timestamp
    if event.event_type == "transfer":
        return _times(event.amount, _price(registry.token(event.token), book, at))
    side_in = _times(event.amount_in, _price(registry.token(event.token_in), book, at))
    side_out = _times(event.amount_out, _price(registry.token(event.token_out), book, at))
    if event.event_type == "swap":
        dollar = [
            amount
            for token, amount in ((event.token_in, event.amount_in), (event.token_out, event.amount_out))
            if _is_dollar(registry.token(token))
        ]
        if dollar and dollar[0] is not None:
            return quantize(dollar[0])
        return side_in if side_in is not None else side_out
    if side_in is not None and side_out is not None:
        return quantize(_WIDE.add(side_in, side_out))
    one = side_in if side_in is not None else side_out
    return None if one is None else quantize(_WIDE.multiply(one, 2))


def value_event(event: OnchainEvent, registry: TokenRegistry, book: PriceBook) -> OnchainEvent:
    """The event with ``usd_value`` filled in when it has none yet."""
    if event.usd_value is not None:
        return event
    return event.valued(usd_value(event, registry, book))


def _is_dollar(token: Token | None) -> bool:
    return token is not None and token.price_ref == "usd"


def _price(token: Token | None, book: PriceBook, at: datetime) -> Decimal | None:
    return None if token is None else book.price(token.price_ref, at)


def _times(amount: Decimal | None, price: Decimal | None) -> Decimal | None:
    if amount is None or price is None:
        return None
    return quantize(_WIDE.multiply(amount, price))
