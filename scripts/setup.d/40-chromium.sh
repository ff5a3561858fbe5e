#!/usr/bin/env bash
# Debian's chromium for the dashboard's browser tests (tests/api, marker `browser`). Playwright drives it
# through executable_path; `playwright install` is never used (it downloads browsers from a CDN).
# Idempotent: nothing happens when /usr/bin/chromium is already there. Not root and missing: a warning,
# and the browser tests then fail with a message that says how to fix it (they never skip silently).
set -euo pipefail
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
export ROOT
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
  log "chromium: $CHROMIUM present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "warning: chromium: $CHROMIUM is missing and we are not root; the browser tests will fail." \
    "Install it with: sudo apt-get install -y chromium"
  exit 0
fi

command -v apt-get >/dev/null || die "chromium: $CHROMIUM is missing and apt-get is not available"
log "chromium: installing Debian's chromium with apt-get (a few minutes)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || die "chromium: apt-get update failed"
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null \
  || die "chromium: apt-get install chromium failed; see the output above"
[ -x "$CHROMIUM" ] || die "chromium: installed, but $CHROMIUM is still missing"
log "chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
