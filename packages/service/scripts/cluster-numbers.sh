#!/usr/bin/env bash
# The figures of docs/performance.md ("Replicas on one PostgreSQL"): runs
# `cluster` with K = 1, 2 and 4 replicas on a throwaway PostgreSQL (started by
# binding's scripts/test-postgres.sh) with pg_stat_statements preloaded.
# Extra arguments go to every `cluster` run (e.g. --chats 40 --turns 10).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
if [ -z "${LAZYDIAL_TEST_DATABASE_URL:-}" ]; then
  exec bash "$repo/packages/binding/scripts/test-postgres.sh" --exec bash "$here/cluster-numbers.sh" "$@"
fi
# shellcheck source=lib/pg-stat-statements.sh
. "$here/lib/pg-stat-statements.sh"
enable_pg_stat_statements
cd "$repo/packages/service"
for k in 1 2 4; do
  echo "== K=$k"
  timeout 600 node --import tsx src/bin.ts cluster --database-url "$LAZYDIAL_TEST_DATABASE_URL" --replicas "$k" "$@"
done
