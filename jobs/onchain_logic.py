"""On-chain detection logic as pure functions over plain data (DESIGN.md "Detector semantics", large tier).

MOD-008 (onchain-ingester) classifies single events: a transfer worth more than 50K USD is a
large_transfer, every swap a dex_swap. MOD-009 (dex-tracker) describes each swap (pair, amounts,
execution price, price impact) and keeps 60 s windows per pool whose reserve value says whether the
pool's liquidity moved. Spark (``jobs.detectors.onchain`` / ``jobs.detectors.dex``) is only plumbing:
the stream, ``coattail detect --onchain`` and the unit tests call these same functions.

Amounts are exact ``Decimal``s; derived figures (prices, impact, values) are rounded to the lake's
18 fraction digits so they fit ``decimal(38,18)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

from coattail.settings.modules import SeverityBand, SeverityName
from jobs.logic import exact_severity

LAKE_FRACTION = Decimal(1).scaleb(-18)
LAKE_LIMIT = Decimal(10) ** 20  # decimal(38,18): 20 integer digits
HUNDRED = Decimal(100)
SWAP = "swap"
LIQUIDITY_EVENTS = ("liquidity_add", "liquidity_remove")

# -- names ------------------------------------------------------------------------------------------

# Wrapped coins trade as their coin on the CEXs: alerts name the asset people watch (WETH -> ETH-USD).
DEFAULT_SYMBOL_ALIASES: dict[str, str] = {"WETH": "ETH", "WBTC": "BTC", "WSOL": "SOL"}
# The side of a pair that is its quote, best first (dollars, then the chains' coins); others: by name.
DEFAULT_QUOTE_PRIORITY: tuple[str, ...] = ("USDC", "USDT", "DAI", "WETH", "ETH", "WSOL", "SOL", "WBTC", "BTC")
UNKNOWN_SYMBOL = "UNKNOWN"
_NOT_SYMBOL = re.compile(r"[^A-Z0-9]")
_NOT_EXCHANGE = re.compile(r"[^a-z0-9_]")


def usd_symbol(token_symbol: str | None, aliases: Mapping[str, str] = DEFAULT_SYMBOL_ALIASES) -> str:
    """The alert symbol of a token: ``BASE-USD`` (``WETH`` -> ``ETH-USD``, ``USDC`` -> ``USDC-USD``).

    Token symbols may hold characters the Alert symbol pattern does not (``USDC.e``, ``$WIF``): only
    upper-case letters and digits are kept; a token without a usable symbol is ``UNKNOWN-USD``.
    """
    upper = (token_symbol or "").upper()
    base = _NOT_SYMBOL.sub("", aliases.get(upper, upper))[:20]
    return f"{base or UNKNOWN_SYMBOL}-USD"


def venue_name(name: str) -> str:
    """A chain or protocol as an Alert ``exchange`` (``^[a-z][a-z0-9_]{1,31}$``, no hyphens):
    ``uniswap-v2`` -> ``uniswap_v2``."""
    venue = _NOT_EXCHANGE.sub("_", name.lower())[:32]
    return venue if len(venue) >= 2 and venue[0].isalpha() else f"x_{venue}"[:32]


def quote_rank(symbol: str | None, priority: Sequence[str]) -> tuple[int, str]:
    upper = (symbol or "").upper()
    return (priority.index(upper) if upper in priority else len(priority), upper)


@dataclass(frozen=True)
class Pair:
    """A swap's pair in canonical order: ``base/quote`` whichever way the trader swapped."""

    base_symbol: str
    quote_symbol: str
    base_is_in: bool  # the trader gave the base token (a sell of base)

    @property
    def name(self) -> str:
        return f"{self.base_symbol}/{self.quote_symbol}"


def canonical_pair(
    in_symbol: str | None, out_symbol: str | None, priority: Sequence[str] = DEFAULT_QUOTE_PRIORITY
) -> Pair:
    """Quote = the side ranked first in ``priority`` (dollars before coins; two unlisted tokens: the
    first by name), so ``WETH/USDC`` is one pair whether the trader bought or sold WETH."""
    a, b = in_symbol or UNKNOWN_SYMBOL, out_symbol or UNKNOWN_SYMBOL
    out_is_quote = quote_rank(b, priority) <= quote_rank(a, priority)
    return Pair(a, b, True) if out_is_quote else Pair(b, a, False)


