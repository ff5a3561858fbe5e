"""MOD-004 wallet-scorer as pure functions over plain data (DESIGN.md "Detector semantics", MOD-004).

A wallet's trades are its DEX swaps (trader = wallet): the token it received is a buy, the token it
gave a sell, against the quote side ranked first in ``quote_priority`` (stablecoins, then WETH/WSOL);
a stable↔stable swap, or one where neither side is a listed quote, is no trade.

Reference prices P(token, t) come from the on-chain events themselves, so the stream and the batch see
the same numbers: a priced transfer gives ``usd_value / amount`` (the connector valued it at the CEX
reference price at block time, ``coattail.chains.valuation``), a priced swap gives each side's USD
execution price (the pool's price). P(token, t) = the last CEX-valued observation at or before t, else
the last pool observation, either at most ``price_max_age`` old; none: the trade stays unscored.

The return of a trade at horizon H is r = (P(t+H) − P(t)) / P(t), negated for a sell. It is resolved
once event time (the watermark) has passed t+H; its *resolution time* is t+H. A wallet is rescored at
each resolution time T over its returns resolved in (T − lookback, T]; with ≥ ``min_trades`` of them:
win_rate = share of r > 0, avg_return = mean r, max_drawdown = largest peak-to-trough fall of the
cumulative sum of r (in trade order, starting from 0), floored at ``drawdown_floor``, and
alpha = win_rate × avg_return × √n / max_drawdown.

Percentiles are per chain, among the wallets holding a current score (scored within the lookback):
``percentile = 100 × (number of wallets with a strictly lower alpha) / (N − 1)`` — SQL's PERCENT_RANK:
the lowest is 0, the highest 100, tied alphas share the lower percentile, a lone wallet is 0.

Event time drives everything (:func:`advance_chain`): a trade is checked for high_alpha_wallet when the
watermark passes its time t (with the scores resolved at or before t), resolved when it passes t+H.
The stream runs it per micro-batch with the watermark, the batch with every horizon the data covers
resolved: both produce the same rows.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from coattail.settings.modules import SeverityName
from jobs.onchain_logic import quote_rank, ratio

DEFAULT_STABLECOINS: tuple[str, ...] = ("USDC", "USDT", "DAI")
DEFAULT_WALLET_QUOTES: tuple[str, ...] = ("USDC", "USDT", "DAI", "WETH", "WSOL")
CEX, POOL = "c", "p"  # observation kinds, best first
RESOLVE, CHECK = 0, 1  # at one event time, resolutions (new scores) come before a trade's check


@dataclass(frozen=True)
class ScoreRules:
    """MOD-004's parameters in event-time milliseconds."""

    horizon_ms: int
    lookback_ms: int
    min_trades: int
    drawdown_floor: float
    price_max_age_ms: int
    high_percentile: float
    very_high_percentile: float
    score_change_points: float
    quote_priority: tuple[str, ...] = DEFAULT_WALLET_QUOTES
    stablecoins: frozenset[str] = frozenset(DEFAULT_STABLECOINS)


# -- events, trades and price observations ----------------------------------------------------------


@dataclass(frozen=True)
class ChainEvent:
    """The fields of an OnchainEvent (transfer or swap) the scorer reads."""

    ts_ms: int
    block_number: int
    log_index: int
    event_id: str
    event_type: str
    tx_hash: str = ""
    trader: str | None = None
    token: str | None = None
    token_symbol: str | None = None
    amount: Decimal | None = None
    token_in: str | None = None
    token_in_symbol: str | None = None
    amount_in: Decimal | None = None
    token_out: str | None = None
    token_out_symbol: str | None = None
    amount_out: Decimal | None = None
    usd_value: Decimal | None = None


@dataclass(frozen=True)
class Trade:
    """One wallet trade: ``side`` buy (token received) or sell (token given)."""

    ts_ms: int
    block_number: int
    log_index: int
    event_id: str
    wallet: str
    token: str
    token_symbol: str | None
    side: str
    tx_hash: str
    usd_value: Decimal | None

    def order(self) -> tuple[int, int, int, str]:
        return (self.ts_ms, self.block_number, self.log_index, self.event_id)

    def to_json(self) -> list[Any]:
        return [self.ts_ms, self.block_number, self.log_index, self.event_id, self.wallet, self.token,
                self.token_symbol, self.side, self.tx_hash, _text(self.usd_value)]  # fmt: skip

    @classmethod
    def from_json(cls, v: Sequence[Any]) -> Trade:
        return cls(int(v[0]), int(v[1]), int(v[2]), v[3], v[4], v[5], v[6], v[7], v[8], _dec(v[9]))


