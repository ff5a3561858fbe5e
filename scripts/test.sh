#!/usr/bin/env bash
# The README's test command: set-up, lint, type check, then the whole pytest suite.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m unit`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
# The control plane's binaries are a step of their own: a cold build (10-25 min) starts only once
# everything else is in place, and a warm one only verifies them.
cluster_start=$SECONDS
bash scripts/setup.sh cluster
echo "[test] cluster set-up took $((SECONDS - cluster_start)) s"
export PATH="$ROOT/.tools/bin:$PATH"
export PYSPARK_PYTHON="$ROOT/.venv/bin/python" SPARK_LOCAL_IP=127.0.0.1
echo "[test] ruff"; .venv/bin/ruff check .
echo "[test] ruff format"; .venv/bin/ruff format --check .
echo "[test] mypy"; .venv/bin/mypy
echo "[test] pytest"
.venv/bin/python -m pytest "$@"
