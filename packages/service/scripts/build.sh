#!/usr/bin/env bash
# Builds the deployable service: `dist/` holds the service compiled by tsc (with core and binding, its project
# references), and `dist/node_modules/@lazydial/{core,binding}` the two packages exactly as `pnpm publish` ships them
# (packed, so their `publishConfig` points them at their own `dist/`). In the workspace their `exports` point at
# TypeScript sources, which `node` cannot run: packed, `node dist/bin.js` runs them with no loader, and finds their
# dependencies (effect, @effect/sql-pg, PGlite) in the service's own node_modules.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
service="$(cd "$here/.." && pwd)"
repo="$(cd "$service/../.." && pwd)"
export PATH="$repo/node_modules/.bin:$PATH"
cd "$service"
# --force: a dist/ removed by hand, with its build info left, would otherwise be taken as up to date
rm -rf dist
tsc -b --force tsconfig.build.json
packs="$(mktemp -d)"
trap 'rm -rf "$packs"' EXIT
for pkg in core binding; do
  (cd "$repo/packages/$pkg" && pnpm pack --pack-destination "$packs" >/dev/null)
  mkdir -p "dist/node_modules/@lazydial/$pkg"
  tar -xzf "$packs"/lazydial-"$pkg"-*.tgz -C "dist/node_modules/@lazydial/$pkg" --strip-components=1
done
chmod +x dist/bin.js
printf 'built %s/dist: run it with node dist/bin.js (serve, fleet)\n' "$service" >&2
