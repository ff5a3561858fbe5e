"""Historical loader (seed §5.2): Binance REST aggTrades -> ``raw_trades`` (Iceberg) + the raw zone.

The reads go through the Binance module's own REST client (``connectors.binance.BinanceRest``): the
same rate-limit rules as the live gap fill (request weights per minute, 429 ``Retry-After``, 418 stops).

Per symbol and [start, end): find the first aggregate id at ``start``, then page with
``fromId = last.a + 1`` until a trade at/after ``end``. Rows are normalised by the connectors' own
``BinanceNormalizer`` (same event ids as the live stream, so overlaps deduplicate) and flushed every
``flush_rows``: anti-join on ``event_id`` against what the table already holds for that time span,
raw-zone Parquet of the new rows, then one Iceberg append that also records the last id loaded.
Loading the same range twice therefore adds nothing, and an interrupted run resumes after the last
committed id.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coattail.settings import Settings
from connectors.binance import EXCHANGE, PAGE_LIMIT, SPEC, BinanceNormalizer, BinanceRest, BinanceSymbols
from connectors.rest import RestError
from connectors.trade import NormalizeError, Trade, now_iso
from jobs.batch import lake, rawzone
from jobs.batch.progress import PROPERTY_PREFIX, ProgressFile, RangeProgress, lake_last_id, range_key
from jobs.batch.reporting import Reporter

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

log = logging.getLogger("jobs.batch")


@dataclass
class BackfillResult:
    symbol: str
    fetched: int = 0  # rows read from the API in this run
    added: int = 0  # rows new to raw_trades
    dead_lettered: int = 0
    requests: int = 0
    throttled: int = 0
    resumed_after: int | None = None
    skipped: bool = False  # range already complete
    done: bool = False
    raw_files: list[str] = field(default_factory=list)


def to_ms(value: datetime) -> int:
    return int(value.astimezone(UTC).timestamp() * 1000)


def progress_file(settings: Settings) -> ProgressFile:
    return ProgressFile(settings.state_path("batch", "backfill-progress.json"))


class _Flusher:
    """Buffers normalised trades and writes each batch once: raw zone, then one Iceberg commit."""

    def __init__(self, settings: Settings, trades: Table, dead: Table, key: str) -> None:
        self.settings = settings
        self.trades = trades
        self.dead = dead
        self.key = key
        self.buffer: list[Trade] = []
        self.bad: list[tuple[str, str, str]] = []  # (reason, raw, source_pos)
        self.late_after_ms = settings.quality.late_after_seconds * 1000

    def flush(self, result: BackfillResult, progress: RangeProgress, last_id: int, last_ms: int) -> None:
        if self.buffer:
            table = self._arrow(self.buffer)
            new = self._only_new(table)
            first = int(self.buffer[0].trade_id.removeprefix("agg:"))
            result.raw_files += rawzone.write(self.settings, new, EXCHANGE, first, last_id)
            props = {PROPERTY_PREFIX + self.key: str(last_id)}
            if new.num_rows:
                lake.with_commit_retry(lambda: self.trades.refresh().append(new, snapshot_properties=props))
            result.added += new.num_rows
            progress.rows += new.num_rows
        if self.bad:
            self._dead_letters()
            result.dead_lettered += len(self.bad)
        progress.last_id, progress.last_ms = last_id, last_ms
        self.buffer, self.bad = [], []

    def _arrow(self, trades: list[Trade]) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        schema = self.trades.schema().as_arrow()
        ts = pc.cast(pa.array([t.timestamp for t in trades]), pa.timestamp("us", tz="UTC"))
        ingested = pc.cast(pa.array([t.ingestion_timestamp for t in trades]), pa.timestamp("us", tz="UTC"))
        lag_us = pc.subtract(pc.cast(ingested, pa.int64()), pc.cast(ts, pa.int64()))
        columns: dict[str, Any] = {
            "event_id": [t.event_id for t in trades],
            "exchange": [t.exchange for t in trades],
            "symbol": [t.symbol for t in trades],
            "price": [t.price for t in trades],
            "quantity": [t.quantity for t in trades],
            "quote_volume": [t.quote_volume for t in trades],
            "side": [t.side for t in trades],
            "timestamp": ts,
            "ingestion_timestamp": ingested,
            # Same warning flags the stream path sets: late by the configured bound; exact product.
            "dq_late": pc.greater(lag_us, self.late_after_ms * 1000),
            "dq_inconsistent": [False] * len(trades),
        }
        arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)

    def _only_new(self, batch: pa.Table) -> pa.Table:
        """Rows whose event_id the table does not hold yet (scan pruned to this symbol and time span)."""
        import pyarrow.compute as pc
        from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThanOrEqual

        lo, hi = pc.min_max(batch["timestamp"]).values()
        symbol = batch["symbol"][0].as_py()
        row_filter = And(
            EqualTo("symbol", symbol),
            And(
                GreaterThanOrEqual("timestamp", lo.as_py().isoformat()),
                LessThanOrEqual("timestamp", hi.as_py().isoformat()),
            ),
        )
        self.trades.refresh()
        known = self.trades.scan(row_filter=row_filter, selected_fields=("event_id",)).to_arrow()["event_id"]
        if len(known) == 0:
            return batch
        return batch.filter(pc.invert(pc.is_in(batch["event_id"], value_set=known.combine_chunks())))

    def _dead_letters(self) -> None:
        import pyarrow as pa

        schema = self.dead.schema().as_arrow()
        now = datetime.now(UTC)
        data = {
            "reason": [b[0] for b in self.bad],
            "raw": [b[1] for b in self.bad],
            "source_pos": [b[2] for b in self.bad],
            "received_at": [now] * len(self.bad),
        }
        table = pa.Table.from_arrays([pa.array(data[f.name], type=f.type) for f in schema], schema=schema)
        lake.with_commit_retry(lambda: self.dead.refresh().append(table))


def backfill_symbol(
    settings: Settings,
    client: BinanceRest,
    symbol: str,
    start: datetime,
    end: datetime,
    *,
    reporter: Reporter,
    flush_rows: int = 10_000,
    progress: ProgressFile | None = None,
) -> BackfillResult:
    """Load one symbol's [start, end) into raw_trades; resumable and idempotent."""
    import orjson

    start_ms, end_ms = to_ms(start), to_ms(end)
    key = range_key(EXCHANGE, symbol, start_ms, end_ms)
    progress = progress or progress_file(settings)
    state = progress.get(key)
    result = BackfillResult(symbol)
    name = f"{EXCHANGE} {symbol}"
    if state.done:
        result.skipped = result.done = True
        log.info("%s: range already loaded (%s); nothing to do", name, progress.path)
        return result
    cat = lake.catalog(settings)
    trades = lake.ensure_table(settings, "raw_trades", cat)
    dead = lake.ensure_table(settings, "dead_letters", cat)
    durable = lake_last_id(trades, key)
    if durable is not None and (state.last_id is None or durable > state.last_id):
        state.last_id = durable  # the state file was lost or is behind: the lake knows better
    native = BinanceSymbols.native(symbol).upper()
    normalizer = BinanceNormalizer(BinanceSymbols([symbol]))
    requests_before, throttled_before = client.requests, client.throttled
    if state.last_id is not None:
        result.resumed_after = state.last_id
        next_id: int | None = state.last_id + 1
    else:
        next_id = client.first_id_at_or_after(native, start_ms, end_ms)
    flusher = _Flusher(settings, trades, dead, key)
    reporter.start(name, end_ms - start_ms, (state.last_ms or start_ms) - start_ms)
    last_id, last_ms = state.last_id or -1, state.last_ms or start_ms
    try:
        while next_id is not None:
            rows = client.page(native, next_id)
            received = now_iso()
            reached_end = False
            for row in rows:
                agg_id, trade_ms = row.get("a"), row.get("T")
                if isinstance(trade_ms, int) and trade_ms >= end_ms:
                    reached_end = True
                    break
                result.fetched += 1
                try:
                    flusher.buffer.append(normalizer.rest_agg_trade(row, symbol, received))
                except NormalizeError as exc:
                    raw = orjson.dumps(row).decode()
                    flusher.bad.append((f"invalid: {exc}", raw, f"{EXCHANGE}-rest/{native}/{agg_id}"))
                if isinstance(agg_id, int):
                    last_id = agg_id
                if isinstance(trade_ms, int):
                    last_ms = trade_ms
            if reached_end or len(rows) < PAGE_LIMIT:
                # A short page is the present: the range is complete unless it ends in the future.
                state.done = reached_end or end_ms <= int(time.time() * 1000)
                next_id = None
            else:
                next_id = last_id + 1
            if len(flusher.buffer) + len(flusher.bad) >= flush_rows or next_id is None:
                flusher.flush(result, state, last_id, last_ms)
                progress.save(key, state)
            reporter.update(name, last_ms - start_ms, end_ms - start_ms, result.fetched)
    except (RestError, KeyboardInterrupt):
        # Keep what was read: it is valid, and the resume starts right after it.
        if flusher.buffer or flusher.bad:
            flusher.flush(result, state, last_id, last_ms)
            progress.save(key, state)
        raise
    finally:
        result.requests = client.requests - requests_before
        result.throttled = client.throttled - throttled_before
    if state.last_id is None:
        state.done = True  # no trade at all in the range
        progress.save(key, state)
    result.done = state.done
    reporter.finish(name, result.added)
    return result


def backfill(
    settings: Settings,
    symbols: list[str],
    start: datetime,
    end: datetime,
    *,
    flush_rows: int = 10_000,
    interactive: bool | None = None,
    client: BinanceRest | None = None,
    progress_path: Path | None = None,
) -> list[BackfillResult]:
    if end <= start:
        raise ValueError(f"--end ({end.isoformat()}) must be after --start ({start.isoformat()})")
    unknown = sorted(set(symbols) - set(settings.instruments.get(EXCHANGE, [])))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not configured for {EXCHANGE} (instruments.{EXCHANGE})")
    own = client is None
    # The backfill's own weight budget (batch.request_weight_budget), not the live connector's.
    client = client or BinanceRest(
        SPEC.settings_of(settings.connectors[EXCHANGE]).rest_url,
        weight_budget=settings.batch.request_weight_budget,
    )
    progress = ProgressFile(progress_path) if progress_path else None
    try:
        with Reporter(interactive=interactive) as reporter:
            return [
                backfill_symbol(
                    settings,
                    client,
                    s,
                    start,
                    end,
                    reporter=reporter,
                    flush_rows=flush_rows,
                    progress=progress,
                )
                for s in symbols
            ]
    finally:
        if own:
            client.close()