def trade_of(event: ChainEvent, rules: ScoreRules) -> Trade | None:
    """The wallet trade a swap is, or None (not a swap, no trader, stable↔stable, no quote side)."""
    if event.event_type != "swap" or not event.trader or event.token_in is None or event.token_out is None:
        return None
    priority = rules.quote_priority
    in_sym, out_sym = (event.token_in_symbol or "").upper(), (event.token_out_symbol or "").upper()
    if in_sym in rules.stablecoins and out_sym in rules.stablecoins:
        return None
    in_rank, out_rank = quote_rank(in_sym, priority)[0], quote_rank(out_sym, priority)[0]
    if min(in_rank, out_rank) >= len(priority) or in_sym == out_sym:
        return None
    buy = in_rank < out_rank  # the wallet gave the quote: it bought the other token
    token, symbol, amount = (
        (event.token_out, event.token_out_symbol, event.amount_out)
        if buy
        else (event.token_in, event.token_in_symbol, event.amount_in)
    )
    if not amount:
        return None
    # One spelling per wallet, as labels and the API write it: hex lower-cased (the connector keeps
    # EIP-55 checksums; base58 never starts with "0x").
    wallet = event.trader.lower() if event.trader.startswith("0x") else event.trader
    return Trade(event.ts_ms, event.block_number, event.log_index, event.event_id, wallet, token,
                 symbol, "buy" if buy else "sell", event.tx_hash, event.usd_value)  # fmt: skip


@dataclass(frozen=True)
class PriceObservation:
    ts_ms: int
    block_number: int
    log_index: int
    token: str
    kind: str  # CEX (a valued transfer) | POOL (a swap's execution price)
    price: Decimal


def observations_of(event: ChainEvent, rules: ScoreRules) -> list[PriceObservation]:
    """USD prices an event shows: a valued transfer's token (CEX), a valued swap's non-dollar sides (pool)."""
    if event.usd_value is None:
        return []
    if event.event_type == "transfer":
        sides = [(event.token, event.token_symbol, event.amount, CEX)]
    elif event.event_type == "swap":
        sides = [(event.token_in, event.token_in_symbol, event.amount_in, POOL),
                 (event.token_out, event.token_out_symbol, event.amount_out, POOL)]  # fmt: skip
    else:
        return []
    found = []
    for token, symbol, amount, kind in sides:
        if token is None or not amount or (symbol or "").upper() in rules.stablecoins:
            continue  # dollars are the unit, never a traded token
        price = ratio(event.usd_value, amount)
        if price is not None and price > 0:
            found.append(
                PriceObservation(event.ts_ms, event.block_number, event.log_index, token, kind, price)
            )
    return found


# -- the score --------------------------------------------------------------------------------------


def trade_return(p0: Decimal, p1: Decimal, side: str) -> float | None:
    """(p1 − p0) / p0, negated for a sell; None without a positive p0."""
    if p0 <= 0:
        return None
    change = ratio(p1 - p0, p0)
    if change is None:
        return None
    return float(-change if side == "sell" else change)


def max_drawdown(returns: Sequence[float]) -> float:
    """Largest peak-to-trough fall of the cumulative sum of ``returns`` (from 0, in order)."""
    cum = peak = worst = 0.0
    for r in returns:
        cum += r
        peak = max(peak, cum)
        worst = max(worst, peak - cum)
    return worst


@dataclass(frozen=True)
class Score:
    trade_count: int
    win_rate: float
    avg_return: float
    max_drawdown: float  # floored
    alpha: float


def score(returns: Sequence[float], min_trades: int, drawdown_floor: float) -> Score | None:
    """The score of returns in trade order; None with fewer than ``min_trades``."""
    n = len(returns)
    if n < min_trades or n == 0:
        return None
    win_rate = sum(1 for r in returns if r > 0) / n
    avg = math.fsum(returns) / n
    drawdown = max(max_drawdown(returns), drawdown_floor)
    return Score(n, win_rate, avg, drawdown, win_rate * avg * math.sqrt(n) / drawdown)


