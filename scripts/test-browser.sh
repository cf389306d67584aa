#!/usr/bin/env bash
# Opens the HTML report in headless Chromium (Debian's package, driven by
# playwright-core: no browser download) and checks it at 1280 and 390 px
# (packages/harness/test/Report.browser.ci.ts). Installs chromium with apt-get
# when it is missing (needs root). Extra arguments go to vitest. Screenshots go
# to $TMPDIR/lazydial-report-screenshots, never into the repository.
# Bounded at 5 minutes, not counting the install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# the project's Node (the `node` devDependency), also when run from a plain shell
export PATH="$PWD/node_modules/.bin:$PATH"

log() { printf 'test-browser: %s\n' "$*" >&2; }
# shellcheck source=lib/debian.sh
. scripts/lib/debian.sh

chromium="${LAZYDIAL_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  debian_install chromium "$chromium"
fi
export LAZYDIAL_CHROMIUM="$chromium"
log "using $("$chromium" --version 2>/dev/null || echo "$chromium"), node $(node --version)"
exec timeout 300 pnpm exec vitest run --config scripts/vitest.browser.config.ts "$@"
