"""MOD-011 back-testing, pure: what each alert implies, what the price did, and how good a module is.

No Spark here: :mod:`jobs.detectors.backtester` (``coattail detect``) and :mod:`jobs.batch.backtest`
(the daily step, ``coattail batch backtest``) feed these functions the alerts and the trade prices they
read, and MOD-010 uses :func:`hit_rates_as_of` for its "back-tested hit rate of similar past signals"
feature — which is why that function only counts outcomes already known at the time asked about.

Conventions (DESIGN.md "MOD-011"):

* An alert implies a direction d: +1 (price up), -1 (down), or 0 for an unsigned "big move" call
  (MOD-010's high_probability_move). Alerts that imply nothing are not back-tested (None).
* The outcome at horizon H is read against the latest trade price at or before ``detected_at`` (entry)
  and at or before ``detected_at + H`` (exit), each no older than the price index's ``max_age``.
  Returns are fractions (0.01 = 1 %). signed_return = d × r for a directional alert (hit: > 0); for
  d = 0 it is |r| (hit: |r| > ``move_pct`` %). A spread divergence is a call on the *relative* price of
  its instrument a against b (convergence), so its r is a's return over b's.
* An alert whose horizon has not elapsed at ``as_of`` is ``pending``: left for a later run, never a
  miss. One whose entry or exit price is missing is ``unpriced``.
* A volume spike points the way of its window's taker net flow (buy − sell quote volume of the spike's
  (symbol, exchange) window). The alert does not carry it, so the caller, which has the trades, adds it
  to the details it passes as ``net_flow`` (:func:`with_net_flow`); without it the spike is unpriced by
  direction, i.e. not back-tested.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol

HORIZONS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "24h": timedelta(hours=24),
}
DOLLAR_QUOTES = ("USD", "USDT", "USDC", "DAI")  # on-chain alerts name BASE-USD: any dollar quote prices it
STABLES = frozenset({"USDC", "USDT", "DAI", "USD"})
Status = Literal["resolved", "pending", "unpriced"]

# alert type -> how its details imply a direction (see implied_direction)
_BY_SIDE = frozenset({"whale_trade", "high_alpha_wallet", "large_dex_swap", "dex_swap"})
_FIXED = {
    "accumulation_signal": 1,
    "distribution_signal": -1,
    "consensus_bullish": 1,
    "consensus_bearish": -1,
    "high_probability_move": 0,
}
# Every alert type implied_direction can answer for (readers filter on it before parsing details).
BACKTESTED_TYPES = frozenset(
    {*_BY_SIDE, *_FIXED, "spread_divergence", "volume_spike", "known_whale_activity"}
)


class AlertLike(Protocol):
    """What :func:`evaluate` reads of an alert (``coattail.contracts.Alert`` qualifies)."""

    @property
    def alert_id(self) -> str: ...
    @property
    def module_id(self) -> str: ...
    @property
    def alert_type(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def exchange(self) -> str | None: ...
    @property
    def detected_at(self) -> datetime: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class LakeAlert:
    """An ``anomaly_alerts`` row (details parsed) in the shape :func:`evaluate` reads."""

    alert_id: str
    module_id: str
    alert_type: str
    symbol: str
    exchange: str | None
    detected_at: datetime
    details: Mapping[str, Any]


def _sign(value: Any) -> int | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(x) or x == 0:
        return None
    return 1 if x > 0 else -1


def _side(value: Any) -> int | None:
    return {"buy": 1, "sell": -1}.get(str(value).lower()) if value is not None else None


def implied_direction(alert_type: str, details: Mapping[str, Any]) -> int | None:
    """+1 / -1 for a directional alert, 0 for an unsigned big-move call, None: not back-tested.

    whale_trade, high_alpha_wallet, large_dex_swap, dex_swap: the taker's/trader's side (buy +1, sell
    −1); a dex_swap without ``side`` is a buy when it paid a stablecoin, a sell when it received one.
    accumulation/distribution, consensus bullish/bearish: fixed. spread_divergence: −sign(spread_pct)
    (instrument a converges on b). volume_spike: sign of ``net_flow`` (the caller adds it).
    known_whale_activity: from_exchange +1 (coins leave an exchange), to_exchange −1, else None.
    backtest_complete, signal_degradation, score_update, score_change, liquidity_change,
    large_transfer and unknown types: None.
    """
    if alert_type in _FIXED:
        return _FIXED[alert_type]
    if alert_type in _BY_SIDE:
        side = _side(details.get("side"))
        if side is None and alert_type == "dex_swap":
            paid, got = details.get("token_in_symbol"), details.get("token_out_symbol")
            if paid in STABLES and got not in STABLES:
                return 1
            if got in STABLES and paid not in STABLES:
                return -1
        return side
    if alert_type == "spread_divergence":
        sign = _sign(details.get("spread_pct"))
        return None if sign is None else -sign
    if alert_type == "volume_spike":
        return _sign(details.get("net_flow"))
    if alert_type == "known_whale_activity":
        return {"from_exchange": 1, "to_exchange": -1}.get(str(details.get("direction")))
    return None


def with_net_flow(details: Mapping[str, Any], net_flow: float | None) -> dict[str, Any]:
    """A volume spike's details with its window's taker net flow, for :func:`implied_direction`."""
    return {**details, "net_flow": net_flow}


def _base(symbol: str) -> str:
    return symbol.split("-", 1)[0]


class _Series:
    """One price series: times and prices in time order (ties keep insertion order, last wins)."""

    def __init__(self) -> None:
        self.points: list[tuple[datetime, float]] = []
        self.times: list[datetime] = []

    def seal(self) -> None:
        self.points.sort(key=lambda p: p[0])
        self.times = [t for t, _ in self.points]

    def at(self, t: datetime, max_age: timedelta) -> tuple[datetime, float] | None:
        i = bisect.bisect_right(self.times, t)
        if i == 0:
            return None
        ts, price = self.points[i - 1]
        return (ts, price) if t - ts <= max_age else None


class PriceIndex:
    """Trade prices to look up "the price at t": the latest at or before t, no older than ``max_age``.

    Lookup order: the exact (exchange, symbol); else the same symbol on any exchange; else the same
    BASE with a dollar quote (USD, USDT, USDC, DAI) on any exchange — on-chain alerts name ``BASE-USD``
    and a chain or protocol as their exchange, which no CEX trade matches.
    """

    def __init__(
        self,
        rows: Iterable[tuple[str, str | None, datetime, float]],
        max_age: timedelta = timedelta(minutes=15),
    ) -> None:
        self.max_age = max_age
        self._exact: dict[tuple[str, str | None], _Series] = defaultdict(_Series)
        self.last_time: datetime | None = None
        for symbol, exchange, ts, price in rows:
            p = float(price)
            if not p > 0:
                continue
            self._exact[(symbol, exchange)].points.append((ts, p))
            if self.last_time is None or ts > self.last_time:
                self.last_time = ts
        self._symbol: dict[str, list[_Series]] = defaultdict(list)
        self._dollar: dict[str, list[_Series]] = defaultdict(list)
        for (symbol, _exchange), series in sorted(
            self._exact.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
        ):
            series.seal()
            self._symbol[symbol].append(series)
            base, _, quote = symbol.partition("-")
            if quote in DOLLAR_QUOTES:
                self._dollar[base].append(series)

    def _tiers(self, symbol: str, exchange: str | None) -> Iterable[list[_Series]]:
        exact = self._exact.get((symbol, exchange)) if exchange is not None else None
        yield [exact] if exact is not None else []
        yield self._symbol.get(symbol, [])
        base, _, quote = symbol.partition("-")
        yield self._dollar.get(base, []) if quote in DOLLAR_QUOTES else []

    def price_at(self, symbol: str, exchange: str | None, t: datetime) -> float | None:
        for tier in self._tiers(symbol, exchange):
            found = [p for s in tier if (p := s.at(t, self.max_age)) is not None]
            if found:
                return max(found, key=lambda p: p[0])[1]  # the newest of the tier (ties: first venue)
        return None

    def prices_at(
        self, symbol: str, exchange: str | None, t0: datetime, t1: datetime
    ) -> tuple[float, float] | None:
        """Entry (at t0) and exit (at t1) price from *one* venue, in lookup order (within a tier the
        venue with the newest entry price), so a return never mixes two venues' price levels."""
        for tier in self._tiers(symbol, exchange):
            both = [
                (a, b) for s in tier if (a := s.at(t0, self.max_age)) is not None
                and (b := s.at(t1, self.max_age)) is not None
            ]  # fmt: skip
            if both:
                a, b = max(both, key=lambda ab: ab[0][0])
                return a[1], b[1]
        return None

    def __len__(self) -> int:
        return sum(len(s.points) for s in self._exact.values())


