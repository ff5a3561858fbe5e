#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy into .tools/cluster/bin:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok, spark-operator, promtool.
# Versions: k8s-local/cluster/versions.env (and modules/*/go.mod). A stamp keyed on those files means a
# second run only verifies the binaries answer `--version`; a cold build takes 10-25 min on 2 cores,
# which is why scripts/test.sh runs it as its own step (`scripts/setup.sh cluster`).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export ROOT
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
# shellcheck source=k8s-local/cluster/versions.env
source "$HERE/versions.env"
BIN="$ROOT/.tools/cluster/bin"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok spark-operator promtool)
export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -modcacherw"

verify() {
  local b
  for b in "${BINARIES[@]}"; do
    [ -x "$BIN/$b" ] || return 1
  done
  [ -f "$ROOT/.tools/cluster/crds/monitoring.coreos.com_prometheusrules.yaml" ] || return 1
  # Each answers with the pinned version (a build without the -X flags says v0.0.0-master).
  "$BIN/kube-apiserver" --version | grep -qx "Kubernetes $KUBERNETES_VERSION" || return 1
  "$BIN/kubectl" version --client 2>/dev/null | grep -q "Client Version: $KUBERNETES_VERSION" || return 1
  "$BIN/etcd" --version | grep -q "etcd Version: ${ETCD_VERSION#v}" || return 1
  "$BIN/promtool" --version >/dev/null 2>&1 || return 1
  "$BIN/kwok" --version >/dev/null 2>&1 || return 1
}

module_dir() { go mod download -json "$1" | json_field Dir; }

build_kubernetes() {
  # k8s.io/kubernetes sets its version through the linker (hack/lib/version.sh does the same).
  local v="$KUBERNETES_VERSION" minor
  minor="$(echo "$v" | cut -d. -f2)"
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  log "cluster: building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $v"
  (cd "$HERE/modules/kubernetes" && go build -trimpath -ldflags "$ld" -o "$BIN/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl) || die "kubernetes build failed"
}

build_etcd() {
  log "cluster: building etcd $ETCD_VERSION"
  (cd "$HERE/modules/etcd" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3) \
    || die "etcd build failed"
}

build_spark_operator() {
  # Its go.mod replaces k8s.io/* with published versions only, so its own module builds as downloaded.
  log "cluster: building spark-operator $SPARK_OPERATOR_VERSION"
  local src
  src="$(module_dir "github.com/kubeflow/spark-operator/v2@$SPARK_OPERATOR_VERSION")"
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$BIN/spark-operator" ./cmd/operator) \
    || die "spark-operator build failed"
}

build_go_installable() {
  log "cluster: go install kwok $KWOK_VERSION, promtool (prometheus $PROMETHEUS_MODULE_VERSION)"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" || die "kwok build failed"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_MODULE_VERSION" || die "promtool build failed"
}

fetch_monitoring_crds() {
  # The prometheus-operator CRDs our chart's ServiceMonitor, PodMonitors and PrometheusRule need,
  # so the API server validates those objects (the eks profile turns monitoring on).
  log "cluster: prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs"
  local src dest="$ROOT/.tools/cluster/crds"
  src="$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")"
  rm -rf "$dest"; mkdir -p "$dest"
  for kind in servicemonitors podmonitors prometheusrules; do
    cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$dest/"
  done
  chmod -R u+w "$dest"
}

main() {
  local key
  key="$(hash_files "$HERE/versions.env" "$HERE/build.sh" "$HERE"/modules/*/go.mod "$HERE"/modules/*/go.sum)"
  if stamp_ok cluster "$key" && verify; then
    log "cluster: control-plane binaries present ($BIN)"; return
  fi
  mkdir -p "$BIN"
  local start=$SECONDS
  build_kubernetes
  build_etcd
  build_spark_operator
  build_go_installable
  fetch_monitoring_crds
  verify || die "cluster: a built binary does not answer with its pinned version (see $BIN)"
  stamp_write cluster "$key"
  log "cluster: built in $((SECONDS - start)) s"
}
main "$@"
