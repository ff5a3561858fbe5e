#!/usr/bin/env bash
# Bring up the k8s-local profile: a kind cluster, the kubeflow spark-operator (its official chart,
# pinned), and the backing services (Redpanda, DynamoDB Local, MinIO, an Iceberg REST catalog).
# Safe to re-run: every step is "create if missing" or an idempotent apply/upgrade.
#   k8s-local/up.sh            everything
#   k8s-local/up.sh deps       only what goes into an existing cluster (the kind CI job uses this:
#                              helm/kind-action made the cluster)
# Then: `tilt up` (dev loop), or install the chart yourself:
#   helm upgrade --install coattail charts/coattail -n coattail -f charts/coattail/values-local.yaml
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=k8s-local/versions.env
source "$HERE/versions.env"
say() { printf '[k8s-local] %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { say "error: $1 is not installed (needed: kind, kubectl, helm)"; exit 1; }; }

cluster() {
  need kind
  if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER_NAME"; then
    say "kind cluster $KIND_CLUSTER_NAME exists"
  else
    say "creating kind cluster $KIND_CLUSTER_NAME"
    kind create cluster --config "$HERE/kind-config.yaml" --wait 120s
  fi
  kubectl config use-context "kind-$KIND_CLUSTER_NAME" >/dev/null
}

namespaces() {
  for ns in "$DEPS_NAMESPACE" "$APP_NAMESPACE"; do
    kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  done
}

credentials() {
  # Dev-only credentials shared by MinIO, the Iceberg REST catalog and the app (values-local.yaml:
  # aws.credentialsSecret). Generated once per cluster; re-runs keep them so MinIO keeps working.
  local user secret ns
  if kubectl -n "$DEPS_NAMESPACE" get secret coattail-local-aws >/dev/null 2>&1; then
    user="$(kubectl -n "$DEPS_NAMESPACE" get secret coattail-local-aws -o jsonpath='{.data.AWS_ACCESS_KEY_ID}' | base64 -d)"
    secret="$(kubectl -n "$DEPS_NAMESPACE" get secret coattail-local-aws -o jsonpath='{.data.AWS_SECRET_ACCESS_KEY}' | base64 -d)"
  else
    user="coattail-local"
    secret="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  fi
  # MinIO and the REST catalog read the two keys; the app mounts `credentials` (a shared-credentials
  # file) and never sees them as environment variables.
  local file
  file="$(printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$user" "$secret")"
  for ns in "$DEPS_NAMESPACE" "$APP_NAMESPACE"; do
    kubectl -n "$ns" create secret generic coattail-local-aws \
      --from-literal=AWS_ACCESS_KEY_ID="$user" --from-literal=AWS_SECRET_ACCESS_KEY="$secret" \
      --from-literal=credentials="$file" \
      --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  done
  say "secret coattail-local-aws in $DEPS_NAMESPACE and $APP_NAMESPACE"
}

operator() {
  need helm
  say "spark-operator chart $SPARK_OPERATOR_CHART_VERSION (jobs in namespace $APP_NAMESPACE)"
  helm repo add spark-operator "$SPARK_OPERATOR_REPO" --force-update >/dev/null
  helm upgrade --install spark-operator spark-operator/spark-operator \
    --version "$SPARK_OPERATOR_CHART_VERSION" --namespace spark-operator --create-namespace \
    --set "spark.jobNamespaces={$APP_NAMESPACE}" --set webhook.enable=true \
    --set spark.serviceAccount.create=false --wait --timeout 5m
}

deps() {
  say "backing services in $DEPS_NAMESPACE"
  kubectl apply -f "$HERE/manifests/"
  # The init Job is immutable once it ran; a re-run replaces it only if it failed.
  kubectl -n "$DEPS_NAMESPACE" rollout status statefulset/redpanda --timeout=5m
  for d in dynamodb-local minio iceberg-rest; do
    kubectl -n "$DEPS_NAMESPACE" rollout status "deployment/$d" --timeout=5m
  done
  kubectl -n "$DEPS_NAMESPACE" wait --for=condition=complete job/minio-init --timeout=5m
}

chain() {
  # The large tier's chain: a local Ethereum node, and the Secret the chart's Ethereum connector reads
  # its RPC URL from (the chart's default name for release "coattail"). Solana has no local node: set
  # connectors.chains.solana.enabled=false, or point coattail-solana-rpc at a real endpoint.
  say "anvil in $DEPS_NAMESPACE (TIER=large)"
  kubectl apply -f "$HERE/anvil.yaml"
  kubectl -n "$DEPS_NAMESPACE" rollout status deployment/anvil --timeout=5m
  kubectl -n "$APP_NAMESPACE" create secret generic coattail-ethereum-rpc \
    --from-literal=rpc-url="http://anvil.$DEPS_NAMESPACE.svc.cluster.local:8545" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
}

main() {
  need kubectl
  case "${1:-all}" in
    all) cluster; namespaces; credentials; operator; deps; case "${TIER:-small}" in medium|large) chain ;; esac ;;
    deps) namespaces; credentials; operator; deps; case "${TIER:-small}" in medium|large) chain ;; esac ;;
    cluster) cluster ;;
    *) say "usage: $0 [all|deps|cluster]"; exit 2 ;;
  esac
  say "ready: tilt up   (or: helm upgrade --install coattail charts/coattail -n $APP_NAMESPACE -f charts/coattail/values-local.yaml)"
}
main "$@"
