"""Monitoring that is tested, not only rendered: every PrometheusRule of the chart passes
`promtool check rules` and its unit tests (synthetic series for each seed §8.2 alarm: it fires after
its `for`, healthy series never do); every Grafana panel's query parses; every metric a rule or a
panel names is one our code exports (drift)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from coattail.devservices.cluster import bin_dir
from tests.charts.helpers import SEED_ALARMS, find, render
from tests.monitoring.exported import exported
from tests.monitoring.promql import metric_names

pytestmark = pytest.mark.charts

HERE = Path(__file__).resolve().parent
PROMTOOL = bin_dir() / "promtool"
# Profiles with monitoring on: eks turns it on, all-features switches on every optional template.
PROFILES = ("eks", "all-features")
SEED_WIDGETS = (
    "Input rate",
    "Consumer lag",
    "Hot-store writes",
    "Alerts by type and module",
    "Quality score",
    "Batch runs",
)


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL.is_file():
        pytest.fail(f"no promtool at {PROMTOOL}: run `bash scripts/setup.sh cluster`")
    return subprocess.run(
        [str(PROMTOOL), *map(str, args)], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def rule_groups(profile: str) -> list[dict[str, Any]]:
    docs = find(render(profile), "PrometheusRule")
    assert len(docs) == 1
    return list(docs[0]["spec"]["groups"])


def dashboard(profile: str) -> dict[str, Any]:
    maps = [d for d in find(render(profile), "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert len(maps) == 1
    assert maps[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    return dict(json.loads(maps[0]["data"]["coattail.json"]))


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    # Grafana fills $namespace in; promtool needs a concrete matcher.
    return [
        (p["title"], t["expr"].replace("$namespace", "coattail"))
        for p in board["panels"]
        for t in p["targets"]
    ]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_rule_passes_promtool_check(profile: str, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    groups = rule_groups(profile)
    rules.write_text(yaml.safe_dump({"groups": groups}))
    done = promtool("check", "rules", rules)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {r["alert"] for g in groups for r in g["rules"]} == SEED_ALARMS


def test_each_alarm_fires_on_its_synthetic_series_and_not_on_healthy_ones(tmp_path: Path) -> None:
    # The unit tests (rules_test.yaml) are written against the default thresholds and namespace "coattail".
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups("eks")}))
    (tmp_path / "rules_test.yaml").write_text((HERE / "rules_test.yaml").read_text())
    done = promtool("test", "rules", "rules_test.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = {a["alertname"] for t in _unit_tests() for a in t["alert_rule_test"] if a["exp_alerts"]}
    assert tested == SEED_ALARMS, "every alarm has a case where it fires"


def test_a_rule_unit_test_fails_when_an_alarm_would_not_fire(tmp_path: Path) -> None:
    # The check above is only worth something if promtool reports a missing alert.
    groups = rule_groups("eks")
    for group in groups:
        for rule in group["rules"]:
            if rule["alert"] == "CoattailQualityScoreLow":
                rule["expr"] = rule["expr"].replace("< 95", "< 50")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "rules_test.yaml").write_text((HERE / "rules_test.yaml").read_text())
    done = promtool("test", "rules", "rules_test.yaml", cwd=tmp_path)
    assert done.returncode != 0
    assert "CoattailQualityScoreLow" in done.stdout + done.stderr


def _unit_tests() -> list[dict[str, Any]]:
    return list(yaml.safe_load((HERE / "rules_test.yaml").read_text())["tests"])


@pytest.mark.parametrize("profile", PROFILES)
def test_the_dashboard_has_the_seed_widgets_and_every_query_parses(profile: str, tmp_path: Path) -> None:
    board = dashboard(profile)
    titles = [p["title"] for p in board["panels"]]
    for widget in SEED_WIDGETS:
        assert any(t.startswith(widget) for t in titles), f"no {widget!r} panel in {titles}"
    for i, (title, expr) in enumerate(panel_queries(board)):
        # promtool parses PromQL when it checks a rule file: each query becomes a recording rule.
        path = tmp_path / f"panel{i}.yaml"
        path.write_text(
            yaml.safe_dump(
                {"groups": [{"name": "panels", "rules": [{"record": "panel:query", "expr": expr}]}]}
            )
        )
        done = promtool("check", "rules", path)
        assert done.returncode == 0, f"panel {title!r}: {expr}\n{done.stdout}{done.stderr}"


def test_every_metric_a_rule_or_panel_names_is_exported_by_our_code() -> None:
    names = exported()
    used: dict[str, set[str]] = {}
    for group in rule_groups("all-features"):
        for rule in group["rules"]:
            used[f"rule {rule['alert']}"] = metric_names(rule["expr"])
    for title, expr in panel_queries(dashboard("all-features")):
        used.setdefault(f"panel {title}", set()).update(metric_names(expr))
    unknown = {where: sorted(n - names) for where, n in used.items() if n - names}
    assert not unknown, f"metrics nobody exports: {unknown}"
    assert all(used.values()), "every rule and panel reads at least one metric"


def test_the_drift_check_finds_an_unknown_metric() -> None:
    expr = (
        'sum by (exchange) (rate(coattail_producer_trades_produced_total{namespace="x"}[5m])) / 1e-9'
        " / coattail_made_up_total"
    )
    found = metric_names(expr)
    assert found == {"coattail_producer_trades_produced_total", "coattail_made_up_total"}
    assert found - exported() == {"coattail_made_up_total"}
    assert metric_names(
        "time() - max by (workflow) (coattail_batch_last_success_timestamp_seconds) > 93600"
    ) == {"coattail_batch_last_success_timestamp_seconds"}
