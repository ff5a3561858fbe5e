#!/usr/bin/env bash
# The local chain's tooling from the npm registry (chain/package.json, exact pins in its lock):
# the anvil binary (@foundry-rs/anvil-linux-amd64), the Uniswap V2 core/periphery build artifacts,
# OpenZeppelin and solc-js. `npm ci` installs into .cache/chain/node_modules, then chain/build.js
# compiles our test ERC-20 once into .cache/chain/artifacts/. Cached by a stamp keyed on the lock,
# the manifest, the build script and the contracts.
set -euo pipefail
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export ROOT
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

SRC="$ROOT/chain"
DEST="$ROOT/.cache/chain"
ANVIL="$DEST/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
KEY="$(hash_files "$SRC/package.json" "$SRC/package-lock.json" "$SRC/build.js" "$SRC"/contracts/*.sol)"

if stamp_ok chain "$KEY" && [ -x "$ANVIL" ] && [ -f "$DEST/artifacts/TestToken.json" ]; then
  log "chain: anvil and contract artifacts present ($("$ANVIL" --version 2>/dev/null | head -n1))"
  exit 0
fi

command -v npm >/dev/null || die "chain: npm is needed (install Node.js 20+ and re-run)"
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
  || die "chain: the pinned anvil package is for Linux x86_64; this machine is $(uname -s)-$(uname -m)"
log "chain: npm ci (anvil, Uniswap V2 artifacts, OpenZeppelin, solc-js) into .cache/chain"
mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
# --ignore-scripts: none of these packages needs an install script; nothing downloads at install time.
(cd "$DEST" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
  || die "chain: npm ci failed; see the output above"
chmod +x "$ANVIL" 2>/dev/null || true
"$ANVIL" --version >/dev/null 2>&1 || die "chain: $ANVIL does not run"
rm -rf "$DEST/artifacts"
node "$SRC/build.js" "$DEST/node_modules" "$DEST/artifacts" || die "chain: compiling chain/contracts failed"
stamp_write chain "$KEY"
log "chain: installed $("$ANVIL" --version | head -n1) and built $(ls "$DEST/artifacts" | tr '\n' ' ')"