# -- exact arithmetic -------------------------------------------------------------------------------


def lake_decimal(value: Decimal | None) -> Decimal | None:
    """``value`` rounded to 18 fraction digits; None when it cannot fit ``decimal(38,18)``."""
    if value is None or not value.is_finite() or abs(value) >= LAKE_LIMIT:
        return None
    with localcontext() as ctx:
        ctx.prec = 60
        return value.quantize(LAKE_FRACTION, rounding=ROUND_HALF_EVEN)


def trim(value: Decimal | None) -> Decimal | None:
    """The same number without the trailing zeros Spark's ``decimal(38,18)`` pads (60000, not 60000.000…)."""
    if value is None or not value.is_finite():
        return value
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """numerator / denominator with 50 significant digits (None for a zero denominator)."""
    if denominator == 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 50
        try:
            return numerator / denominator
        except InvalidOperation:
            return None


def percent_change(after: Decimal, before: Decimal) -> Decimal | None:
    """(after / before − 1) × 100, signed; None without a positive ``before``."""
    if before <= 0:
        return None
    q = ratio(after, before)
    return None if q is None else (q - 1) * HUNDRED


# -- MOD-008 onchain-ingester -----------------------------------------------------------------------


@dataclass(frozen=True)
class OnchainBands:
    """MOD-008 thresholds (USD, strictly above): transfer bands, and the bands that lift a swap above low."""

    large_transfer: list[SeverityBand]
    dex_swap: list[SeverityBand]


def classify_event(
    event_type: str, usd_value: Decimal | None, bands: OnchainBands
) -> tuple[str, SeverityName] | None:
    """MOD-008: ``(alert_type, severity)`` of one event, or None.

    A transfer strictly above the first large-transfer band (50K) is a large_transfer (> 1M high); one
    without a price (``usd_value`` null) is not known to be large. Every swap is a dex_swap: low, or
    the band its value is strictly above (> 100K medium). Liquidity changes raise nothing here.
    """
    if event_type == "transfer":
        if usd_value is None:
            return None
        severity = exact_severity(bands.large_transfer, usd_value)
        return None if severity is None else ("large_transfer", severity)
    if event_type == SWAP:
        severity = exact_severity(bands.dex_swap, usd_value) if usd_value is not None else None
        return "dex_swap", severity or "low"
    return None


# -- MOD-009 dex-tracker: one swap ------------------------------------------------------------------


@dataclass(frozen=True)
class SwapFacts:
    """What MOD-009 says about one swap: pair, side, amounts, execution price and price impact."""

    pair: Pair
    side: str  # buy | sell of the base token, from the trader's view
    base_amount: Decimal
    quote_amount: Decimal
    execution_price: Decimal | None  # quote per base, from the amounts actually swapped
    price_impact_pct: Decimal | None  # |price_after / price_before − 1| × 100


def price_impact_pct(price_before: Decimal | None, price_after: Decimal | None) -> Decimal | None:
    """|price_after / price_before − 1| × 100 from the pool's marginal prices around the swap.

    None when either price is missing or ``price_before`` is 0 (no pool price to move from).
    """
    if price_before is None or price_after is None:
        return None
    change = percent_change(price_after, price_before)
    return None if change is None else lake_decimal(abs(change))


def swap_facts(
    in_symbol: str | None,
    out_symbol: str | None,
    amount_in: Decimal,
    amount_out: Decimal,
    price_before: Decimal | None,
    price_after: Decimal | None,
    priority: Sequence[str] = DEFAULT_QUOTE_PRIORITY,
) -> SwapFacts:
    pair = canonical_pair(in_symbol, out_symbol, priority)
    base, quote = (amount_in, amount_out) if pair.base_is_in else (amount_out, amount_in)
    price = ratio(quote, base)
    return SwapFacts(
        pair=pair,
        side="sell" if pair.base_is_in else "buy",
        base_amount=base,
        quote_amount=quote,
        execution_price=None if price is None else lake_decimal(price),
        price_impact_pct=price_impact_pct(price_before, price_after),
    )


