#!/usr/bin/env bash
# Idempotent, cached set-up for everything the project needs, from the package registries only:
#   python  .venv with the pinned Python dependencies (pip)
#   jvm     Kafka broker, DynamoDB Local and Spark extras (mvn dependency:copy-dependencies)
#   tools   helm, helm-unittest, kubeconform, actionlint, helm-docs (go install into .tools/bin)
#   crds    SparkApplication CRD + JSON schema from the kubeflow spark-operator Go module
#   cluster (only when named) the local control plane's binaries: k8s-local/cluster/build.sh builds
#           etcd, Kubernetes, kwok, the spark-operator and promtool from the Go module proxy (10-25 min
#           cold), so scripts/test.sh runs it as a step of its own after the rest
# plus any extra steps in scripts/setup.d/*.sh. Each step keeps a stamp keyed on its inputs, so a
# second run only verifies. Usage: scripts/setup.sh [step ...]   (default: all steps)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

PYTHON_BIN="${PYTHON_BIN:-$(command -v python3.11 || command -v python3.12 || command -v python3)}"
HELM_VERSION=v3.22.0
HELM_UNITTEST_VERSION=v1.1.2
KUBECONFORM_VERSION=v0.7.0
ACTIONLINT_VERSION=v1.7.12
HELM_DOCS_VERSION=v1.14.2
SPARK_OPERATOR_VERSION=v2.4.0

step_python() {
  local key
  key="$(hash_files pyproject.toml)-$("$PYTHON_BIN" -c 'import sys; print(sys.version.split()[0])')"
  # .[dev] holds every component extra (pyproject.toml); one import per extra proves they are in.
  if stamp_ok python "$key" && .venv/bin/python -c 'import coattail, fastapi, confluent_kafka, pyspark, kubernetes' 2>/dev/null; then
    log "python: .venv up to date ($(.venv/bin/python --version))"; return
  fi
  log "python: building .venv with $PYTHON_BIN"
  [ -x .venv/bin/python ] || "$PYTHON_BIN" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  stamp_write python "$key"
}

step_jvm() {
  local name
  for name in kafka dynamodb spark; do
    local key dest="$ROOT/.cache/jars/$name"
    key="$(hash_files "jvm/$name/pom.xml")"
    if stamp_ok "jvm-$name" "$key" && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
      log "jvm: $name jars present ($(ls "$dest" | wc -l) files)"; continue
    fi
    log "jvm: resolving $name jars with maven"
    rm -rf "$dest"; mkdir -p "$dest"
    (cd "jvm/$name" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dest") \
      || die "maven could not resolve jvm/$name/pom.xml; see the output above"
    stamp_write "jvm-$name" "$key"
  done
}

go_tool() { # name module@version
  local name="$1" mod="$2"
  if stamp_ok "go-$name" "$mod" && [ -x ".tools/bin/$name" ]; then log "tools: $name ok"; return; fi
  log "tools: go install $mod"
  GOBIN="$ROOT/.tools/bin" GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install "$mod" || die "go install $mod failed"
  stamp_write "go-$name" "$mod"
}

step_tools() {
  mkdir -p .tools/bin
  go_tool helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  go_tool kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  go_tool actionlint "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  # helm-docs writes charts/coattail/README.md's values table from the `# --` comments in values.yaml.
  go_tool helm-docs "github.com/norwoodj/helm-docs/cmd/helm-docs@$HELM_DOCS_VERSION"
  # helm-unittest is a helm plugin: its binary plus plugin.yaml in a plugins folder of our own.
  local plugdir="$ROOT/.tools/helm-plugins/helm-unittest"
  if stamp_ok helm-unittest "$HELM_UNITTEST_VERSION" && [ -x "$plugdir/untt" ]; then
    log "tools: helm-unittest ok"
  else
    log "tools: building helm-unittest $HELM_UNITTEST_VERSION"
    local src
    src="$(go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" | json_field Dir)"
    rm -rf "$plugdir"; mkdir -p "$plugdir"
    (cd "$src" && GOFLAGS="-buildvcs=false -modcacherw" CGO_ENABLED=0 go build -o "$plugdir/untt" ./cmd/helm-unittest) \
      || die "could not build helm-unittest"
    # Our own plugin.yaml: the upstream one runs an install hook that downloads a release binary.
    printf 'name: "unittest"\nversion: "%s"\nusage: "unit test helm charts"\ndescription: "helm-unittest built from source"\nignoreFlags: false\ncommand: "$HELM_PLUGIN_DIR/untt"\n' \
      "${HELM_UNITTEST_VERSION#v}" > "$plugdir/plugin.yaml"
    stamp_write helm-unittest "$HELM_UNITTEST_VERSION"
  fi
}

step_crds() {
  local dest="$ROOT/.cache/crds"
  if stamp_ok crds "$SPARK_OPERATOR_VERSION" && [ -f "$dest/schemas/sparkapplication_v1beta2.json" ]; then
    log "crds: spark-operator $SPARK_OPERATOR_VERSION CRD schemas present"; return
  fi
  log "crds: fetching spark-operator $SPARK_OPERATOR_VERSION from the Go module proxy"
  local src
  src="$(go mod download -json "github.com/kubeflow/spark-operator/v2@$SPARK_OPERATOR_VERSION" | json_field Dir)"
  [ -d "$src/charts/spark-operator-chart" ] || die "spark-operator module has no chart at $src"
  rm -rf "$dest"; mkdir -p "$dest/schemas" "$dest/charts"
  cp "$src"/charts/spark-operator-chart/crds/*.yaml "$dest/"
  cp -r "$src/charts/spark-operator-chart" "$dest/charts/spark-operator"
  chmod -R u+w "$dest"
  .venv/bin/python scripts/crd_to_jsonschema.py "$dest"/*.yaml --out "$dest/schemas"
  stamp_write crds "$SPARK_OPERATOR_VERSION"
}

main() {
  local steps=("$@") extra
  [ ${#steps[@]} -gt 0 ] || steps=(python jvm tools crds extras)
  for s in "${steps[@]}"; do
    case "$s" in
      python|jvm|tools|crds) "step_$s" ;;
      cluster) bash "$ROOT/k8s-local/cluster/build.sh" ;;
      extras) for extra in "$ROOT"/scripts/setup.d/*.sh; do [ -e "$extra" ] && bash "$extra"; done ;;
      *) die "unknown set-up step '$s' (known: python jvm tools crds extras cluster)" ;;
    esac
  done
  log "set-up complete"
}
main "$@"
