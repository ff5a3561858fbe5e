"""Table-level quality checks over one day of the lake (seed §5.1 RunQualityChecks).

Completeness per instrument and hour, duplicate event ids, out-of-range values, freshness and the
dead-letter ratio, each scored in percent. The day passes when every scored check reaches
``batch.quality_pass_pct`` and the dead-letter ratio stays under ``batch.max_dead_letter_pct``.
Reads through pyiceberg (a day of trades is a column scan, no Spark needed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from coattail.settings import Settings
from jobs.batch import lake

if TYPE_CHECKING:
    import pyarrow as pa

COLUMNS = ("event_id", "exchange", "symbol", "price", "quantity", "quote_volume", "side", "timestamp")


@dataclass
class Check:
    name: str
    passed: bool
    score_pct: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class QualityReport:
    date: str
    passed: bool
    score_pct: float  # the lowest check score: one bad dimension is enough to fail the day
    threshold_pct: float
    rows: int
    checks: list[Check]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def failures(self) -> list[str]:
        return [f"{c.name} {c.score_pct:.2f}%" for c in self.checks if not c.passed]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), UTC)
    return start, start + timedelta(days=1)


def expected_instruments(settings: Settings) -> list[tuple[str, str]]:
    return sorted(
        (exchange, symbol)
        for exchange in settings.active_connectors
        for symbol in settings.instruments.get(exchange, [])
    )


def _scan(
    settings: Settings, table: str, column: str, start: datetime, end: datetime, cols: tuple[str, ...]
) -> pa.Table:
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    tbl = lake.existing_table(settings, table)
    if tbl is None:  # nothing written yet: an empty day (and no table created by a read)
        return _plain_strings(
            lake.schema_of(lake.table_definition(table)[0]).as_arrow().empty_table().select(list(cols))
        )
    row_filter = And(GreaterThanOrEqual(column, start.isoformat()), LessThan(column, end.isoformat()))
    return _plain_strings(tbl.scan(row_filter=row_filter, selected_fields=cols).to_arrow())


def _plain_strings(table: pa.Table) -> pa.Table:
    """large_string -> string, so compute kernels can mix columns and literals."""
    import pyarrow as pa

    fields = [pa.field(f.name, pa.string()) if f.type == pa.large_string() else f for f in table.schema]
    return table.cast(pa.schema(fields))


def completeness(settings: Settings, trades: pa.Table, start: datetime, now: datetime) -> Check:
    import pyarrow.compute as pc

    hours = max(min(int((now - start).total_seconds() // 3600), 24), 1)
    expected = expected_instruments(settings)
    hour = pc.cast(pc.hour(trades["timestamp"]), "string")
    keys = pc.binary_join_element_wise(trades["exchange"], trades["symbol"], hour, ":")
    seen = set(pc.unique(keys).to_pylist()) if trades.num_rows else set()
    missing = {
        f"{ex}:{sym}": [h for h in range(hours) if f"{ex}:{sym}:{h}" not in seen] for ex, sym in expected
    }
    missing = {k: v for k, v in missing.items() if v}
    total = len(expected) * hours
    gaps = sum(len(v) for v in missing.values())
    score = 100.0 * (total - gaps) / total if total else 100.0
    return Check("completeness", True, score, {"instrument_hours": total, "missing": missing})


def duplicates(trades: pa.Table) -> Check:
    import pyarrow.compute as pc

    total = trades.num_rows
    distinct = pc.count_distinct(trades["event_id"]).as_py() if total else 0
    dup = total - distinct
    return Check("duplicates", True, 100.0 * (1 - dup / total) if total else 100.0, {"duplicate_rows": dup})


def ranges(settings: Settings, trades: pa.Table) -> Check:
    import pyarrow as pa
    import pyarrow.compute as pc

    total = trades.num_rows
    if not total:
        return Check("ranges", True, 100.0, {"invalid_rows": 0})
    q = settings.quality
    price, qty = pc.cast(trades["price"], "float64"), pc.cast(trades["quantity"], "float64")
    quote = pc.cast(trades["quote_volume"], "float64")
    expected_quote = pc.multiply(price, qty)
    tolerance = pc.multiply(pc.abs(expected_quote), q.consistency_tolerance_pct / 100)
    known = [f"{ex}:{s}" for ex, s in expected_instruments(settings)]
    instrument = pc.binary_join_element_wise(trades["exchange"], trades["symbol"], ":")
    rules = {
        "null_field": pc.or_(
            pc.or_(pc.is_null(trades["event_id"]), pc.is_null(trades["symbol"])),
            pc.or_(pc.is_null(price), pc.is_null(qty)),
        ),
        "price": pc.less_equal(price, q.price_min_exclusive),
        "quantity": pc.less_equal(qty, q.quantity_min_exclusive),
        "side": pc.invert(pc.is_in(trades["side"], value_set=pa.array(["buy", "sell"]))),
        "quote_volume": pc.greater(pc.abs(pc.subtract(quote, expected_quote)), tolerance),
        "instrument": pc.invert(pc.is_in(instrument, value_set=pa.array(known or [""]))),
    }
    counts = {name: int(pc.sum(pc.fill_null(mask, True)).as_py() or 0) for name, mask in rules.items()}
    bad = rules["null_field"]
    for mask in rules.values():
        bad = pc.or_(bad, mask)
    invalid = int(pc.sum(pc.fill_null(bad, True)).as_py() or 0)
    return Check(
        "ranges", True, 100.0 * (total - invalid) / total, {"invalid_rows": invalid, "by_rule": counts}
    )


def freshness(settings: Settings, trades: pa.Table, end: datetime, now: datetime) -> Check:
    import pyarrow.compute as pc

    limit = timedelta(minutes=settings.batch.freshness_minutes)
    reference = min(end, now)
    newest = pc.max(trades["timestamp"]).as_py() if trades.num_rows else None
    lag = (reference - newest).total_seconds() if newest is not None else None
    ok = lag is not None and lag <= limit.total_seconds()
    newest_text = newest.isoformat() if newest is not None else None
    return Check("freshness", ok, 100.0 if ok else 0.0, {"newest": newest_text, "lag_seconds": lag})


def dead_letter_ratio(settings: Settings, trades: int, start: datetime, end: datetime) -> Check:
    dead = _scan(settings, "dead_letters", "received_at", start, end, ("reason",)).num_rows
    ratio = 100.0 * dead / (trades + dead) if trades + dead else 0.0
    ok = ratio <= settings.batch.max_dead_letter_pct
    return Check("dead_letters", ok, 100.0 - ratio, {"dead_letters": dead, "ratio_pct": ratio})


def check_day(settings: Settings, day: date, *, now: datetime | None = None) -> QualityReport:
    now = now or datetime.now(UTC)
    start, end = day_bounds(day)
    trades = _scan(settings, "raw_trades", "timestamp", start, end, COLUMNS)
    threshold = settings.batch.quality_pass_pct
    checks = [
        completeness(settings, trades, start, now),
        duplicates(trades),
        ranges(settings, trades),
        freshness(settings, trades, end, now),
        dead_letter_ratio(settings, trades.num_rows, start, end),
    ]
    for c in checks:
        if c.name not in ("freshness", "dead_letters"):  # those two carry their own limit
            c.passed = c.score_pct >= threshold
    score = min(c.score_pct for c in checks)
    return QualityReport(
        day.isoformat(), all(c.passed for c in checks), score, threshold, trades.num_rows, checks
    )
