# shellcheck shell=bash
# Sourced by the service's scripts that count statements at the database (the
# process tests and the cluster figures). Preloads pg_stat_statements on the
# throwaway server of binding's scripts/test-postgres.sh and creates the
# extension. ALTER SYSTEM writes postgresql.auto.conf, so the setting survives
# the stop/start of the fault tests; the preload needs one restart.
enable_pg_stat_statements() {
  local psql="$LAZYDIAL_TEST_PSQL"
  "$psql" "$LAZYDIAL_TEST_DATABASE_URL" -Xq -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
  sh -c "$LAZYDIAL_TEST_PG_RESTART_COMMAND" >/dev/null
  "$psql" "$LAZYDIAL_TEST_DATABASE_URL" -Xq -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
}
