"""Every metric name our components export, read from their own prometheus-client registries."""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

from prometheus_client import CollectorRegistry

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def _names(registry: CollectorRegistry) -> set[str]:
    out: set[str] = set()
    for family in registry.collect():
        out |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return out


@functools.cache
def exported() -> frozenset[str]:
    from api.telemetry import Telemetry
    from coattail.settings import load_settings
    from connectors.metrics import Metrics
    from jobs import metrics as pipeline
    from jobs.batch import metrics as batch

    names = (
        _names(pipeline.REGISTRY)
        | _names(Metrics(CollectorRegistry()).registry)
        | _names(Telemetry().registry)
    )
    # The batch run builds its registry per run and writes it out: read back what it wrote.
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings("small", env={"COATTAIL_STATE_DIR": tmp})
        out = batch.publish(
            settings,
            "daily",
            succeeded=True,
            step_seconds={"reprocess": 1.0},
            step_attempts={"reprocess": 1},
            quality_score=99.0,
        )
        names |= set(re.findall(r"^# TYPE (\S+) ", Path(out).read_text(), re.M))
    return frozenset(names)
