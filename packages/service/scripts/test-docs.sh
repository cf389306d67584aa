#!/usr/bin/env bash
# Runs the shell examples of docs/deployment.md that are marked `<!-- docs-check: run -->` as they are written,
# against real processes: the service built by scripts/build.sh, on a throwaway PostgreSQL that binding's
# scripts/test-postgres.sh starts (and removes). The examples use curl, openssl and jq: jq is installed from Debian's
# packages when it is missing (needs root). Bounded at 5 minutes, not counting the installs and the build. Extra
# arguments go to vitest (e.g. the JSON reporter of .ci/run).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
# the project's Node first on PATH, whoever runs this: vitest, and the `node` of the examples
export PATH="$repo/node_modules/.bin:$PATH"

if [ -z "${LAZYDIAL_TEST_DATABASE_URL:-}" ]; then
  exec bash "$repo/packages/binding/scripts/test-postgres.sh" --exec bash "$here/test-docs.sh" "$@"
fi

log() { printf 'test-docs: %s\n' "$*" >&2; }
# shellcheck source=../../../scripts/lib/debian.sh
. "$repo/scripts/lib/debian.sh"
command -v jq >/dev/null || debian_install jq jq
bash "$here/build.sh"
cd "$repo"
timeout 300 pnpm exec vitest run --config packages/service/vitest.docs.config.ts "$@"
