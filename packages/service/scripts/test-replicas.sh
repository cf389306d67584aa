#!/usr/bin/env bash
# Runs the service's process tests (test/*.ci.test.ts): real `fleet` and
# `serve` processes on a real, throwaway PostgreSQL, started by binding's
# scripts/test-postgres.sh (which exports LAZYDIAL_TEST_DATABASE_URL and the
# pg_ctl stop/start commands and LAZYDIAL_TEST_PSQL, and removes the server on exit), with
# pg_stat_statements preloaded so the tests can count statements at the database. Extra
# arguments go to vitest (e.g. the JSON reporter of .ci/run).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
# The project's Node (the `node` devDependency) first on PATH, whoever runs
# this: vitest, the `serve` and `fleet` children (process.execPath) and the
# helpers of binding's script then all run on it, not on the machine's Node.
export PATH="$repo/node_modules/.bin:$PATH"

if [ -z "${LAZYDIAL_TEST_DATABASE_URL:-}" ]; then
  exec bash "$repo/packages/binding/scripts/test-postgres.sh" --exec bash "$here/test-replicas.sh" "$@"
fi

# the processes run as docs/deployment.md runs them: node on the build, which this makes first
bash "$here/build.sh"
# the process tests count lookups at the database too
# shellcheck source=lib/pg-stat-statements.sh
. "$here/lib/pg-stat-statements.sh"
enable_pg_stat_statements
cd "$repo"
# 34 tests in 8 files (the service's 7 and the harness's Cluster.ci.test.ts), about 2 minutes while other jobs load
# the machine (Trust.ci.test.ts, the attacks of issue 17, and the cluster about 30 s each): the bound leaves room
timeout 420 pnpm exec vitest run --config packages/service/vitest.ci.config.ts "$@"
