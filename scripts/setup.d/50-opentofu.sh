#!/usr/bin/env bash
# OpenTofu (a terraform-compatible CLI) for `tofu fmt -check` on infra/, built from the Go module proxy.
# The module's go.mod has replace directives, so `go install module@version` refuses it: download the
# module source and `go build` inside it instead. Cached by a stamp keyed on version and build flags.
set -euo pipefail
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export ROOT
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

OPENTOFU_VERSION="${OPENTOFU_VERSION:-v1.12.6}"
BIN="$ROOT/.tools/bin/tofu"
# version.dev=no: report the release version (v1.12.6), not a -dev build, as the release binaries do.
LDFLAGS="-s -w -X github.com/opentofu/opentofu/version.dev=no"
KEY="$OPENTOFU_VERSION $LDFLAGS"

if stamp_ok opentofu "$KEY" && [ -x "$BIN" ]; then
  log "opentofu: tofu $OPENTOFU_VERSION ok"
  exit 0
fi

command -v go >/dev/null || die "opentofu: Go is needed to build tofu; install Go 1.26+ and re-run"
log "opentofu: building tofu $OPENTOFU_VERSION from the Go module proxy (a few minutes)"
src="$(go mod download -json "github.com/opentofu/opentofu@$OPENTOFU_VERSION" | json_field Dir)" \
  || die "opentofu: could not download github.com/opentofu/opentofu@$OPENTOFU_VERSION"
mkdir -p "$ROOT/.tools/bin"
# -p 2: the machine is shared; -trimpath and -s -w keep the binary small and reproducible.
(cd "$src" && GOFLAGS="-buildvcs=false -modcacherw" CGO_ENABLED=0 \
  go build -p 2 -trimpath -ldflags "$LDFLAGS" -o "$BIN.tmp" ./cmd/tofu) \
  || die "opentofu: go build of cmd/tofu failed; see the output above"
mv "$BIN.tmp" "$BIN"
"$BIN" version >/dev/null 2>&1 || die "opentofu: the built tofu binary does not run"
stamp_write opentofu "$KEY"
log "opentofu: installed tofu $OPENTOFU_VERSION at .tools/bin/tofu"
