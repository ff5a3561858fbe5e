"""Seeded market simulator: raw exchange messages with planted whales, bursts and dislocations.

Each exchange module renders a trade as its own raw message (``ExchangeSpec.render``); the market
itself (prices, arrivals, sizes, what is planted) is the same for every exchange.

Background: one random-walk fair price per base asset (shared by its instruments, so cross-exchange
spreads stay ~0.01 %), Poisson arrivals (``rate`` events/s split evenly over the instruments) and
log-normal trade sizes capped at 25K quote volume. That keeps 60 s window volumes near-Gaussian, so a
|z| > 2.5 detector fires on background about as often as a normal tail allows (< 1 / hour / instrument).

Planted (and written to the truth):
- whales: single trades above 100K / 500K / 1M quote volume;
- volume bursts: one 60 s window (aligned) with at least 6x the usual volume and mean + 6 sd of the
  hour before (so whales in that hour cannot mask it), only after 15 minutes of normal history and
  more than an hour apart per instrument;
- spread dislocations: a 90 s stretch (aligned to 30 s) where the first instrument of an equivalence
  group trades ``spread_pct`` above the others.
A whale also lifts its own 60 s window volume; those windows are listed as ``whale_windows`` so a
volume detector's hits there can be told apart from false alarms.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from coattail.contracts.ids import trade_event_id
from coattail.contracts.types import format_utc
from connectors.registry import EXCHANGES
from connectors.spec import SimCounters, SimTrade

DEFAULT_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "BNB": 600.0, "XRP": 0.6, "DOGE": 0.15}
WHALE_BANDS = (Decimal(150_000), Decimal(700_000), Decimal(1_500_000))
MEDIAN_NOTIONAL = 1_500.0
MAX_NOTIONAL = 25_000.0
BURST_FACTOR = 5  # a burst window holds at least 6x the usual volume ...
BURST_Z = 6.0  # ... and at least mean + 6 sd of the hour before (whales there inflate the sd)
DISLOCATION_SECONDS = 90
WALK_SIGMA = 0.00008  # per-second log-return of the fair price
QTY_STEP = Decimal("0.00001")


@dataclass(frozen=True)
class Instrument:
    exchange: str
    symbol: str

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.symbol}"

    @property
    def base(self) -> str:
        return self.symbol.split("-")[0]


@dataclass
class _Trade:
    inst: Instrument
    t_us: int  # trade time, epoch microseconds
    price: Decimal
    qty: Decimal
    taker: str


def simulate(
    *,
    seed: int,
    minutes: float,
    rate: float,
    start: datetime | None = None,
    instruments: dict[str, list[str]] | None = None,
    equivalences: dict[str, list[str]] | None = None,
    spread_pct: float = 1.0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Raw-message lines (``{"exchange","received_at","raw"}``) sorted by ``received_at``, and the truth."""
    if minutes <= 0 or rate <= 0:
        raise ValueError("minutes and rate must be positive")
    instruments = instruments or {"binance": ["BTC-USDT", "ETH-USDT"], "coinbase": ["BTC-USD", "ETH-USD"]}
    if equivalences is None:
        equivalences = {"BTC": ["binance:BTC-USDT", "coinbase:BTC-USD"]}
    rng = random.Random(seed)
    start = (start or datetime.now(UTC) - timedelta(minutes=minutes)).astimezone(UTC).replace(microsecond=0)
    t0 = int(start.timestamp())
    t1 = t0 + int(minutes * 60)
    insts = [Instrument(ex, s) for ex in sorted(instruments) for s in instruments[ex] if ex in EXCHANGES]
    if not insts:
        raise ValueError(f"no instruments of {'/'.join(sorted(EXCHANGES))} to simulate")
    walks = {
        base: _walk(rng, DEFAULT_PRICES.get(base, 100.0), t1 - t0 + 2)
        for base in sorted({i.base for i in insts})
    }
    per_inst = rate / len(insts)

    dislocations = _plan_dislocations(rng, t0, t1, equivalences, {i.key for i in insts}, spread_pct)
    shift: dict[str, list[tuple[int, int, float]]] = {}
    for d in dislocations:
        shift.setdefault(d["a"], []).append((d["_s"], d["_e"], d["spread_pct"] / 100))

    def price_at(inst: Instrument, t_us: int) -> Decimal:
        fair = walks[inst.base][(t_us // 1_000_000) - t0]
        noisy = fair * (1 + rng.gauss(0, 0.00004))
        for s, e, pct in shift.get(inst.key, ()):
            if s <= t_us // 1_000_000 < e:
                noisy *= 1 + pct
        return _tick(noisy)

    trades: list[_Trade] = []
    for inst in insts:  # background Poisson flow
        t = float(t0)
        while True:
            t += rng.expovariate(per_inst)
            if t >= t1:
                break
            t_us = int(t * 1_000_000)
            trades.append(
                _Trade(inst, t_us, p := price_at(inst, t_us), _qty(rng, p), rng.choice(("buy", "sell")))
            )

    bursts = _plan_bursts(rng, t0, t1, insts)
    reserved = {b["_s"] // 60 for b in bursts} | {
        m for d in dislocations for m in range(d["_s"] // 60, d["_e"] // 60 + 1)
    }
    whales: list[_Trade] = []
    minute = t0 // 60 + 3
    band = 0
    while (minute + 1) * 60 < t1:
        if minute not in reserved:
            inst = rng.choice(insts)
            t_us = (minute * 60 + rng.randrange(10, 50)) * 1_000_000 + rng.randrange(1_000_000)
            price = price_at(inst, t_us)
            target = WHALE_BANDS[band % 3] * Decimal(str(round(1 + rng.random() * 0.2, 3)))
            qty = (target / price).quantize(QTY_STEP, rounding=ROUND_DOWN) + QTY_STEP
            whales.append(_Trade(inst, t_us, price, qty, rng.choice(("buy", "sell"))))
            band += 1
        minute += 7
    trades.extend(whales)

    # Bursts last: each is sized against the window volumes of the hour before it (background,
    # whales, earlier bursts), so the specified detector (|z| > 2.5 vs the previous hour) sees it.
    for b in bursts:
        inst, start_s = b["_inst"], b["_s"]
        needed, current = _burst_target(trades, inst, start_s, t0)
        while current < needed:
            t_us = start_s * 1_000_000 + rng.randrange(60_000_000)
            p = price_at(inst, t_us)
            trade = _Trade(inst, t_us, p, _qty(rng, p), rng.choice(("buy", "sell")))
            trades.append(trade)
            current += float(trade.price * trade.qty)

    lines, whale_truth = _render(rng, trades, {id(w) for w in whales}, insts, t0, t1)
    truth = {
        "seed": seed,
        "start": _iso_s(t0),
        "end": _iso_s(t1),
        "rate": rate,
        "whales": whale_truth,
        "volume_bursts": [{k: v for k, v in b.items() if not k.startswith("_")} for b in bursts],
        "spread_dislocations": [{k: v for k, v in d.items() if not k.startswith("_")} for d in dislocations],
        "whale_windows": sorted(
            (
                {"exchange": w["exchange"], "symbol": w["symbol"], "window_start": _window(w["timestamp"])}
                for w in whale_truth
            ),
            key=lambda x: (x["window_start"], x["exchange"], x["symbol"]),
        ),
    }
    return lines, truth


# -- planning ---------------------------------------------------------------------------------------
def _plan_bursts(rng: random.Random, t0: int, t1: int, insts: list[Instrument]) -> list[dict[str, Any]]:
    """Windows from 16 min on, every 20 min, instruments rotating; ≥ 60 min apart per instrument."""
    out: list[dict[str, Any]] = []
    first = -(-(t0 + 15 * 60) // 60) * 60 + 60  # ≥ 15 min of history before the window
    order = insts[:]
    rng.shuffle(order)
    last: dict[str, int] = {}
    k = 0
    s = first
    while s + 60 <= t1:
        inst = order[k % len(order)]
        k += 1
        if s - last.get(inst.key, -(10**12)) > 3600:  # never inside the next one's baseline hour
            last[inst.key] = s
            out.append(
                {
                    "exchange": inst.exchange,
                    "symbol": inst.symbol,
                    "window_start": _iso_s(s),
                    "_s": s,
                    "_inst": inst,
                }
            )
        s += 20 * 60
    return out


def _plan_dislocations(
    rng: random.Random, t0: int, t1: int, equivalences: dict[str, list[str]], present: set[str], pct: float
) -> list[dict[str, Any]]:
    """One stretch per hour (first ~25 min in), cycling through the equivalence groups we simulate."""
    groups = [
        m
        for _, m in sorted(equivalences.items())
        if m and m[0] in present and any(b in present for b in m[1:])
    ]
    out: list[dict[str, Any]] = []
    s = -(-(t0 + 25 * 60) // 30) * 30 if t1 - t0 >= 40 * 60 else -(-(t0 + (t1 - t0) // 3) // 30) * 30
    k = 0
    while groups and s + DISLOCATION_SECONDS <= t1 - 30:
        members = groups[k % len(groups)]
        b = next(m for m in members[1:] if m in present)
        e = s + DISLOCATION_SECONDS
        out.append(
            {
                "a": members[0],
                "b": b,
                "start": _iso_s(s),
                "end": _iso_s(e),
                "spread_pct": pct,
                "_s": s,
                "_e": e,
            }
        )
        k += 1
        s += 3600
    return out


# -- rendering raw exchange messages (each exchange module renders its own) -----------------------------
def _render(
    rng: random.Random, trades: list[_Trade], whale_ids: set[int], insts: list[Instrument], t0: int, t1: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    trades.sort(key=lambda tr: (tr.t_us, tr.inst.key))
    first_ids = {i.key: rng.randrange(10**8, 4 * 10**9) for i in insts}
    first_seqs = {i.key: rng.randrange(10**9, 9 * 10**10) for i in insts}
    counters = {i.key: SimCounters(first_ids[i.key], first_seqs[i.key]) for i in insts}
    out: list[tuple[int, dict[str, Any]]] = []
    whales: list[dict[str, Any]] = []
    for tr in trades:
        key = tr.inst.key
        tid = counters[key].next_id
        counters[key].next_id += 1
        latency_us = rng.randrange(3_000, 40_000)
        sim = SimTrade(tr.inst.symbol, tr.t_us, tr.price, tr.qty, tr.taker)
        rendered = EXCHANGES[tr.inst.exchange].render(sim, tid, counters[key], rng)
        received = rendered.ts_us + latency_us
        line = {"exchange": tr.inst.exchange, "received_at": _iso_us(received, ms=True), "raw": rendered.raw}
        out.append((received, line))
        if id(tr) in whale_ids:
            whales.append(
                {
                    "exchange": tr.inst.exchange,
                    "symbol": tr.inst.symbol,
                    "event_id": trade_event_id(tr.inst.exchange, tr.inst.symbol, rendered.event_key),
                    # Same text as the normalised event's quote_volume (product of the wire strings).
                    "quote_volume": format(Decimal(rendered.price_text) * Decimal(rendered.qty_text), "f"),
                    "side": tr.taker,
                    "timestamp": _iso_us(rendered.ts_us),
                }
            )
    for inst in insts:  # non-trade messages (Coinbase heartbeats): real feeds interleave them
        for received, raw in EXCHANGES[inst.exchange].idle_messages(inst.symbol, counters[inst.key], t0, t1):
            out.append(
                (received, {"exchange": inst.exchange, "received_at": _iso_us(received, ms=True), "raw": raw})
            )
    out.sort(key=lambda x: x[0])
    return [line for _, line in out], sorted(whales, key=lambda w: w["timestamp"])


# -- small helpers ------------------------------------------------------------------------------------
def _burst_target(trades: list[_Trade], inst: Instrument, start_s: int, t0: int) -> tuple[float, float]:
    """Volume the burst window needs, and what it already has.

    The baseline is the 60 windows before it; a detector may count the windows before the data
    starts as zeros or leave them out, so the target satisfies both readings.
    """
    windows = [0.0] * 61
    lo, hi = (start_s - 3600) * 1_000_000, (start_s + 60) * 1_000_000
    for tr in trades:
        if tr.inst == inst and lo <= tr.t_us < hi:
            windows[(tr.t_us - lo) // 60_000_000] += float(tr.price * tr.qty)
    first = max(0, (t0 - (start_s - 3600) + 59) // 60)  # first window inside the simulated data
    target = 0.0
    for history in (windows[:60], windows[first:60]):
        mean = sum(history) / len(history)
        sd = math.sqrt(sum((v - mean) ** 2 for v in history) / (len(history) - 1))
        target = max(target, mean * (1 + BURST_FACTOR), mean + BURST_Z * sd)
    return target, windows[60]


def _walk(rng: random.Random, p0: float, n: int) -> list[float]:
    out = [p0]
    for _ in range(n):
        out.append(out[-1] * math.exp(rng.gauss(0, WALK_SIGMA)))
    return out


def _tick(price: float) -> Decimal:
    step = Decimal("0.01") if price >= 10 else Decimal("0.0001")
    return max(Decimal(str(price)).quantize(step), step)


def _qty(rng: random.Random, price: Decimal) -> Decimal:
    notional = min(MAX_NOTIONAL, MEDIAN_NOTIONAL * math.exp(rng.gauss(0, 0.8)))
    qty = (Decimal(str(round(notional, 2))) / price).quantize(QTY_STEP, rounding=ROUND_DOWN)
    return max(qty, QTY_STEP)


def _iso_s(epoch_s: int) -> str:
    return format_utc(datetime.fromtimestamp(epoch_s, UTC))


def _iso_us(epoch_us: int, *, ms: bool = False) -> str:
    if ms:
        epoch_us -= epoch_us % 1000
    value = datetime.fromtimestamp(epoch_us // 1_000_000, UTC).replace(microsecond=epoch_us % 1_000_000)
    return format_utc(value)


def _window(ts: str) -> str:
    epoch = int(datetime.fromisoformat(ts).timestamp())
    return _iso_s(epoch - epoch % 60)