@dataclass(frozen=True)
class Outcome:
    """One alert at one horizon: resolved (with its signed return and hit), pending or unpriced."""

    alert_id: str
    module_id: str
    symbol: str
    horizon: str
    detected_at: datetime
    status: Status
    signed_return: float | None = None
    hit: bool | None = None


def _instrument(text: Any) -> tuple[str | None, str] | None:
    """``"binance:BTC-USDT"`` -> (exchange, symbol); a bare symbol -> (None, symbol)."""
    if not isinstance(text, str) or not text:
        return None
    exchange, sep, symbol = text.partition(":")
    return (exchange, symbol) if sep else (None, exchange)


def _return(
    prices: PriceIndex, symbol: str, exchange: str | None, t0: datetime, t1: datetime
) -> float | None:
    found = prices.prices_at(symbol, exchange, t0, t1)
    if found is None:
        return None
    p0, p1 = found
    return (p1 - p0) / p0


def evaluate(
    alert: AlertLike, horizon: str, prices: PriceIndex, as_of: datetime, move_pct: float = 2.0
) -> Outcome | None:
    """The alert's outcome at ``horizon`` ("1h", "4h", "24h") as known at ``as_of``; None when the
    alert implies no direction (not back-tested)."""
    direction = implied_direction(alert.alert_type, alert.details)
    if direction is None:
        return None
    h = HORIZONS[horizon]
    t0 = alert.detected_at
    t1 = t0 + h

    def outcome(status: Status, signed: float | None = None, hit: bool | None = None) -> Outcome:
        return Outcome(alert.alert_id, alert.module_id, alert.symbol, horizon, t0, status, signed, hit)

    if t1 > as_of:
        return outcome("pending")
    a, b = _instrument(alert.details.get("instrument_a")), _instrument(alert.details.get("instrument_b"))
    if alert.alert_type == "spread_divergence" and a is not None and b is not None:
        ra, rb = _return(prices, a[1], a[0], t0, t1), _return(prices, b[1], b[0], t0, t1)
        r = None if ra is None or rb is None else (1 + ra) / (1 + rb) - 1
    else:
        r = _return(prices, alert.symbol, alert.exchange, t0, t1)
    if r is None:
        return outcome("unpriced")
    if direction == 0:
        return outcome("resolved", abs(r), abs(r) * 100 > move_pct)
    signed = direction * r
    return outcome("resolved", signed, signed > 0)


