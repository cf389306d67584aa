import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"

/** @internal */
export const migrationsTable = "lazydial_binding_migrations"

/** @internal */
export const chatBindingsTable = "lazydial_chat_bindings"

/** @internal */
export const workspaceBuildsTable = "lazydial_workspace_builds"

interface Migration {
  readonly id: number
  readonly name: string
  readonly run: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, SqlError>
}

/**
 * Append only: a migration that ran somewhere is never edited; a change is a
 * new migration with the next id.
 *
 * @internal
 */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: 1,
    name: "create_chat_bindings",
    run: (sql) =>
      sql`CREATE TABLE lazydial_chat_bindings (
  chat_id text PRIMARY KEY,
  parent_chat_id text NULL,
  workspace_id text NULL,
  build_id text NULL,
  agent_id text NULL,
  updated_at timestamptz NOT NULL,
  CONSTRAINT lazydial_chat_bindings_build_with_agent CHECK ((build_id IS NULL) = (agent_id IS NULL)),
  CONSTRAINT lazydial_chat_bindings_agent_needs_workspace CHECK (agent_id IS NULL OR workspace_id IS NOT NULL)
)`
  },
  {
    id: 2,
    name: "create_workspace_builds",
    run: (sql) =>
      sql`CREATE TABLE lazydial_workspace_builds (
  workspace_id text NOT NULL,
  build_number integer NOT NULL,
  build_id text NOT NULL UNIQUE,
  agent_id text NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (workspace_id, build_number)
)`
  },
  {
    // The compare-and-set needs no version, but clients that cache a binding
    // (an HTTP ETag) do; existing rows start at 1.
    id: 3,
    name: "chat_bindings_version",
    run: (sql) =>
      Effect.zipRight(
        sql`ALTER TABLE lazydial_chat_bindings ADD COLUMN version integer NOT NULL DEFAULT 1`,
        sql`CREATE INDEX lazydial_chat_bindings_workspace ON lazydial_chat_bindings (workspace_id)`
      )
  }
]

// An arbitrary constant: the key of the advisory lock that serializes migrations.
const lockKey = 7_263_001

/**
 * Brings the schema up to date, once per database even when several replicas
 * start together: the whole run is one transaction that first takes a
 * transaction-scoped advisory lock. DDL is transactional in PostgreSQL, so a
 * failed migration leaves nothing half-applied.
 *
 * `@effect/sql`'s `Migrator` creates its table outside its transaction, which
 * races when two replicas start at once, so this small runner is used instead.
 *
 * @internal
 */
export const run: Effect.Effect<ReadonlyArray<number>, SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${lockKey})`
    yield* sql`CREATE TABLE IF NOT EXISTS lazydial_binding_migrations (
  migration_id integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`
    const rows = yield* sql<{ readonly migration_id: number }>`SELECT migration_id FROM lazydial_binding_migrations`
    const done = new Set(rows.map((row) => row.migration_id))
    const applied: Array<number> = []
    for (const migration of migrations) {
      if (done.has(migration.id)) continue
      yield* migration.run(sql)
      yield* sql`INSERT INTO lazydial_binding_migrations (migration_id, name) VALUES (${migration.id}, ${migration.name})`
      applied.push(migration.id)
    }
    return applied
  }))
}).pipe(Effect.withSpan("BindingMigrations.run"))