def percentile(sorted_alphas: Sequence[float], alpha: float) -> float:
    """PERCENT_RANK × 100 of ``alpha`` among ``sorted_alphas`` (which include it): wallets strictly below
    / (N − 1); ties share the lower value; a lone wallet is 0."""
    n = len(sorted_alphas)
    if n <= 1:
        return 0.0
    return 100.0 * bisect.bisect_left(sorted_alphas, alpha) / (n - 1)


def percentiles(alphas: Mapping[str, float]) -> dict[str, float]:
    ordered = sorted(alphas.values())
    return {wallet: percentile(ordered, a) for wallet, a in alphas.items()}


def alpha_severity(pct: float, rules: ScoreRules) -> SeverityName | None:
    """high_alpha_wallet: at or above the high percentile (95) medium, at or above the very high (99) high."""
    if pct >= rules.very_high_percentile:
        return "high"
    return "medium" if pct >= rules.high_percentile else None


# -- per-chain state --------------------------------------------------------------------------------


@dataclass
class WalletBook:
    """One wallet: its resolved returns inside the lookback and its latest score."""

    # [resolved_ms, trade_ts_ms, block, log_index, event_id, r] in trade order
    returns: list[list[Any]] = field(default_factory=list)
    # [scored_at_ms, alpha, percentile, trade_count, win_rate, avg_return, max_drawdown] while current
    last: list[Any] | None = None

    def current(self) -> Score | None:
        if self.last is None:
            return None
        return Score(int(self.last[3]), self.last[4], self.last[5], self.last[6], self.last[1])