def evaluate_all(
    alerts: Iterable[AlertLike],
    prices: PriceIndex,
    as_of: datetime,
    horizons: Sequence[str] = tuple(HORIZONS),
    move_pct: float = 2.0,
) -> list[Outcome]:
    """Every back-testable alert at every horizon."""
    found = []
    for alert in alerts:
        for h in horizons:
            if (o := evaluate(alert, h, prices, as_of, move_pct)) is not None:
                found.append(o)
    return found


def sharpe(returns: Sequence[float]) -> float | None:
    """mean / sample standard deviation (per alert, not annualised); None if n < 2 or std == 0."""
    n = len(returns)
    if n < 2:
        return None
    mean = sum(returns) / n
    var = sum((r - mean) ** 2 for r in returns) / (n - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var)


def max_drawdown(returns: Sequence[float]) -> float:
    """Largest peak-to-trough fall of the compounded equity ∏(1 + r), starting at 1, as a fraction ≥ 0."""
    equity = peak = 1.0
    worst = 0.0
    for r in returns:
        equity *= 1 + r
        peak = max(peak, equity)
        if peak > 0:
            worst = max(worst, (peak - equity) / peak)
    return worst


def summarize(outcomes: Iterable[Outcome]) -> list[dict[str, Any]]:
    """One backtest_results-shaped dict per (module_id, symbol, horizon), in that order: n (resolved),
    hits, hit_rate, mean_return, sharpe, max_drawdown (of the signed returns in detected_at order),
    pending, unpriced. Figures of a group with no resolved outcome are None."""
    groups: dict[tuple[str, str, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[(o.module_id, o.symbol, o.horizon)].append(o)
    order = {h: i for i, h in enumerate(HORIZONS)}
    rows = []
    for (module_id, symbol, horizon), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], order.get(kv[0][2], 99), kv[0][2])
    ):
        resolved = sorted(
            (o for o in group if o.status == "resolved"), key=lambda o: (o.detected_at, o.alert_id)
        )
        returns = [float(o.signed_return) for o in resolved if o.signed_return is not None]
        hits = sum(1 for o in resolved if o.hit)
        n = len(resolved)
        rows.append(
            {
                "module_id": module_id,
                "symbol": symbol,
                "horizon": horizon,
                "n": n,
                "hits": hits,
                "hit_rate": hits / n if n else None,
                "mean_return": sum(returns) / n if n else None,
                "sharpe": sharpe(returns),
                "max_drawdown": max_drawdown(returns) if n else None,
                "pending": sum(1 for o in group if o.status == "pending"),
                "unpriced": sum(1 for o in group if o.status == "unpriced"),
            }
        )
    return rows


