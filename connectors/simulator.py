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
- flow episodes: one aligned 5 min window on one instrument holding 4-6 whales (150K-450K) in
  different minutes. A consensus episode sits on a burst's window and all its whales take one side
  (flow ratio 1 or 0, burst z >= 6: MOD-006 and MOD-007 must fire); a flow-only episode has one or two
  opposite whales that put the flow ratio in 0.74-0.78 (or 0.22-0.26), so MOD-006 must fire and
  MOD-007 cannot reach 70 (score <= 100 x (0.3 + 0.3 x 0.56 + 0.4 x 0.56) = 69.2) whatever the volume.
  Background whales (one every 7 minutes) stay out of episode windows on the episode's symbol, so any
  other 5 min window of a symbol holds at most one whale and neither detector can fire there.
A whale also lifts its own 60 s window volume; those windows are listed as ``whale_windows`` so a
volume detector's hits there can be told apart from false alarms.

Planted price moves (``moves=N``, off by default: without them every draw is what it was before
them): N per base asset, one per equal slot of the run, alternating up and down, each a linear drift
of 3-5 % of the fair price over 20-40 min on every instrument of the base (the walk is multiplied by
it, so cross-venue spreads stay as they were). Two of every three are *predictable*: the hour before
the drift (twelve aligned 5 min windows on every instrument of the base: informed money trades the
asset on each venue) holds an informed flow episode in the move's direction - four whales per
window (150K-450K, all on the leading side, or one small opposite whale leaving it 0.86-0.92 of the
volume; MOD-002 and MOD-006 fire the move's way) and, in its last 30 min, one volume burst per window
whose trades lean 75 % to the leading side (MOD-001 fires, and MOD-007's score passes 70). The
others are *unpredictable*: the same drift with nothing planted on the base's instruments before it.
No background whale, flow episode or background burst lands on a move's base in its 1 h lead-in,
so what precedes a move is exactly what the truth's ``moves`` says. Move planning and everything it
adds draw from a random generator of their own (seeded from ``seed``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
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
EPISODE_SECONDS = 300  # MOD-006 / MOD-007 windows
EPISODE_WHALE = (Decimal(150_000), Decimal(450_000))  # every episode whale's rendered quote volume
FLOW_ONLY_SHARE = (Decimal("0.74"), Decimal("0.78"))  # flow-only: the leading side's share of it
MOVE_PCT = (3.0, 5.0)  # a planted move's size, % of the fair price
MOVE_MINUTES = (20, 40)  # its drift's duration
INFORMED_SECONDS = 3600  # the lead-in before a drift: informed flow (predictable) or nothing
MOVE_SLOT_MINUTES = 105  # lead-in + the longest drift + 5 quiet minutes: one move per slot and base
MOVE_LEAD_IN = 20 * 60  # the first lead-in starts this far in (MOD-001 needs 10 min of history)
MOVE_TAIL = 30 * 60  # the last drift ends this long before the end (its 1 h horizon mostly priced)
INFORMED_SHARE = (Decimal("0.86"), Decimal("0.92"))  # a mixed informed window's leading share
INFORMED_BURST_NOTIONAL = (10_000.0, 25_000.0)  # burst trades stay far below the whale threshold
INFORMED_BURST_LEAN = 0.75  # share of an informed burst's trades on the leading side
# Volume bursts only in the last 30 min of the lead-in: each burst must stand out against a baseline
# that holds the ones before it, so twelve in an hour would grow without bound.
BURST_LEAD_IN = 1800
WHALE_THRESHOLD = Decimal(100_000)  # MOD-002's: every informed whale is above it


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


@dataclass
class _Episode:
    """A planned flow episode: its window, its free minutes and (once sized) its whales."""

    inst: Instrument
    start_s: int  # window start, aligned to EPISODE_SECONDS
    direction: str  # accumulation | distribution
    consensus: bool
    minutes: list[int]  # epoch minutes of the window free for its whales
    whales: list[_Trade]


@dataclass
class _Move:
    """A planted price move of one base asset and, when predictable, its informed flow."""

    base: str
    inst: Instrument  # where its informed flow trades (the symbol the truth names)
    instruments: list[Instrument]  # every simulated instrument of the base (all of them move)
    direction: str  # up | down
    pct: float
    start_s: int  # drift start, aligned to EPISODE_SECONDS
    end_s: int
    predictable: bool
    windows: list[_Episode]  # the informed 5 min windows (empty when unpredictable)
    bursts: list[dict[str, Any]]  # their volume bursts (volume_bursts shape, private keys too)

    @property
    def lead_in(self) -> tuple[int, int]:
        return self.start_s - INFORMED_SECONDS, self.start_s

    @property
    def sign(self) -> int:
        return 1 if self.direction == "up" else -1


def simulate(
    *,
    seed: int,
    minutes: float,
    rate: float,
    start: datetime | None = None,
    instruments: dict[str, list[str]] | None = None,
    equivalences: dict[str, list[str]] | None = None,
    spread_pct: float = 1.0,
    flow_episodes: bool = True,
    moves: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Raw-message lines (``{"exchange","received_at","raw"}``) sorted by ``received_at``, and the truth.

    ``flow_episodes=False`` plants none (and then draws exactly what the simulator drew before them).
    ``moves`` planted price moves per base asset (0: none, and the truth's ``moves`` is empty); the
    run needs ``MOVE_SLOT_MINUTES`` per move plus 50 minutes.
    """
    if minutes <= 0 or rate <= 0:
        raise ValueError("minutes and rate must be positive")
    if moves < 0:
        raise ValueError("moves must not be negative")
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
        base: fair_price_walk(rng, DEFAULT_PRICES.get(base, 100.0), t1 - t0 + 2)
        for base in sorted({i.base for i in insts})
    }
    per_inst = rate / len(insts)
    mrng = random.Random(f"coattail-moves:{seed}")  # moves draw apart: the rest stays as it was
    planted = _plan_moves(mrng, t0, t1, insts, moves) if moves else []
    for mv in planted:
        _apply_drift(walks[mv.base], mv, t0)
    blocked = {  # (symbol, 5 min window) pairs that hold nothing but a move's own informed flow
        (inst.symbol, w)
        for mv in planted
        for inst in mv.instruments
        for w in range(mv.lead_in[0], mv.lead_in[1], EPISODE_SECONDS)
    }

    dislocations = _plan_dislocations(rng, t0, t1, equivalences, {i.key for i in insts}, spread_pct)
    shift: dict[str, list[tuple[int, int, float]]] = {}
    for d in dislocations:
        shift.setdefault(d["a"], []).append((d["_s"], d["_e"], d["spread_pct"] / 100))

    def price_at(inst: Instrument, t_us: int, noise: random.Random = rng) -> Decimal:
        fair = walks[inst.base][(t_us // 1_000_000) - t0]
        noisy = fair * (1 + noise.gauss(0, 0.00004))
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
    if blocked:  # a move's lead-in holds no background burst on its base
        bursts = [b for b in bursts if (b["symbol"], _episode_start(b["_s"])) not in blocked]
    reserved = {b["_s"] // 60 for b in bursts} | {
        m for d in dislocations for m in range(d["_s"] // 60, d["_e"] // 60 + 1)
    }
    episodes = _plan_episodes(rng, t0, t1, insts, bursts, reserved, blocked) if flow_episodes else []
    for ep in episodes:
        ep.whales = _episode_whales(rng, ep, price_at)
    busy = {(ep.inst.symbol, ep.start_s) for ep in episodes} | blocked
    whales: list[_Trade] = [w for ep in episodes for w in ep.whales]
    for mv in planted:
        for k, ep in enumerate(mv.windows):
            ep.whales = _informed_whales(mrng, ep, lambda i, t: price_at(i, t, mrng), mixed=k % 3 == 1)
            whales.extend(ep.whales)
    minute = t0 // 60 + 3
    band = 0
    while (minute + 1) * 60 < t1:
        pick = rng.choice(insts) if minute not in reserved else None
        if pick is not None and (pick.symbol, _episode_start(minute * 60)) not in busy:
            t_us = (minute * 60 + rng.randrange(10, 50)) * 1_000_000 + rng.randrange(1_000_000)
            price = price_at(pick, t_us)
            target = WHALE_BANDS[band % 3] * Decimal(str(round(1 + rng.random() * 0.2, 3)))
            qty = (target / price).quantize(QTY_STEP, rounding=ROUND_DOWN) + QTY_STEP
            whales.append(_Trade(pick, t_us, price, qty, rng.choice(("buy", "sell"))))
            band += 1
        minute += 7
    trades.extend(whales)

    # Bursts last: each is sized against the window volumes of the hour before it (background,
    # whales, earlier bursts), so the specified detector (|z| > 2.5 vs the previous hour) sees it.
    # Informed bursts (moves) take their place in time order; their trades are larger and lean.
    by_inst: dict[Instrument, list[_Trade]] = {i: [] for i in insts}
    for tr in trades:
        by_inst[tr.inst].append(tr)
    informed = [b for mv in planted for b in mv.bursts]
    for b in sorted(bursts + informed, key=lambda b: b["_s"]) if informed else bursts:
        inst, start_s = b["_inst"], b["_s"]
        needed, current = _burst_target(by_inst[inst], inst, start_s, t0)
        lead = b.get("_lead")
        while current < needed:
            if lead is None:
                t_us = start_s * 1_000_000 + rng.randrange(60_000_000)
                p = price_at(inst, t_us)
                trade = _Trade(inst, t_us, p, _qty(rng, p), rng.choice(("buy", "sell")))
            else:
                t_us = start_s * 1_000_000 + mrng.randrange(60_000_000)
                p = price_at(inst, t_us, mrng)
                notional = Decimal(str(round(mrng.uniform(*INFORMED_BURST_NOTIONAL), 2)))
                side = lead if mrng.random() < INFORMED_BURST_LEAN else _other(lead)
                trade = _Trade(inst, t_us, p, _qty_for(notional, p), side)
            trades.append(trade)
            by_inst[inst].append(trade)
            current += float(trade.price * trade.qty)

    lines, whale_by_trade = _render(rng, trades, {id(w) for w in whales}, insts, t0, t1)
    whale_truth = sorted(whale_by_trade.values(), key=lambda w: w["timestamp"])
    truth = {
        "seed": seed,
        "start": _iso_s(t0),
        "end": _iso_s(t1),
        "rate": rate,
        "whales": whale_truth,
        "volume_bursts": [
            {k: v for k, v in b.items() if not k.startswith("_")}
            for b in (
                sorted(bursts + informed, key=lambda b: (b["_s"], b["_inst"].key)) if informed else bursts
            )
        ],
        "spread_dislocations": [{k: v for k, v in d.items() if not k.startswith("_")} for d in dislocations],
        "whale_windows": sorted(
            (
                {"exchange": w["exchange"], "symbol": w["symbol"], "window_start": _window(w["timestamp"])}
                for w in whale_truth
            ),
            key=lambda x: (x["window_start"], x["exchange"], x["symbol"]),
        ),
        "flow_episodes": [_episode_truth(ep, whale_by_trade) for ep in episodes],
        "moves": [_move_truth(mv, whale_by_trade) for mv in planted],
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


def _plan_episodes(
    rng: random.Random,
    t0: int,
    t1: int,
    insts: list[Instrument],
    bursts: list[dict[str, Any]],
    reserved: set[int],
    blocked: set[tuple[str, int]] | None = None,
) -> list[_Episode]:
    """Consensus episodes on the bursts' 5 min windows, then flow-only ones every 10 minutes.

    Only windows wholly inside the simulation with at least four minutes free of bursts and
    dislocations qualify. Flow-only slots start at the first window after the start; a slot that does
    not qualify passes to the next window, so a 20 min run always holds one of each direction.
    Directions alternate per kind; no two episodes share a window on one symbol, and none takes a
    ``blocked`` (symbol, window) (a planted move's lead-in).
    """
    out: list[_Episode] = []
    taken: set[tuple[str, int]] = set(blocked or ())
    for b in bursts:
        inst, start = b["_inst"], _episode_start(b["_s"])
        minutes = _free_minutes(start, t0, t1, reserved)
        if len(minutes) >= 4 and (inst.symbol, start) not in taken:
            direction = ("accumulation", "distribution")[sum(e.consensus for e in out) % 2]
            out.append(_Episode(inst, start, direction, True, minutes, []))
            taken.add((inst.symbol, start))
    order = insts[:]
    rng.shuffle(order)
    first = _episode_start(t0) + EPISODE_SECONDS
    k = planted = 0
    pending = False
    for start in range(first, t1 - EPISODE_SECONDS + 1, EPISODE_SECONDS):
        pending = pending or (start - first) % (2 * EPISODE_SECONDS) == 0
        minutes = _free_minutes(start, t0, t1, reserved)
        free = [j for j in range(len(order)) if (order[(k + j) % len(order)].symbol, start) not in taken]
        if not pending or len(minutes) < 4 or not free:
            continue
        inst = order[(k + free[0]) % len(order)]
        k += free[0] + 1
        direction = ("accumulation", "distribution")[planted % 2]
        out.append(_Episode(inst, start, direction, False, minutes, []))
        taken.add((inst.symbol, start))
        planted += 1
        pending = False
    return sorted(out, key=lambda e: (e.start_s, e.inst.key))


def _free_minutes(start: int, t0: int, t1: int, reserved: set[int]) -> list[int]:
    """Minutes of the window at ``start`` an episode whale may use (none if it leaves the simulation)."""
    if start < t0 or start + EPISODE_SECONDS > t1:
        return []
    return [m for m in range(start // 60, (start + EPISODE_SECONDS) // 60) if m not in reserved]


def _episode_whales(
    rng: random.Random, ep: _Episode, price_at: Callable[[Instrument, int], Decimal]
) -> list[_Trade]:
    """4-6 whales in distinct minutes, sized until their rendered quote volumes meet the episode's claim.

    A consensus episode's whales all take the leading side; a flow-only one has one or two opposite
    whales sized so the leading side holds 0.74-0.78 of the whale quote volume, checked on the exact
    wire texts the normaliser multiplies.
    """
    n = rng.randint(4, min(6, len(ep.minutes)))
    times = sorted(
        (m * 60 + rng.randrange(10, 50)) * 1_000_000 + rng.randrange(1_000_000)
        for m in rng.sample(ep.minutes, n)
    )
    prices = [price_at(ep.inst, t) for t in times]
    lead, other = ("buy", "sell") if ep.direction == "accumulation" else ("sell", "buy")
    minor = 0 if ep.consensus else (1 if n == 4 else rng.choice((1, 2)))
    sides = [lead] * (n - minor) + [other] * minor
    rng.shuffle(sides)
    lo, hi = EPISODE_WHALE
    for _ in range(1000):
        leading = [Decimal(str(round(rng.uniform(155_000, 445_000), 2))) for _ in range(n - minor)]
        share = Decimal(str(round(rng.uniform(0.75, 0.77), 4)))
        opposite = sum(leading, Decimal(0)) * (1 - share) / share / minor if minor else Decimal(0)
        targets = iter(leading)
        trades = [
            _Trade(ep.inst, t, p, _qty_for(next(targets) if s == lead else opposite, p), s)
            for t, p, s in zip(times, prices, sides, strict=True)
        ]
        volumes = [(tr.taker, _wire_quote(tr)) for tr in trades]
        if all(lo <= v <= hi for _, v in volumes) and _share_ok(ep, volumes):
            return trades
    raise RuntimeError(f"could not size the flow episode on {ep.inst.key} at {_iso_s(ep.start_s)}")


def _share_ok(ep: _Episode, volumes: list[tuple[str, Decimal]]) -> bool:
    """The buy share of the whale quote volume is what the episode's truth says it is."""
    buy = sum((v for side, v in volumes if side == "buy"), Decimal(0))
    ratio = buy / sum((v for _, v in volumes), Decimal(0))
    leading = ratio if ep.direction == "accumulation" else 1 - ratio
    if ep.consensus:
        return leading == 1
    return FLOW_ONLY_SHARE[0] <= leading <= FLOW_ONLY_SHARE[1]


def _episode_truth(ep: _Episode, whale_by_trade: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The episode as the truth states it, summed from the whales' rendered quote volumes."""
    rendered = sorted((whale_by_trade[id(w)] for w in ep.whales), key=lambda w: w["timestamp"])
    volumes = [(w["side"], Decimal(w["quote_volume"])) for w in rendered]
    if not _share_ok(ep, volumes):  # sized on the same texts; a renderer change would break it
        raise RuntimeError(f"flow episode on {ep.inst.key} at {_iso_s(ep.start_s)} lost its flow ratio")
    return {
        "exchange": ep.inst.exchange,
        "symbol": ep.inst.symbol,
        "window_start": _iso_s(ep.start_s),
        "window_end": _iso_s(ep.start_s + EPISODE_SECONDS),
        "direction": ep.direction,
        "whale_event_ids": [w["event_id"] for w in rendered],
        "buy_volume": format(sum((v for s, v in volumes if s == "buy"), Decimal(0)), "f"),
        "sell_volume": format(sum((v for s, v in volumes if s == "sell"), Decimal(0)), "f"),
        "consensus": ep.consensus,
    }


# -- planted price moves ------------------------------------------------------------------------------
def _plan_moves(rng: random.Random, t0: int, t1: int, insts: list[Instrument], n: int) -> list[_Move]:
    """``n`` moves per base, one per equal slot (a multiple of 5 min) of the run, placed at random in it.

    Directions alternate per base (the bases start opposite ways); every third move is unpredictable.
    The instrument the truth names first rotates through the base's instruments; informed flow
    trades on all of them.
    """
    first = -(-(t0 + MOVE_LEAD_IN) // EPISODE_SECONDS) * EPISODE_SECONDS
    slot = (t1 - MOVE_TAIL - first) // n // EPISODE_SECONDS * EPISODE_SECONDS
    if slot < MOVE_SLOT_MINUTES * 60:
        need = MOVE_SLOT_MINUTES * n + (MOVE_LEAD_IN + MOVE_TAIL) // 60 + 5
        raise ValueError(f"{n} price moves per base asset need at least {need} simulated minutes")
    out: list[_Move] = []
    for b, base in enumerate(sorted({i.base for i in insts})):
        members = [i for i in insts if i.base == base]
        for k in range(n):
            lo = first + k * slot
            duration = 60 * rng.randint(*MOVE_MINUTES)
            latest = lo + slot - 300 - duration  # 5 quiet minutes before the next slot
            start = rng.randrange(
                lo + INFORMED_SECONDS, latest - latest % EPISODE_SECONDS + 1, EPISODE_SECONDS
            )
            inst = members[k % len(members)]
            mv = _Move(
                base=base,
                inst=inst,
                instruments=members,
                direction=("up", "down")[(k + b) % 2],
                pct=round(rng.uniform(*MOVE_PCT), 2),
                start_s=start,
                end_s=start + duration,
                predictable=k % 3 != 2,
                windows=[],
                bursts=[],
            )
            if mv.predictable:  # informed money trades the asset on every venue, not just one
                flow = "accumulation" if mv.direction == "up" else "distribution"
                for venue in [inst, *(m for m in members if m is not inst)]:
                    for w in range(mv.lead_in[0], mv.lead_in[1], EPISODE_SECONDS):
                        burst_minute = w // 60 + rng.randrange(EPISODE_SECONDS // 60)
                        minutes = [
                            m for m in range(w // 60, (w + EPISODE_SECONDS) // 60) if m != burst_minute
                        ]
                        mv.windows.append(_Episode(venue, w, flow, True, minutes, []))
                        if w < mv.lead_in[1] - BURST_LEAD_IN:  # early in the hour: whales only
                            continue
                        mv.bursts.append(
                            {
                                "exchange": venue.exchange,
                                "symbol": venue.symbol,
                                "window_start": _iso_s(burst_minute * 60),
                                "_s": burst_minute * 60,
                                "_inst": venue,
                                "_lead": "buy" if mv.direction == "up" else "sell",
                            }
                        )
            out.append(mv)
    return out


def _apply_drift(walk: list[float], mv: _Move, t0: int) -> None:
    """Multiply the base's fair price by the move: linear from 1 to 1 +- pct over the drift, then held."""
    s, e = mv.start_s - t0, mv.end_s - t0
    full = 1 + mv.sign * mv.pct / 100
    for i in range(max(s, 0), len(walk)):
        walk[i] *= full if i >= e else 1 + mv.sign * mv.pct / 100 * (i - s) / (e - s)


def _informed_whales(
    rng: random.Random, ep: _Episode, price_at: Callable[[Instrument, int], Decimal], *, mixed: bool
) -> list[_Trade]:
    """One whale per free minute of the window, all on the leading side, or (``mixed``) one opposite
    whale sized so the leading side holds INFORMED_SHARE of the rendered whale quote volume."""
    times = sorted(
        (m * 60 + rng.randrange(10, 50)) * 1_000_000 + rng.randrange(1_000_000) for m in ep.minutes
    )
    prices = [price_at(ep.inst, t) for t in times]
    lead = "buy" if ep.direction == "accumulation" else "sell"
    sides = [lead] * len(times)
    if mixed:
        sides[rng.randrange(len(sides))] = _other(lead)
    lo, hi = EPISODE_WHALE
    for _ in range(1000):
        leading = iter([Decimal(str(round(rng.uniform(155_000, 445_000), 2))) for s in sides if s == lead])
        share = Decimal(str(round(rng.uniform(0.87, 0.91), 4)))
        targets = [next(leading) if s == lead else Decimal(0) for s in sides]
        opposite = sum(targets, Decimal(0)) * (1 - share) / share
        trades = [
            _Trade(ep.inst, t, p, _qty_for(v if s == lead else opposite, p), s)
            for t, p, s, v in zip(times, prices, sides, targets, strict=True)
        ]
        volumes = [(tr.taker, _wire_quote(tr)) for tr in trades]
        sized = all(WHALE_THRESHOLD + 1000 <= v <= hi and (s != lead or v >= lo) for s, v in volumes)
        if sized and _leading_share(lead, volumes) >= (INFORMED_SHARE[0] if mixed else 1):
            return trades
    raise RuntimeError(f"could not size the informed flow on {ep.inst.key} at {_iso_s(ep.start_s)}")


def _leading_share(lead: str, volumes: list[tuple[str, Decimal]]) -> Decimal:
    return sum((v for s, v in volumes if s == lead), Decimal(0)) / sum((v for _, v in volumes), Decimal(0))


def _other(side: str) -> str:
    return "sell" if side == "buy" else "buy"


def _move_truth(mv: _Move, whale_by_trade: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The move as the truth states it; informed windows summed from the whales' rendered volumes."""
    windows = []
    for ep in mv.windows:
        rendered = sorted((whale_by_trade[id(w)] for w in ep.whales), key=lambda w: w["timestamp"])

        def volume(side: str, rendered: list[dict[str, Any]] = rendered) -> str:
            return format(
                sum((Decimal(w["quote_volume"]) for w in rendered if w["side"] == side), Decimal(0)), "f"
            )

        windows.append(
            {
                "exchange": ep.inst.exchange,
                "symbol": ep.inst.symbol,
                "window_start": _iso_s(ep.start_s),
                "window_end": _iso_s(ep.start_s + EPISODE_SECONDS),
                "whale_event_ids": [w["event_id"] for w in rendered],
                "buy_volume": volume("buy"),
                "sell_volume": volume("sell"),
            }
        )
    return {
        "base": mv.base,
        "exchange": mv.inst.exchange,
        "symbol": mv.inst.symbol,
        "instruments": [i.key for i in mv.instruments],
        "direction": mv.direction,
        "pct": mv.pct,
        "start": _iso_s(mv.start_s),
        "end": _iso_s(mv.end_s),
        "predictable": mv.predictable,
        "informed_start": _iso_s(mv.lead_in[0]),
        "informed_end": _iso_s(mv.lead_in[1]),
        "whale_event_ids": [i for w in windows for i in w["whale_event_ids"]],
        "informed_windows": windows,
        "volume_bursts": [b["window_start"] for b in mv.bursts],
    }


# -- rendering raw exchange messages (each exchange module renders its own) -----------------------------
def _render(
    rng: random.Random, trades: list[_Trade], whale_ids: set[int], insts: list[Instrument], t0: int, t1: int
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """The lines, and each whale's truth entry keyed by ``id()`` of its trade (episodes look theirs up)."""
    trades.sort(key=lambda tr: (tr.t_us, tr.inst.key))
    first_ids = {i.key: rng.randrange(10**8, 4 * 10**9) for i in insts}
    first_seqs = {i.key: rng.randrange(10**9, 9 * 10**10) for i in insts}
    counters = {i.key: SimCounters(first_ids[i.key], first_seqs[i.key]) for i in insts}
    out: list[tuple[int, dict[str, Any]]] = []
    whales: dict[int, dict[str, Any]] = {}
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
            whales[id(tr)] = {
                "exchange": tr.inst.exchange,
                "symbol": tr.inst.symbol,
                "event_id": trade_event_id(tr.inst.exchange, tr.inst.symbol, rendered.event_key),
                # Same text as the normalised event's quote_volume (product of the wire strings).
                "quote_volume": format(Decimal(rendered.price_text) * Decimal(rendered.qty_text), "f"),
                "side": tr.taker,
                "timestamp": _iso_us(rendered.ts_us),
            }
    for inst in insts:  # non-trade messages (Coinbase heartbeats): real feeds interleave them
        for received, raw in EXCHANGES[inst.exchange].idle_messages(inst.symbol, counters[inst.key], t0, t1):
            out.append(
                (received, {"exchange": inst.exchange, "received_at": _iso_us(received, ms=True), "raw": raw})
            )
    out.sort(key=lambda x: x[0])
    return [line for _, line in out], whales


# -- small helpers ------------------------------------------------------------------------------------
def _burst_target(trades: list[_Trade], inst: Instrument, start_s: int, t0: int) -> tuple[float, float]:
    """Volume the burst window needs, and what it already has (``trades``: at least ``inst``'s, in order).

    The baseline is the 60 windows before it; a detector may count the windows before the data
    starts as zeros or leave them out, so the target satisfies both readings.
    """
    windows = [0.0] * 61
    lo, hi = (start_s - 3600) * 1_000_000, (start_s + 60) * 1_000_000
    for tr in trades:
        if lo <= tr.t_us < hi and tr.inst == inst:
            windows[(tr.t_us - lo) // 60_000_000] += float(tr.price * tr.qty)
    first = max(0, (t0 - (start_s - 3600) + 59) // 60)  # first window inside the simulated data
    target = 0.0
    for history in (windows[:60], windows[first:60]):
        mean = sum(history) / len(history)
        sd = math.sqrt(sum((v - mean) ** 2 for v in history) / (len(history) - 1))
        target = max(target, mean * (1 + BURST_FACTOR), mean + BURST_Z * sd)
    return target, windows[60]


def _qty_for(target: Decimal, price: Decimal) -> Decimal:
    """The smallest quantity step at ``price`` whose notional exceeds ``target``."""
    return (target / price).quantize(QTY_STEP, rounding=ROUND_DOWN) + QTY_STEP


def _wire_quote(tr: _Trade) -> Decimal:
    """Quote volume as the normaliser will compute it: the exchange's own price and size texts."""
    sim = SimTrade(tr.inst.symbol, tr.t_us, tr.price, tr.qty, tr.taker)
    rendered = EXCHANGES[tr.inst.exchange].render(sim, 0, SimCounters(0, 0), random.Random(0))
    return Decimal(rendered.price_text) * Decimal(rendered.qty_text)


def _episode_start(epoch_s: int) -> int:
    return epoch_s - epoch_s % EPISODE_SECONDS


def fair_price_walk(rng: random.Random, p0: float, n: int) -> list[float]:
    """One base's fair price per second from ``p0`` (the chain simulator replays it for the same seed)."""
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