@dataclass
class ChainState:
    """Everything one chain's scoring needs between micro-batches; :func:`advance_chain` keeps it bounded:
    trades until resolved, price observations only those a pending or future lookup can still use,
    returns inside the lookback, scores inside the lookback."""

    watermark: int | None = None
    # [trade json, p0 (str | None), checked]
    pending: list[list[Any]] = field(default_factory=list)
    prices: dict[str, dict[str, list[list[Any]]]] = field(default_factory=dict)  # token -> kind -> obs
    wallets: dict[str, WalletBook] = field(default_factory=dict)
    scored: list[list[Any]] = field(default_factory=list)  # [scored_at_ms, wallet] in scoring order
    alphas: list[float] = field(default_factory=list)  # sorted alphas of the current scores

    def to_json(self) -> dict[str, Any]:
        return {
            "w": self.watermark,
            "pending": self.pending,
            "prices": self.prices,
            "wallets": {k: [v.returns, v.last] for k, v in self.wallets.items()},
            "scored": self.scored,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChainState:
        wallets = {k: WalletBook(v[0], v[1]) for k, v in data["wallets"].items()}
        alphas = sorted(w.last[1] for w in wallets.values() if w.last is not None)
        return cls(data["w"], data["pending"], data["prices"], wallets, data["scored"], alphas)


@dataclass(frozen=True)
class ScoreEvent:
    """A wallet rescored at ``scored_at_ms`` (a resolution time), as one row of wallet_scores."""

    wallet: str
    scored_at_ms: int
    score: Score
    alpha_percentile: float
    previous_percentile: float | None
    trigger: Trade  # the latest trade resolved into it (its token names the alert)

    def changed(self, rules: ScoreRules) -> bool:
        return (
            self.previous_percentile is not None
            and abs(self.alpha_percentile - self.previous_percentile) >= rules.score_change_points
        )


@dataclass(frozen=True)
class AlphaTrade:
    """A trade by a wallet whose current percentile is at or above the high percentile."""

    trade: Trade
    score: Score
    alpha_percentile: float
    severity: SeverityName


@dataclass(frozen=True)
class ChainAdvance:
    scores: list[ScoreEvent]
    alpha_trades: list[AlphaTrade]
    late: int
    unpriced: int  # trades resolved without a price at t or t+H (not scored)


def next_due(state: ChainState, rules: ScoreRules) -> int | None:
    """The next event time at which something happens (a check or a resolution); None: nothing pending."""
    times = [t[0] if not checked else t[0] + rules.horizon_ms for t, _, checked in state.pending]
    return min(times) if times else None


def price_at(state: ChainState, token: str, at_ms: int, max_age_ms: int) -> Decimal | None:
    """P(token, at): the last CEX observation at or before ``at`` at most max_age old, else the pool's."""
    kinds = state.prices.get(token, {})
    for kind in (CEX, POOL):
        series = kinds.get(kind)
        if not series:
            continue
        i = bisect.bisect_right(series, at_ms, key=lambda o: o[0])
        if i and at_ms - series[i - 1][0] <= max_age_ms:
            return Decimal(series[i - 1][3])
    return None


def _add_observation(state: ChainState, obs: PriceObservation) -> None:
    series = state.prices.setdefault(obs.token, {}).setdefault(obs.kind, [])
    bisect.insort(series, [obs.ts_ms, obs.block_number, obs.log_index, str(obs.price)],
                  key=lambda o: (o[0], o[1], o[2]))  # fmt: skip


def advance_chain(
    state: ChainState, events: Iterable[ChainEvent], watermark_ms: int | None, rules: ScoreRules
) -> ChainAdvance:
    """Add one chain's events and process every check and resolution at or before the watermark
    (None: all of them), in event-time order. Events at or before the watermark of the previous call
    are late and dropped (counted): what happened up to it is settled (as in
    :func:`jobs.onchain_logic.advance_pool`). Later events are taken even when this call's watermark
    already passed them: nothing after the previous watermark has been processed yet, so the order
    holds and the stream agrees with one pass over everything."""
    late = 0
    for event in events:
        if state.watermark is not None and event.ts_ms <= state.watermark:
            late += 1
            continue
        for obs in observations_of(event, rules):
            _add_observation(state, obs)
        trade = trade_of(event, rules)
        if trade is not None:
            state.pending.append([trade.to_json(), None, False])
    limit = math.inf if watermark_ms is None else watermark_ms
    due: list[tuple[int, int, tuple[Any, ...], list[Any]]] = []
    for item in state.pending:
        trade = Trade.from_json(item[0])
        if not item[2] and trade.ts_ms <= limit:
            due.append((trade.ts_ms, CHECK, trade.order(), item))
        if trade.ts_ms + rules.horizon_ms <= limit:
            due.append((trade.ts_ms + rules.horizon_ms, RESOLVE, trade.order(), item))
    due.sort(key=lambda d: (d[0], d[1], d[2]))
    scores: list[ScoreEvent] = []
    alpha_trades: list[AlphaTrade] = []
    unpriced = 0
    resolved: set[int] = set()
    i = 0
    while i < len(due):
        at = due[i][0]
        group = []
        while i < len(due) and due[i][0] == at:
            group.append(due[i])
            i += 1
        _expire(state, at, rules)
        touched: dict[str, Trade] = {}
        for _, kind, _, item in group:
            trade = Trade.from_json(item[0])
            if kind == RESOLVE:
                resolved.add(id(item))
                p0 = None if item[1] is None else Decimal(item[1])
                p1 = price_at(state, trade.token, at, rules.price_max_age_ms)
                r = None if p0 is None or p1 is None else trade_return(p0, p1, trade.side)
                if r is None:
                    unpriced += 1
                    continue
                book = state.wallets.setdefault(trade.wallet, WalletBook())
                bisect.insort(book.returns, [at, *trade.order(), r], key=lambda x: x[1:5])
                touched[trade.wallet] = trade
        scores += _rescore(state, touched, at, rules)
        for _, kind, _, item in group:
            if kind != CHECK:
                continue
            found = _check(state, item, at, rules)
            if found is not None:
                alpha_trades.append(found)
    state.pending = [item for item in state.pending if id(item) not in resolved]
    if watermark_ms is not None:
        state.watermark = watermark_ms if state.watermark is None else max(state.watermark, watermark_ms)
        _prune(state, watermark_ms, rules)
    return ChainAdvance(scores, alpha_trades, late, unpriced)


def _check(state: ChainState, item: list[Any], at_ms: int, rules: ScoreRules) -> AlphaTrade | None:
    """A trade once event time reached it: its price P(t) is final now; an alert if its wallet's
    current percentile is high."""
    trade = Trade.from_json(item[0])
    p0 = price_at(state, trade.token, at_ms, rules.price_max_age_ms)
    item[1], item[2] = (None if p0 is None else str(p0)), True
    book = state.wallets.get(trade.wallet)
    current = None if book is None else book.current()
    if book is None or book.last is None or current is None:
        return None
    severity = alpha_severity(book.last[2], rules)
    return None if severity is None else AlphaTrade(trade, current, book.last[2], severity)


def _window(book: WalletBook, at_ms: int, rules: ScoreRules) -> list[float]:
    """The wallet's returns resolved in (at − lookback, at]."""
    return [x[5] for x in book.returns if at_ms - rules.lookback_ms < x[0] <= at_ms]


def _score_of(book: WalletBook, at_ms: int, rules: ScoreRules) -> Score | None:
    return score(_window(book, at_ms, rules), rules.min_trades, rules.drawdown_floor)


def _drop_alpha(state: ChainState, alpha: float) -> None:
    i = bisect.bisect_left(state.alphas, alpha)
    if i < len(state.alphas) and state.alphas[i] == alpha:
        del state.alphas[i]


def _expire(state: ChainState, at_ms: int, rules: ScoreRules) -> None:
    """Scores older than the lookback leave the population (and are no one's previous score)."""
    gone = bisect.bisect_right(state.scored, at_ms - rules.lookback_ms, key=lambda s: s[0])
    for scored_at, wallet in state.scored[:gone]:
        book = state.wallets.get(wallet)
        if book is not None and book.last is not None and book.last[0] == scored_at:
            _drop_alpha(state, book.last[1])
            book.last = None
    del state.scored[:gone]


def _rescore(
    state: ChainState, touched: Mapping[str, Trade], at_ms: int, rules: ScoreRules
) -> list[ScoreEvent]:
    """Rescore the wallets that got a return at ``at``; percentiles against the chain after all of them."""
    new: dict[str, Score] = {}
    previous: dict[str, float | None] = {}
    for wallet in sorted(touched):
        book = state.wallets[wallet]
        previous[wallet] = None if book.last is None else book.last[2]
        if book.last is not None:
            _drop_alpha(state, book.last[1])
            book.last = None
        found = _score_of(book, at_ms, rules)
        if found is not None:
            new[wallet] = found
            bisect.insort(state.alphas, found.alpha)
    events = []
    for wallet, found in new.items():
        pct = percentile(state.alphas, found.alpha)
        state.wallets[wallet].last = [at_ms, found.alpha, pct, found.trade_count, found.win_rate,
                                      found.avg_return, found.max_drawdown]  # fmt: skip
        state.scored.append([at_ms, wallet])
        events.append(ScoreEvent(wallet, at_ms, found, pct, previous[wallet], touched[wallet]))
    return events


def _prune(state: ChainState, watermark_ms: int, rules: ScoreRules) -> None:
    """Drop what no future lookup needs: every lookup is at a time after the watermark, so per token and
    kind only the last observation at or before it (if not yet too old) and the later ones stay."""
    _expire(state, watermark_ms, rules)
    for token in list(state.prices):
        kinds = state.prices[token]
        for kind in list(kinds):
            series = kinds[kind]
            i = bisect.bisect_right(series, watermark_ms, key=lambda o: o[0])
            keep = series[i:]
            if i and watermark_ms - series[i - 1][0] < rules.price_max_age_ms:
                keep.insert(0, series[i - 1])
            if keep:
                kinds[kind] = keep
            else:
                del kinds[kind]
        if not kinds:
            del state.prices[token]
    pending_wallets = {item[0][4] for item in state.pending}
    for wallet in list(state.wallets):
        book = state.wallets[wallet]
        book.returns = [x for x in book.returns if x[0] > watermark_ms - rules.lookback_ms]
        if not book.returns and book.last is None and wallet not in pending_wallets:
            del state.wallets[wallet]


# -- the batch scoring step: every wallet as of one time --------------------------------------------


@dataclass(frozen=True)
class WalletScore:
    wallet: str
    score: Score
    alpha_percentile: float


def scores_as_of(events: Iterable[ChainEvent], as_of_ms: int, rules: ScoreRules) -> list[WalletScore]:
    """Every wallet of one chain scored at ``as_of`` over its returns resolved in (as_of − lookback,
    as_of], with percentiles among them (events after ``as_of`` are ignored)."""
    state = ChainState()
    advance_chain(state, (e for e in events if e.ts_ms <= as_of_ms), as_of_ms, rules)
    found = {w: s for w, book in state.wallets.items() if (s := _score_of(book, as_of_ms, rules)) is not None}
    pcts = percentiles({w: s.alpha for w, s in found.items()})
    return [WalletScore(w, found[w], pcts[w]) for w in sorted(found)]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)
