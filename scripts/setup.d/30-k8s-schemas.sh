#!/usr/bin/env bash
# Kubernetes JSON schemas for kubeconform, offline. The PyPI package kubernetes-validate (a dev
# dependency) ships them per Kubernetes version as <kind>-<group>-<version>.json, with every $ref
# pointing at "/api/_definitions.json", which kubeconform cannot resolve (and a 1.4 MB definitions
# file per compiled kind is slow). Each kind's schema is made self-contained: the definitions it
# reaches are embedded under $defs and the refs point at "#/$defs/...". The result is laid out as
#   .cache/k8s-schemas/v<K8S>-standalone-strict/<kind>-<group>-<version>.json
# and used with:  kubeconform -strict -kubernetes-version <K8S> \
#   -schema-location '.cache/k8s-schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json'
set -euo pipefail
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
K8S_SCHEMA_VERSION="${K8S_SCHEMA_VERSION:-1.33.0}"
PY="$ROOT/.venv/bin/python"
dest="$ROOT/.cache/k8s-schemas"
out="$dest/v${K8S_SCHEMA_VERSION}-standalone-strict"

[ -x "$PY" ] || die "k8s-schemas: .venv is missing; run scripts/setup.sh python first"
pkg_version="$("$PY" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))' 2>/dev/null)" \
  || die "k8s-schemas: kubernetes-validate is not installed; run: .venv/bin/pip install -e '.[dev]'"
key="${K8S_SCHEMA_VERSION}-${pkg_version}-standalone"
if stamp_ok k8s-schemas "$key" && [ -f "$out/deployment-apps-v1.json" ]; then
  log "k8s-schemas: Kubernetes $K8S_SCHEMA_VERSION schemas present"; exit 0
fi
log "k8s-schemas: laying out Kubernetes $K8S_SCHEMA_VERSION schemas from kubernetes-validate $pkg_version"
rm -rf "$out"; mkdir -p "$out"
"$PY" - "$K8S_SCHEMA_VERSION" "$out" <<'PYEOF'
import json, pathlib, re, sys
import kubernetes_validate
version, out = sys.argv[1], pathlib.Path(sys.argv[2])
src = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
if not src.is_dir():
    known = sorted(p.name for p in src.parent.iterdir() if p.name.endswith("-local-strict"))
    sys.exit(f"[setup] error: kubernetes-validate has no schemas for {version}; it has {', '.join(known)}")
defs = json.loads((src / "_definitions.json").read_text(encoding="utf-8"))["$defs"]
REF = re.compile(r'"\$ref": *"(?:/api/_definitions\.json)?#/\$defs/([^"]+)"')
count = 0
for path in sorted(src.glob("*.json")):
    if path.name in ("_definitions.json", "all.json"):
        continue
    text = path.read_text(encoding="utf-8")
    # Only the definitions this kind reaches, embedded: small self-contained files compile fast.
    needed: set[str] = set()
    todo = REF.findall(text)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += REF.findall(json.dumps(defs[name]))
    schema = json.loads(text.replace('"/api/_definitions.json#', '"#'))
    schema["$defs"] = {name: defs[name] for name in sorted(needed)}
    (out / path.name).write_text(json.dumps(schema), encoding="utf-8")
    count += 1
print(f"[setup] k8s-schemas: {count} self-contained schemas in {out}", file=sys.stderr)
PYEOF
stamp_write k8s-schemas "$key"