@dataclass(frozen=True)
class LargeSwapRule:
    """MOD-009: USD bands of a large_dex_swap, and the impact (%) above which one is high anyway."""

    bands: list[SeverityBand]
    high_impact_pct: Decimal


def large_swap_severity(
    usd_value: Decimal | None, impact_pct: Decimal | None, rule: LargeSwapRule
) -> SeverityName | None:
    """A swap strictly above the first band (100K USD) is large: its band (> 1M high), and high when
    its price impact is strictly above ``high_impact_pct`` (1 %). Unpriced swaps are never large."""
    if usd_value is None:
        return None
    severity = exact_severity(rule.bands, usd_value)
    if severity is None:
        return None
    if impact_pct is not None and impact_pct > rule.high_impact_pct:
        return "high" if _rank(severity) < _rank("high") else severity
    return severity


def _rank(severity: SeverityName) -> int:
    return ("low", "medium", "high", "critical").index(severity)


# -- MOD-009 dex-tracker: 60 s windows per pool -----------------------------------------------------


@dataclass(frozen=True)
class PoolEvent:
    """A swap or liquidity change of one pool, as the windows see it (chain order: block, log index)."""

    ts_ms: int
    block_number: int
    log_index: int
    event_id: str
    event_type: str  # swap | liquidity_add | liquidity_remove
    token_in: str
    token_out: str
    amount_in: Decimal
    amount_out: Decimal
    reserve_in: Decimal | None = None  # the pool's reserves of token_in / token_out after the event
    reserve_out: Decimal | None = None
    usd_value: Decimal | None = None

    def order(self) -> tuple[int, int, str]:
        return (self.block_number, self.log_index, self.event_id)

    def to_json(self) -> list[Any]:
        return [
            self.ts_ms, self.block_number, self.log_index, self.event_id, self.event_type, self.token_in,
            self.token_out, str(self.amount_in), str(self.amount_out), _text(self.reserve_in),
            _text(self.reserve_out), _text(self.usd_value),
        ]  # fmt: skip

    @classmethod
    def from_json(cls, v: Sequence[Any]) -> PoolEvent:
        return cls(
            int(v[0]), int(v[1]), int(v[2]), v[3], v[4], v[5], v[6], Decimal(v[7]), Decimal(v[8]),
            _dec(v[9]), _dec(v[10]), _dec(v[11]),
        )  # fmt: skip

    def reserves_after(self) -> dict[str, Decimal] | None:
        if self.reserve_in is None or self.reserve_out is None:
            return None
        return {self.token_in: self.reserve_in, self.token_out: self.reserve_out}

    def reserves_before(self) -> dict[str, Decimal] | None:
        """The reserves the event started from: a swap put ``amount_in`` in and took ``amount_out`` out
        (Uniswap V2's ``Sync`` after it is exactly that); a liquidity add/remove moved both sides."""
        after = self.reserves_after()
        if after is None:
            return None
        sign_in, sign_out = {"swap": (-1, 1), "liquidity_add": (-1, -1)}.get(self.event_type, (1, 1))
        before = {
            self.token_in: after[self.token_in] + sign_in * self.amount_in,
            self.token_out: after[self.token_out] + sign_out * self.amount_out,
        }
        return before if all(v >= 0 for v in before.values()) else None

    def implied_prices(self) -> dict[str, Decimal]:
        """USD per token implied by the event's value: both legs of a swap are worth about ``usd_value``;
        each side of a liquidity change about half of it (the valuation prices both sides together)."""
        if self.usd_value is None:
            return {}
        share = self.usd_value if self.event_type == SWAP else self.usd_value / 2
        prices = {}
        for token, amount in ((self.token_in, self.amount_in), (self.token_out, self.amount_out)):
            p = ratio(share, amount) if amount > 0 else None
            if p is not None:
                prices[token] = p
        return prices


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


@dataclass
class PoolState:
    """Per pool: its open windows and the last closed window start (events in it or before are late)."""

    open: dict[int, list[PoolEvent]] = field(default_factory=dict)  # window start ms -> events
    last_closed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "open": {str(k): [e.to_json() for e in v] for k, v in self.open.items()},
            "l": self.last_closed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PoolState:
        return cls({int(k): [PoolEvent.from_json(e) for e in v] for k, v in data["open"].items()}, data["l"])


