"""The chart README's values table is generated from the `# --` comments in values.yaml (helm-docs):
it must be current, and every value must carry a comment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.charts.helpers import CHART, HELM_DOCS, run

pytestmark = pytest.mark.charts

README = CHART / "README.md"
REGENERATE = f"{HELM_DOCS.relative_to(CHART.parents[1])} -c charts/coattail -s file"


def generated_readme() -> str:
    """What helm-docs would write now (--dry-run prints it instead of writing README.md)."""
    result = run([HELM_DOCS, "--dry-run", "--chart-search-root", CHART, "--sort-values-order", "file"])
    assert result.returncode == 0, result.stderr
    return result.stdout


def values_rows(readme: str) -> dict[str, str]:
    """Key -> description of the generated values table."""
    rows = re.findall(r"^\| ([A-Za-z][\w.\[\]-]*) \| \w+ \| .*? \| (.*) \|$", readme, re.M)
    return dict(rows)


def test_readme_is_generated_from_values() -> None:
    assert README.read_text() == generated_readme(), f"charts/coattail/README.md is stale: run {REGENERATE}"


def test_every_value_is_documented() -> None:
    rows = values_rows(generated_readme())
    assert len(rows) > 100, "the values table is missing"
    undocumented = sorted(key for key, description in rows.items() if not description.strip())
    assert not undocumented, f"values without a `# --` comment in values.yaml: {undocumented}"


def test_the_check_sees_an_undocumented_value(tmp_path: Path) -> None:
    """Guard for the test above: a value without a comment shows as a row with no description."""
    text = (CHART / "values.yaml").read_text().replace("# -- Replaces the chart name in resource names\n", "")
    chart = tmp_path / "coattail"
    chart.mkdir()
    (chart / "Chart.yaml").write_text((CHART / "Chart.yaml").read_text())
    (chart / "values.yaml").write_text(text)
    result = run([HELM_DOCS, "--dry-run", "--chart-search-root", chart, "--sort-values-order", "file"])
    assert result.returncode == 0, result.stderr
    assert values_rows(result.stdout)["nameOverride"] == ""