def hit_rates_as_of(
    outcomes: Iterable[Outcome], t: datetime, horizon: str = "1h"
) -> dict[tuple[str, str], tuple[int, int]]:
    """(hits, n) per (module_id, symbol) of the resolved outcomes at ``horizon`` that were known at
    ``t`` (detected_at + horizon <= t): what a model scoring at t may use without looking ahead."""
    h = HORIZONS[horizon]
    found: dict[tuple[str, str], tuple[int, int]] = {}
    for o in outcomes:
        if o.horizon != horizon or o.status != "resolved" or o.detected_at + h > t:
            continue
        hits, n = found.get((o.module_id, o.symbol), (0, 0))
        found[(o.module_id, o.symbol)] = (hits + (1 if o.hit else 0), n + 1)
    return found


# -- signal degradation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Degradation:
    """A module whose hit rate on ``backtest_date`` fell ``points`` below its trailing rate."""

    module_id: str
    backtest_date: date
    horizon: str
    today_hits: int
    today_n: int
    trailing_hits: int
    trailing_n: int
    trailing_dates: tuple[date, ...]

    @property
    def today_rate(self) -> float:
        return self.today_hits / self.today_n

    @property
    def trailing_rate(self) -> float:
        return self.trailing_hits / self.trailing_n

    @property
    def drop_points(self) -> float:
        return (self.trailing_rate - self.today_rate) * 100


def _hits(row: Mapping[str, Any]) -> int:
    if row.get("hits") is not None:
        return int(row["hits"])
    n, rate = int(row.get("n") or 0), row.get("hit_rate")
    return round(float(rate) * n) if n and rate is not None else 0


def degradations(
    rows: Iterable[Mapping[str, Any]],
    backtest_date: date,
    *,
    horizon: str = "1h",
    points: float = 15.0,
    min_n: int = 20,
    trailing_days: int = 7,
) -> list[Degradation]:
    """Modules degraded on ``backtest_date``: at ``horizon``, the day's hit rate weighted by n across
    symbols is at least ``points`` percentage points below the rate over the ``trailing_days`` calendar
    days before it (backtest_date − trailing_days … backtest_date − 1), with n ≥ ``min_n`` on both sides.

    ``rows`` are backtest_results rows (backtest_date, module_id, horizon, n, hits or hit_rate); rows
    of other dates and horizons are ignored.
    """
    first = backtest_date - timedelta(days=trailing_days)
    today: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    trailing: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    dates: dict[str, set[date]] = defaultdict(set)
    for row in rows:
        if row.get("horizon") != horizon or not row.get("n"):
            continue
        day = row["backtest_date"]
        day = day.date() if isinstance(day, datetime) else day
        if day == backtest_date:
            side = today
        elif first <= day < backtest_date:
            side = trailing
            dates[row["module_id"]].add(day)
        else:
            continue
        acc = side[row["module_id"]]
        acc[0] += _hits(row)
        acc[1] += int(row["n"])
    found = []
    for module_id in sorted(today):
        th, tn = today[module_id]
        ph, pn = trailing.get(module_id, [0, 0])
        if tn < min_n or pn < min_n:
            continue
        # compare in integer-exact terms where possible: today - trailing <= -points/100
        if th / tn <= ph / pn - points / 100 + 1e-12:
            found.append(
                Degradation(
                    module_id, backtest_date, horizon, th, tn, ph, pn, tuple(sorted(dates[module_id]))
                )
            )
    return found


# -- calibration (MOD-010's predicted probabilities against what happened) -------------------------


def big_move(
    prices: PriceIndex,
    symbol: str,
    t: datetime,
    horizon: str,
    as_of: datetime,
    move_pct: float = 2.0,
    exchange: str | None = None,
) -> bool | None:
    """Did ``symbol`` move more than ``move_pct`` % (either way) over ``horizon`` after ``t``? None:
    not known yet at ``as_of``, or unpriced."""
    t1 = t + HORIZONS[horizon]
    if t1 > as_of:
        return None
    r = _return(prices, symbol, exchange, t, t1)
    return None if r is None else abs(r) * 100 > move_pct


def calibration(points: Iterable[tuple[float, bool]], bins: int = 10) -> list[dict[str, Any]]:
    """Predicted probability bins (equal width over [0, 1]) against the realized frequency: per
    non-empty bin its bounds, n, mean predicted p and the share that happened."""
    acc: dict[int, list[float]] = defaultdict(lambda: [0, 0.0, 0])
    for p, happened in points:
        i = min(bins - 1, max(0, int(float(p) * bins)))
        acc[i][0] += 1
        acc[i][1] += float(p)
        acc[i][2] += 1 if happened else 0
    return [
        {
            "bin_low": i / bins,
            "bin_high": (i + 1) / bins,
            "n": int(n),
            "mean_p": total / n,
            "frequency": hits / n,
        }
        for i, (n, total, hits) in sorted(acc.items())
    ]
