#!/usr/bin/env bash
# Tear the k8s-local profile down: deletes the kind cluster (and with it every release and the
# backing services' data). Safe to re-run: a missing cluster is not an error.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=k8s-local/versions.env
source "$HERE/versions.env"
if ! command -v kind >/dev/null; then echo "[k8s-local] kind is not installed; nothing to do" >&2; exit 0; fi
if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
  kind delete cluster --name "$KIND_CLUSTER_NAME"
else
  echo "[k8s-local] no kind cluster $KIND_CLUSTER_NAME; nothing to do" >&2
fi
