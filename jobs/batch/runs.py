"""Run history: one row per workflow step in the Iceberg table ``batch_runs`` (partitioned by run date)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from coattail.settings import Settings
from jobs.batch import lake


@dataclass
class StepRecord:
    run_id: str
    workflow: str
    run_date: str
    step: str
    status: str  # succeeded | failed | skipped
    attempts: int
    started_at: datetime
    finished_at: datetime
    message: str


def record(settings: Settings, rows: list[StepRecord]) -> None:
    import pyarrow as pa

    if not rows:
        return
    table = lake.ensure_table(settings, "batch_runs")
    schema = table.schema().as_arrow()
    data = pa.Table.from_pylist([r.__dict__ for r in rows], schema=schema)
    lake.with_commit_retry(lambda: table.refresh().append(data))


def history(settings: Settings, limit: int = 50) -> list[dict[str, object]]:
    table = lake.ensure_table(settings, "batch_runs")
    rows = table.scan().to_arrow().sort_by([("started_at", "descending")]).slice(0, limit)
    out: list[dict[str, object]] = rows.to_pylist()
    return out
