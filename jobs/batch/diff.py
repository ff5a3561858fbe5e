"""Alert-set comparison of a reprocessing run against ``anomaly_alerts`` (pure, over plain rows)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# ttl_epoch follows detected_at; comparing it again would only double-count a moved alert.
COMPARED = ("alert_type", "module_id", "symbol", "exchange", "severity", "detected_at", "message", "details")


@dataclass
class TypeDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class AlertDiff:
    by_type: dict[str, TypeDiff] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not any(d.added or d.removed or d.changed for d in self.by_type.values())

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            t: {
                "added": len(d.added),
                "removed": len(d.removed),
                "changed": len(d.changed),
                "unchanged": d.unchanged,
            }
            for t, d in sorted(self.by_type.items())
        }

    def render(self) -> str:
        if not self.by_type:
            return "no alerts on either side"
        lines = [f"{'alert_type':<24}{'added':>8}{'removed':>9}{'changed':>9}{'unchanged':>11}"]
        for alert_type, c in self.counts().items():
            lines.append(
                f"{alert_type:<24}{c['added']:>8}{c['removed']:>9}{c['changed']:>9}{c['unchanged']:>11}"
            )
        return "\n".join(lines)


def _canonical(row: dict[str, Any]) -> tuple[Any, ...]:
    out = []
    for key in COMPARED:
        value = row.get(key)
        if key == "details" and isinstance(value, str):
            value = json.loads(value) if value else {}
        if key == "details":
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out.append(value)
    return tuple(out)


def diff_alerts(current: Iterable[dict[str, Any]], reprocessed: Iterable[dict[str, Any]]) -> AlertDiff:
    """What replacing ``current`` by ``reprocessed`` would do, per alert type (keyed by alert_id)."""
    old = {r["alert_id"]: r for r in current}
    new = {r["alert_id"]: r for r in reprocessed}
    result = AlertDiff()

    def bucket(row: dict[str, Any]) -> TypeDiff:
        return result.by_type.setdefault(str(row["alert_type"]), TypeDiff())

    for alert_id, row in new.items():
        if alert_id not in old:
            bucket(row).added.append(alert_id)
        elif _canonical(old[alert_id]) != _canonical(row):
            bucket(row).changed.append(alert_id)
        else:
            bucket(row).unchanged += 1
    for alert_id, row in old.items():
        if alert_id not in new:
            bucket(row).removed.append(alert_id)
    for d in result.by_type.values():
        d.added.sort()
        d.removed.sort()
        d.changed.sort()
    return result
