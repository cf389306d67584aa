#!/usr/bin/env bash
# Runs the @lazydial/binding tests against a real, throwaway PostgreSQL.
#
# - Installs PostgreSQL from Debian's packages when no server binaries exist
#   (needs root; `apt-get update` runs once, only then).
# - Starts a fresh cluster under /tmp, on 127.0.0.1 and a free port, trusting
#   local connections: it lives only as long as this script.
# - Runs `vitest --project binding` with LAZYDIAL_TEST_DATABASE_URL set, so the
#   PostgreSQL runs of the store contract, the directory and the replica races
#   are enabled. Extra arguments go to vitest. With `--exec cmd args...`, runs
#   that command instead (for example the load bench) against the same server.
#   Both run on the project's Node (node_modules/.bin first on PATH).
# - Sets LAZYDIAL_REQUIRE_POSTGRES=1: a PostgreSQL suite that cannot run
#   (a variable missing) fails instead of being skipped.
# - Creates a role with a password (LAZYDIAL_TEST_PASSWORD_DATABASE_URL), the
#   only one not trusted, for the wrong-password test of test/Database.test.ts.
# - Exports LAZYDIAL_TEST_PSQL (its psql), LAZYDIAL_TEST_PG_STOP_COMMAND, _START_COMMAND and _RESTART_COMMAND,
#   the pg_ctl command lines for this cluster, so test/PostgresFaults.test.ts
#   can stop, start and restart the server under a running workload.
# - Stops the server and removes the cluster on exit, whatever happened, and
#   exits with the tests' status.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
# the project's Node (the `node` devDependency), also when run from a plain shell
export PATH="$repo/node_modules/.bin:$PATH"

log() { printf 'test-postgres: %s\n' "$*" >&2; }
log "node $(node --version) ($(command -v node))"
# shellcheck source=../../../scripts/lib/debian.sh
. "$repo/scripts/lib/debian.sh"

find_bindir() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    printf '%s\n' "$dir"
  fi
}

bindir="$(find_bindir)"
if [ -z "$bindir" ]; then
  debian_install postgresql PostgreSQL
  bindir="$(find_bindir)"
  if [ -z "$bindir" ]; then
    log "PostgreSQL was installed, but no initdb was found under /usr/lib/postgresql/*/bin"
    exit 1
  fi
fi

# initdb refuses to run as root: the cluster belongs to the postgres user then.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

workdir="$(mktemp -d /tmp/lazydial-pg.XXXXXX)"
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$workdir"
fi
data="$workdir/data"

cleanup() {
  local status=$?
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT INT TERM

port="$(node -e '
const server = require("node:net").createServer()
server.listen(0, "127.0.0.1", () => { console.log(server.address().port); server.close() })
')"

log "starting PostgreSQL ($("$bindir/postgres" --version)) on 127.0.0.1:$port, data in $data"
as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$workdir/initdb.log" 2>&1 ||
  { cat "$workdir/initdb.log" >&2; exit 1; }
# pg_hba.conf is read top-down: this role alone must give its password.
password_role="lazydial_password"
password="lazydial-test-pw"
{ printf 'host all %s 127.0.0.1/32 scram-sha-256\n' "$password_role"; cat "$data/pg_hba.conf"; } >"$workdir/pg_hba.conf"
as_owner cp "$workdir/pg_hba.conf" "$data/pg_hba.conf"
server_options="-c listen_addresses=127.0.0.1 -p $port -k $workdir -c fsync=off"
as_owner "$bindir/pg_ctl" -D "$data" -l "$workdir/server.log" -w -t 60 -o "$server_options" start >/dev/null ||
  { cat "$workdir/server.log" >&2; exit 1; }
as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres lazydial_test

"$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d lazydial_test \
  -c "CREATE ROLE $password_role LOGIN SUPERUSER PASSWORD '$password'" >/dev/null

export LAZYDIAL_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/lazydial_test"
# the psql of this server's version, for callers that check from SQL
export LAZYDIAL_TEST_PSQL="$bindir/psql"
export LAZYDIAL_TEST_PASSWORD_DATABASE_URL="postgres://$password_role:$password@127.0.0.1:$port/lazydial_test"
export LAZYDIAL_REQUIRE_POSTGRES=1

# The fault tests run these through `sh -c`; they act on this cluster only.
owner_prefix=""
if [ "$(id -u)" -eq 0 ]; then
  owner_prefix="runuser -u postgres -- "
fi
pg_ctl_line="${owner_prefix}$bindir/pg_ctl -D $data -l $workdir/server.log -w -t 60"
export LAZYDIAL_TEST_PG_STOP_COMMAND="$pg_ctl_line -m fast stop"
export LAZYDIAL_TEST_PG_START_COMMAND="$pg_ctl_line -o '$server_options' start"
export LAZYDIAL_TEST_PG_RESTART_COMMAND="$pg_ctl_line -m fast -o '$server_options' restart"
cd "$repo"
if [ "${1:-}" = "--exec" ]; then
  # Any other command against the same throwaway server, e.g. the load bench.
  shift
  log "running $* with LAZYDIAL_TEST_DATABASE_URL=$LAZYDIAL_TEST_DATABASE_URL"
  "$@"
else
  log "running the binding tests with LAZYDIAL_TEST_DATABASE_URL=$LAZYDIAL_TEST_DATABASE_URL"
  pnpm exec vitest run --project binding "$@"
fi