@dataclass(frozen=True)
class PoolWindow:
    """A closed window of one pool's events, in chain order (only windows that saw events exist)."""

    window_start_ms: int
    window_end_ms: int
    events: tuple[PoolEvent, ...]


@dataclass(frozen=True)
class PoolAdvance:
    accepted: list[PoolEvent]  # events taken into a window (the swaps get their rows and alerts now)
    closed: list[PoolWindow]
    late: int


def advance_pool(
    state: PoolState, events: Iterable[PoolEvent], watermark_ms: int | None, *, window_ms: int
) -> PoolAdvance:
    """Add one pool's events and close every window ending at/before the watermark (None: all).

    An event at or before the watermark, or in a window this pool already closed, is late and dropped
    (counted), as :func:`jobs.logic.advance_volume` does — stream and batch agree on what a window holds.
    """
    late, accepted = 0, []
    for event in events:
        start = event.ts_ms - event.ts_ms % window_ms
        if (watermark_ms is not None and event.ts_ms <= watermark_ms) or (
            state.last_closed is not None and start <= state.last_closed
        ):
            late += 1
            continue
        state.open.setdefault(start, []).append(event)
        accepted.append(event)
    closed: list[PoolWindow] = []
    for start in sorted(state.open):
        if watermark_ms is not None and start + window_ms > watermark_ms:
            break
        ordered = sorted(state.open.pop(start), key=PoolEvent.order)
        closed.append(PoolWindow(start, start + window_ms, tuple(ordered)))
        state.last_closed = start
    return PoolAdvance(sorted(accepted, key=PoolEvent.order), closed, late)


@dataclass(frozen=True)
class WindowLiquidity:
    """A pool window's volume and reserve value (USD) at its start and end."""

    swaps: int
    liquidity_events: int
    volume_usd: Decimal  # Σ usd_value of the window's priced swaps
    unpriced_swaps: int
    value_start_usd: Decimal | None  # reserves before the window's first event, at the window's prices
    value_end_usd: Decimal | None  # reserves after its last event, at the same prices
    change_pct: Decimal | None  # (end / start − 1) × 100


def pool_value(reserves: Mapping[str, Decimal], prices: Mapping[str, Decimal]) -> Decimal | None:
    """Σ reserve × USD price; None when a side has no price."""
    if any(token not in prices for token in reserves):
        return None
    return sum((amount * prices[token] for token, amount in reserves.items()), Decimal(0))


def window_liquidity(window: PoolWindow) -> WindowLiquidity:
    """Volume and liquidity change of a closed window.

    Both ends are valued at the window's latest implied token prices (from its last priced events), so
    the change measures tokens added to or taken from the pool, not the market moving: a swap leaves a
    constant-product pool's value almost unchanged, a liquidity add or remove does not. Pools that
    report no reserves (Uniswap V3) have no liquidity figure.
    """
    swaps = [e for e in window.events if e.event_type == SWAP]
    priced = [e.usd_value for e in swaps if e.usd_value is not None]
    prices: dict[str, Decimal] = {}
    for event in window.events:  # chain order: later events' prices win
        prices.update(event.implied_prices())
    with_reserves = [e for e in window.events if e.reserves_after() is not None]
    start_value = end_value = change = None
    if with_reserves:
        before, after = with_reserves[0].reserves_before(), with_reserves[-1].reserves_after()
        if before is not None and after is not None and set(before) == set(after):
            start_value, end_value = pool_value(before, prices), pool_value(after, prices)
        if start_value is not None and end_value is not None:
            change = percent_change(end_value, start_value)
    return WindowLiquidity(
        swaps=len(swaps),
        liquidity_events=len(window.events) - len(swaps),
        volume_usd=sum(priced, Decimal(0)),
        unpriced_swaps=len(swaps) - len(priced),
        value_start_usd=lake_decimal(start_value),
        value_end_usd=lake_decimal(end_value),
        change_pct=lake_decimal(change),
    )


def liquidity_severity(change_pct: Decimal | None, bands: list[SeverityBand]) -> SeverityName | None:
    """|change| strictly above the first band (10 %) -> liquidity_change; above 25 % high."""
    return None if change_pct is None else exact_severity(bands, abs(change_pct))
