"""The batch scoring step of MOD-004: every wallet's score as of one time, from one lake snapshot.

``onchain_events`` is read with Iceberg time travel at one snapshot (the current one when none is
given), so the scores come from one consistent state of the lake, over [as_of − lookback − horizon −
price age, as_of]: the trades whose returns resolved inside the lookback and the prices they need. The
same pure functions as the stream (:func:`jobs.wallet_logic.scores_as_of`) run per blockchain on the
executors. Rows are appended to ``wallet_scores`` only where (blockchain, wallet, scored_at) is new: a
rerun for the same ``as_of`` writes nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from coattail.errors import CoattailError
from coattail.settings import Settings
from jobs.batch import lake
from jobs.detectors.common import from_us
from jobs.detectors.wallets import WalletScorerDetector, chain_events, score_record, scorer_input
from jobs.sinks.iceberg import ensure_table, insert_new, qualified, rows_frame
from jobs.wallet_logic import ScoreRules, WalletScore, scores_as_of

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

log = logging.getLogger("jobs.batch")
SCORER = "MOD-004"
EVENTS_TABLE = "onchain_events"  # MOD-008's table: every clean OnchainEvent
OUTPUT_SCHEMA = "blockchain string, payload string"


class ScoringError(CoattailError, ValueError):
    """The wallet scoring cannot read what it needs; says what is missing."""


@dataclass
class ScoringReport:
    as_of: datetime
    snapshot_id: int
    start: datetime
    events_read: int
    rows_written: int  # new rows in wallet_scores (0 on a rerun)
    rows: list[dict[str, Any]] = field(default_factory=list)  # every wallet scored, as wallet_scores rows
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        chains: dict[str, int] = {}
        for row in self.rows:
            chains[row["blockchain"]] = chains.get(row["blockchain"], 0) + 1
        return {
            "as_of": self.as_of.isoformat(),
            "snapshot_id": self.snapshot_id,
            "start": self.start.isoformat(),
            "events_read": self.events_read,
            "wallets_scored": len(self.rows),
            "wallets_per_chain": chains,
            "rows_written": self.rows_written,
            "seconds": round(self.seconds, 2),
        }


def scorer(settings: Settings) -> WalletScorerDetector:
    if SCORER not in settings.modules:
        raise ScoringError(f"{SCORER} (wallet-scorer) is not in config/features.yaml `modules`")
    detector = WalletScorerDetector()
    detector.configure(settings)
    return detector


def resolve_snapshot(settings: Settings, snapshot_id: int | None) -> int:
    """The onchain_events snapshot to read: the given id (checked), else the current one."""
    table = lake.existing_table(settings, EVENTS_TABLE)
    if table is None:
        raise ScoringError(
            f"{EVENTS_TABLE} does not exist yet; run the pipeline with an on-chain module first"
        )
    if snapshot_id is not None:
        if table.snapshot_by_id(snapshot_id) is None:
            known = ", ".join(str(s.snapshot_id) for s in table.snapshots()[-5:]) or "none"
            raise ScoringError(f"{EVENTS_TABLE} has no snapshot {snapshot_id}; latest snapshots: {known}")
        return snapshot_id
    current = table.current_snapshot()
    if current is None:
        raise ScoringError(f"{EVENTS_TABLE} is empty; nothing to score yet")
    return int(current.snapshot_id)


def read_window(rules: ScoreRules, as_of: datetime) -> datetime:
    """The earliest event a score as of ``as_of`` needs: a return resolved just inside the lookback
    came from a trade one horizon earlier, whose price may be one price age older."""
    return as_of - timedelta(milliseconds=rules.lookback_ms + rules.horizon_ms + rules.price_max_age_ms)


def score_wallets(
    spark: SparkSession, settings: Settings, as_of: datetime, snapshot_id: int | None = None
) -> ScoringReport:
    """Score every wallet as of ``as_of`` (milliseconds; naive = UTC) from one onchain_events snapshot,
    append the new rows to wallet_scores and return them all."""
    from pyspark.sql import functions as F

    started = time.monotonic()
    as_of = _ms(as_of)
    detector = scorer(settings)
    rules = detector.rules
    sid = resolve_snapshot(settings, snapshot_id)
    start = read_window(rules, as_of)
    events = (
        spark.read.option("versionAsOf", str(sid))
        .table(qualified(settings, EVENTS_TABLE))
        .where((F.col("block_timestamp") >= F.lit(start)) & (F.col("block_timestamp") <= F.lit(as_of)))
        .dropDuplicates(["event_id"])
    )
    selected = scorer_input(events, rules).persist()
    try:
        read = selected.count()
        as_of_ms = int(as_of.timestamp() * 1000)
        scored = selected.groupBy("blockchain").applyInPandas(_as_of_fn(rules, as_of_ms), OUTPUT_SCHEMA)
        rows = [score_record(r["blockchain"], json.loads(r["payload"])) for r in scored.collect()]
    finally:
        selected.unpersist()
    rows.sort(key=lambda r: (r["blockchain"], -r["alpha"], r["wallet"]))
    written = _append_new(spark, settings, detector, rows, as_of)
    log.info("scored %d wallets as of %s at snapshot %d: %d new rows", len(rows), as_of, sid, written)
    return ScoringReport(as_of, sid, start, read, written, rows, time.monotonic() - started)


def _ms(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return from_us(int(aware.timestamp() * 1000) * 1000)


def _payload(s: WalletScore, as_of_ms: int) -> str:
    sc = s.score
    return json.dumps(
        {
            "wallet": s.wallet, "at": as_of_ms, "n": sc.trade_count, "win": sc.win_rate,
            "avg": sc.avg_return, "dd": sc.max_drawdown, "alpha": sc.alpha, "pct": s.alpha_percentile,
        }
    )  # fmt: skip


def _as_of_fn(rules: ScoreRules, as_of_ms: int) -> Any:
    def run(key: tuple[Any, ...], pdf: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        found = scores_as_of(chain_events(pdf), as_of_ms, rules)
        return pd.DataFrame(
            [(key[0], _payload(s, as_of_ms)) for s in found], columns=["blockchain", "payload"]
        )

    return run


def _append_new(
    spark: SparkSession,
    settings: Settings,
    detector: WalletScorerDetector,
    rows: list[dict[str, Any]],
    as_of: datetime,
) -> int:
    """Insert the rows whose (blockchain, wallet, scored_at) is not in wallet_scores yet; how many."""
    from pyspark.sql import functions as F

    columns = detector.table_columns()
    table = qualified(settings, detector.output_table())
    ensure_table(spark, settings, detector.output_table(), columns, detector.partitioning())
    spark.sql(f"REFRESH TABLE {table}")
    present = {
        (r["blockchain"], r["wallet"])
        for r in spark.table(table)
        .where(F.col("scored_at") == F.lit(as_of))
        .select("blockchain", "wallet")
        .collect()
    }
    new = [r for r in rows if (r["blockchain"], r["wallet"]) not in present]
    if new:  # MERGE on the record keys: a concurrent rerun still inserts each row once
        insert_new(rows_frame(spark, new, columns), table, detector.record_keys())
    return len(new)


def latest_scores(spark: SparkSession, settings: Settings) -> list[dict[str, Any]]:
    """Each wallet's newest wallet_scores row (none when the table does not exist yet)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    detector = scorer(settings)
    if lake.existing_table(settings, detector.output_table()) is None:
        return []
    table = qualified(settings, detector.output_table())
    spark.sql(f"REFRESH TABLE {table}")
    newest = Window.partitionBy("blockchain", "wallet").orderBy(F.col("scored_at").desc())
    frame = (
        spark.table(table)
        .withColumn("_n", F.row_number().over(newest))
        .where(F.col("_n") == 1)
        .drop("_n")
        .withColumn("scored_at", F.unix_micros("scored_at"))  # exact UTC, not a naive local datetime
    )
    rows = [r.asDict() for r in frame.collect()]
    for row in rows:
        row["scored_at"] = from_us(row["scored_at"])
    return sorted(rows, key=lambda r: (r["blockchain"], -r["alpha"], r["wallet"]))


def top_wallets(
    rows: Iterable[Mapping[str, Any]], min_percentile: float, max_wallets: int
) -> list[dict[str, Any]]:
    """The wallet_scores rows that qualify as smart money: each wallet's newest row, at or above
    ``min_percentile``, at most ``max_wallets`` per chain by alpha (highest first)."""
    newest: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in rows:
        key = (row["blockchain"], row["wallet"])
        if key not in newest or row["scored_at"] > newest[key]["scored_at"]:
            newest[key] = row
    chosen: list[dict[str, Any]] = []
    per_chain: dict[str, int] = {}
    for row in sorted(newest.values(), key=lambda r: (r["blockchain"], -r["alpha"], r["wallet"])):
        if row["alpha_percentile"] < min_percentile or per_chain.get(row["blockchain"], 0) >= max_wallets:
            continue
        per_chain[row["blockchain"]] = per_chain.get(row["blockchain"], 0) + 1
        chosen.append(dict(row))
    return chosen
