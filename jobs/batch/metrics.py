"""Batch run metrics (seed §5.1 PublishSuccess / PublishFailure) for Prometheus.

A batch pod lives for one run, so nothing scrapes it: the metrics are pushed to a Pushgateway when
``batch.pushgateway_url`` is set (``pushadd``: a failure keeps the last success time), else written
to a node-exporter textfile (``batch.metrics_textfile``), carrying the last success time over.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway, write_to_textfile

from coattail.settings import Settings

NS = "coattail_batch"
JOB = "coattail-batch"
_LAST_SUCCESS = re.compile(rf'^{NS}_last_success_timestamp_seconds\{{workflow="([^"]+)"\}} (\S+)$', re.M)


def textfile_path(settings: Settings) -> Path:
    explicit = settings.batch.metrics_textfile
    return Path(explicit) if explicit else settings.state_path("metrics", "batch.prom")


def publish(
    settings: Settings,
    workflow: str,
    *,
    succeeded: bool,
    step_seconds: dict[str, float],
    step_attempts: dict[str, int],
    quality_score: float | None,
) -> str:
    """Record one run's outcome; returns where it went (the Pushgateway URL or the textfile path)."""
    reg = CollectorRegistry()
    labels = ["workflow"]
    now = time.time()
    Gauge(f"{NS}_run_success", "1 when the last run succeeded", labels, registry=reg).labels(workflow).set(
        1 if succeeded else 0
    )
    Gauge(f"{NS}_run_failure", "1 when the last run failed", labels, registry=reg).labels(workflow).set(
        0 if succeeded else 1
    )
    Gauge(f"{NS}_last_run_timestamp_seconds", "End of the last run", labels, registry=reg).labels(
        workflow
    ).set(now)
    success = Gauge(
        f"{NS}_last_success_timestamp_seconds", "End of the last successful run", labels, registry=reg
    )
    duration = Gauge(f"{NS}_step_duration_seconds", "Step wall time", ["workflow", "step"], registry=reg)
    attempts = Gauge(f"{NS}_step_attempts", "Attempts a step took", ["workflow", "step"], registry=reg)
    for step, seconds in step_seconds.items():
        duration.labels(workflow, step).set(seconds)
    for step, n in step_attempts.items():
        attempts.labels(workflow, step).set(n)
    if quality_score is not None:
        Gauge(
            f"{NS}_quality_score_pct", "Lowest quality check score of the day", labels, registry=reg
        ).labels(workflow).set(quality_score)
    url = settings.batch.pushgateway_url
    if url:
        if succeeded:
            success.labels(workflow).set(now)
        else:  # pushadd replaces only the metrics sent: leave the last success time as it was
            reg.unregister(success)
        pushadd_to_gateway(url, job=JOB, registry=reg, grouping_key={"workflow": workflow})
        return url
    path = textfile_path(settings)
    previous = _previous_success(path, workflow)
    if succeeded or previous is not None:
        success.labels(workflow).set(now if succeeded else previous or 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), reg)
    return str(path)


def _previous_success(path: Path, workflow: str) -> float | None:
    if not path.is_file():
        return None
    for name, value in _LAST_SUCCESS.findall(path.read_text()):
        if name == workflow:
            return float(value)
    return None
