"""The ETH price path the chain simulator follows: the CEX simulator's, so both markets agree.

Three sources, one shape (a step function of time):

* :func:`from_cex_simulator`: the CEX simulator's own fair-price walk for a seed and duration (the
  same draws ``coattail simulate --seed S --minutes M`` makes for the same instruments);
* :func:`from_trades_file`: the last ``binance:ETH-USDT`` (or any instrument's) trade price per
  second of a file the CEX side wrote, raw envelopes (``coattail simulate --out``) or TradeEvents;
* :func:`constant`: one price (tests, a quiet chain).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson

from coattail.errors import CoattailError


class PricePathError(CoattailError, ValueError):
    """A price source that gives no usable path; the message says why."""


@dataclass(frozen=True)
class PricePath:
    """Prices at epoch seconds; :meth:`at` is the last price at or before a time (the first before it)."""

    times: Sequence[int]
    prices: Sequence[Decimal]
    source: str

    def __post_init__(self) -> None:
        if not self.times or len(self.times) != len(self.prices):
            raise PricePathError(f"{self.source}: no prices")
        if any(b < a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise PricePathError(f"{self.source}: times are not in order")

    @property
    def start(self) -> int:
        return self.times[0]

    @property
    def end(self) -> int:
        return self.times[-1]

    def at(self, epoch_s: float) -> Decimal:
        i = bisect.bisect_right(self.times, epoch_s) - 1
        return self.prices[max(i, 0)]

    def offset(self, seconds: float) -> Decimal:
        """The price ``seconds`` after the path's start (clamped at its end)."""
        return self.at(self.start + seconds)


def constant(price: Decimal, start: int = 0) -> PricePath:
    return PricePath([start], [price], f"constant {price}")


def from_cex_simulator(
    seed: int,
    minutes: float,
    start: datetime,
    bases: Iterable[str] = ("BTC", "ETH", "SOL"),
    base: str = "ETH",
) -> PricePath:
    """The CEX simulator's fair price of ``base`` per second (``connectors.simulator``'s walk).

    The simulator draws one walk per base asset first thing, in sorted order, from ``Random(seed)``;
    ``bases`` must be the bases of the instruments that run simulated (the tier's), or the draws differ.
    """
    from connectors import simulator

    ordered = sorted(set(bases))
    if base not in ordered:
        raise PricePathError(f"{base} is not among the simulated bases {', '.join(ordered)}")
    rng = random.Random(seed)
    t0 = int(start.timestamp())
    t1 = t0 + int(minutes * 60)
    walk: list[float] = []
    for b in ordered:
        drawn = simulator.fair_price_walk(rng, simulator.DEFAULT_PRICES.get(b, 100.0), t1 - t0 + 2)
        if b == base:
            walk = drawn
            break
    prices = [Decimal(str(round(p, 2))) for p in walk]
    return PricePath(list(range(t0, t0 + len(prices))), prices, f"CEX simulator walk (seed {seed})")


def from_trades_file(path: Path, instrument: str = "binance:ETH-USDT") -> PricePath:
    """The last trade price per second of ``instrument`` in a raw-envelope or TradeEvent JSONL file."""
    exchange, _, symbol = instrument.partition(":")
    if not symbol:
        raise PricePathError(f"instrument {instrument!r} is not exchange:BASE-QUOTE")
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise PricePathError(f"cannot read {path}: {exc.strerror}") from None
    by_second: dict[int, Decimal] = {}
    for trade in _trades(lines, exchange):
        if trade["exchange"] == exchange and trade["symbol"] == symbol:
            ts = datetime.fromisoformat(str(trade["timestamp"]).replace("Z", "+00:00"))
            by_second[int(ts.timestamp())] = Decimal(str(trade["price"]))
    if not by_second:
        raise PricePathError(f"{path} holds no {instrument} trades")
    times = sorted(by_second)
    return PricePath(times, [by_second[t] for t in times], f"{instrument} trades in {path}")


def _trades(lines: list[bytes], exchange: str) -> Iterable[dict[str, object]]:
    """TradeEvent dicts from either format; lines of other exchanges or kinds are passed over."""
    from connectors.rawlines import parse_line
    from connectors.registry import normalizer

    norm = None
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "price" in obj and "symbol" in obj:
            yield obj
            continue
        if not (isinstance(obj, dict) and obj.get("exchange") == exchange and "raw" in obj):
            continue
        norm = norm or normalizer(exchange)
        try:
            parsed = parse_line(line)
            for trade in norm.message(parsed.message, parsed.received_at or "1970-01-01T00:00:00Z"):
                yield orjson.loads(trade.to_json())
        except Exception:  # noqa: S112 - a line the normaliser refuses is not a price
            continue
