#!/usr/bin/env bash
# Packs @lazydial/core and @lazydial/binding as `pnpm publish` would, and installs the tarballs into fresh projects
# outside the workspace exactly as each package README's `npm install` lines say (the registry's versions of the
# day, nothing pinned); typechecks the README examples there with `skipLibCheck: false`, runs them, and checks what
# the tarballs hold (scripts/pack.test.ts). Extra arguments go to vitest (e.g. the JSON reporter of .ci/run).
# Runs on the workspace's Node (the `node` devDependency), with the machine's npm; bounded at 8 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
printf 'test-pack: node %s, npm %s\n' "$(node --version)" "$(npm --version)" >&2
exec timeout --kill-after=10 480 pnpm exec vitest run --config scripts/vitest.pack.config.ts "$@"
