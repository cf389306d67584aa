#!/usr/bin/env bash
# Packs @lazydial/core and @lazydial/binding as `pnpm publish` would, installs
# the tarballs into a fresh project outside the workspace (with effect and the
# @effect/* peers as that project's own dependencies, from the npm registry),
# typechecks the packages' README examples there with `skipLibCheck: false`,
# runs them, and checks what the tarballs hold (scripts/pack.test.ts).
# Extra arguments go to vitest (e.g. the JSON reporter of .ci/run).
# The whole run is bounded at 15 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec timeout 900 pnpm exec vitest run --config scripts/vitest.pack.config.ts "$@"
