"""checkov, offline, on the chart (every profile) and the Dockerfiles.

Skips are justified where they live: chart-wide ones in charts/.checkov.yaml, per-resource ones as
checkov.io/skip annotations in the templates. Nothing is skipped here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.charts.helpers import CHART, HELM, PROFILES, REPO, VENV_BIN, run

pytestmark = pytest.mark.charts

# No network: no Bridgecrew platform, no policy download, no version check.
OFFLINE = {
    "BC_SKIP_MAPPING": "TRUE",
    "CHECKOV_SKIP_DOWNLOAD": "TRUE",
    "CKV_NO_UPDATE_CHECK": "TRUE",
    "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
    "LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="module")
def helm_on_path(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """checkov's helm runner treats any stderr from `helm template` as failure, and helm logs one
    informational line on stderr for files/config (a symlink to config/). This wrapper drops exactly
    that line and keeps every other message and the exit status."""
    bindir = tmp_path_factory.mktemp("helm-wrapper")
    wrapper = bindir / "helm"
    wrapper.write_text(
        "#!/usr/bin/env bash\n"
        "exec 3>&1\n"
        f'"{HELM}" "$@" 2>&1 1>&3 | grep -v "found symbolic link in path: .*/files/config resolves to" >&2\n'
        'exit "${PIPESTATUS[0]}"\n'
    )
    wrapper.chmod(0o755)
    return {**os.environ, **OFFLINE, "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}


def checkov(args: list[str | Path], env: dict[str, str]) -> dict[str, Any]:
    result = run(
        [VENV_BIN / "checkov", *args, "--output", "json", "--compact", "--quiet", "--skip-download"],
        env=env,
        timeout=300,
    )
    assert result.stdout.strip(), f"checkov printed nothing (exit {result.returncode}):\n{result.stderr}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert not failed, "\n".join(f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in failed)
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    assert passed > 0, "checkov checked nothing"
    assert result.returncode == 0, result.stderr
    first: dict[str, Any] = reports[0]
    return first


@pytest.mark.parametrize("profile", list(PROFILES))
def test_checkov_helm(profile: str, helm_on_path: dict[str, str]) -> None:
    args: list[str | Path] = [
        "-d",
        REPO / "charts",
        "--framework",
        "helm",
        "--config-file",
        REPO / "charts" / ".checkov.yaml",
    ]
    for values in PROFILES[profile]:
        args += ["--var-file", CHART / values]
    report = checkov(args, helm_on_path)
    skipped = report.get("results", {}).get("skipped_checks", [])
    for check in skipped:
        assert check.get("suppress_comment"), f"{check['check_id']} skipped without a reason"


def test_checkov_dockerfiles() -> None:
    checkov(["-d", REPO / "images", "--framework", "dockerfile"], {**os.environ, **OFFLINE})
