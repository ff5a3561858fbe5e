#!/usr/bin/env bash
# The README's main job: the whole pipeline on the embedded profile.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export PATH="$ROOT/.venv/bin:$ROOT/.tools/bin:$PATH"
export PYSPARK_PYTHON="$ROOT/.venv/bin/python" SPARK_LOCAL_IP=127.0.0.1
coattail config check
coattail dev up
