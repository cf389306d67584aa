#!/usr/bin/env bash
# The figures of docs/performance.md ("Replicas on one PostgreSQL", and issue
# 11's cluster figures): runs `cluster` for each K of --replicas-list (default
# "1 2 4") on a throwaway PostgreSQL (started by binding's
# scripts/test-postgres.sh) with pg_stat_statements preloaded. Every other
# argument goes to every `cluster` run, e.g.
#   cluster-numbers.sh --chats 40 --turns 10                  (issue 10: steady turns only)
#   cluster-numbers.sh --replicas-list 2 --rebuilds 12        (issue 11: K = 2, rebuilds while measured)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
# The project's Node (the `node` devDependency), not the machine's: pnpm puts it
# first on PATH for its scripts, and a plain `bash` run of this script does it here.
export PATH="$repo/node_modules/.bin:$PATH"
if [ -z "${LAZYDIAL_TEST_DATABASE_URL:-}" ]; then
  exec bash "$repo/packages/binding/scripts/test-postgres.sh" --exec bash "$here/cluster-numbers.sh" "$@"
fi
replicas_list="1 2 4"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas-list) replicas_list="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
# the service's own helper, which its process tests use too
# shellcheck source=../../service/scripts/lib/pg-stat-statements.sh
. "$repo/packages/service/scripts/lib/pg-stat-statements.sh"
enable_pg_stat_statements
cd "$repo/packages/harness"
# each strategy first once: the others follow in report order, rotated
orders="lazydial lazydial_no_reuse latest"
case " ${args[*]} " in *" --first "*) orders="given" ;; esac
for k in $replicas_list; do
  for first in $orders; do
    echo "== K=$k, $first first"
    order=()
    [ "$first" = "given" ] || order=(--first "$first")
    timeout 600 node --import tsx src/bin.ts cluster --database-url "$LAZYDIAL_TEST_DATABASE_URL" --replicas "$k" \
      "${order[@]}" "${args[@]}"
  done
done
