"""infra/ through the real tools: `tofu fmt` (terraform-compatible formatting) and checkov, offline."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.infra.conftest import INFRA

pytestmark = pytest.mark.infra

REPO = INFRA.parent
TOFU = REPO / ".tools" / "bin" / "tofu"
CHECKOV = REPO / ".venv" / "bin" / "checkov"
ALL_FEATURES = Path(__file__).parent / "fixtures" / "all-features.tfvars"
FMT_TARGETS = (str(INFRA), str(ALL_FEATURES.parent))


def _tofu_env() -> dict[str, str]:
    env = dict(os.environ)
    # A TF_CLI_CONFIG_FILE pointing at a missing file only adds warnings; fmt needs no CLI config.
    if not Path(env.get("TF_CLI_CONFIG_FILE", "/")).is_file():
        env.pop("TF_CLI_CONFIG_FILE", None)
    return env


def _checkov_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_API", "PRISMA_"))}
    env.update(
        BC_SKIP_MAPPING="TRUE",  # no policy-metadata download from the platform
        CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false",  # no package scan, which calls out
        CKV_SKIP_PACKAGE_UPDATE_CHECK="true",  # no PyPI version check at start-up
        CKV_PARSE_ERROR_FAIL="true",  # a file checkov cannot parse fails instead of passing unseen
    )
    return env


def test_terraform_files_are_formatted() -> None:
    if not TOFU.is_file():
        pytest.fail("`.tools/bin/tofu` is absent: run `scripts/setup.sh extras` to build OpenTofu")
    result = subprocess.run(
        [str(TOFU), "fmt", "-check", "-recursive", "-diff", "-no-color", *FMT_TARGETS],
        capture_output=True,
        text=True,
        timeout=120,
        env=_tofu_env(),
        check=False,
    )
    assert result.returncode == 0, (
        f"run `.tools/bin/tofu fmt -recursive infra tests/infra/fixtures`:\n{result.stdout}{result.stderr}"
    )


@pytest.mark.parametrize("var_file", [None, ALL_FEATURES], ids=["defaults", "all-features"])
def test_checkov_passes_offline(var_file: Path | None) -> None:
    args = [
        str(CHECKOV),
        "-d",
        str(INFRA),
        "--framework",
        "terraform",
        "--quiet",
        "--compact",
        "--skip-download",
    ]
    if var_file:
        args += ["--var-file", str(var_file)]
    started = time.monotonic()
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=600, env=_checkov_env(), cwd=REPO, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"checkov found problems:\n{output}"
    assert "Failed checks: 0" in output, output
    assert time.monotonic() - started < 300, "checkov took too long; is it trying to reach the network?"
