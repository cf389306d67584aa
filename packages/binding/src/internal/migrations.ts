import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { type BindingStoreError, DatabaseSchemaTooNew } from "../Errors.js"
import { databaseError, transaction } from "./database.js"

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
      Effect.andThen(
        sql`ALTER TABLE lazydial_chat_bindings ADD COLUMN version integer NOT NULL DEFAULT 1`,
        sql`CREATE INDEX lazydial_chat_bindings_workspace ON lazydial_chat_bindings (workspace_id)`
      )
  }
]

/**
 * The latest migration this code knows.
 *
 * @internal
 */
export const latest: number = Math.max(...migrations.map((migration) => migration.id))

// An arbitrary constant: the key of the advisory lock that serializes migrations.
const lockKey = 7_263_001

/**
 * Brings the schema up to date, once per database even when several replicas
 * start together: the whole run is one transaction that first takes a
 * transaction-scoped advisory lock. DDL is transactional in PostgreSQL, so a
 * failed migration leaves nothing half-applied.
 *
 * Effect 4's `effect/sql/Migrator` serializes replicas too (it locks its table
 * inside its transaction), but it runs only the migrations numbered above the
 * database's latest one, so it cannot refuse a schema that a newer version
 * migrated: this small runner does, before it runs anything.
 *
 * A database that holds a migration this code does not know was migrated by a
 * newer version: it is refused before anything runs, since this code would
 * misread its tables (or break them) at the first write.
 *
 * Answers the migrations it applied (none when the schema was up to date).
 *
 * @internal
 */
export const run: Effect.Effect<
  ReadonlyArray<number>,
  BindingStoreError | DatabaseSchemaTooNew,
  SqlClient.SqlClient
> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const step = <A>(effect: Effect.Effect<A, SqlError>) => Effect.mapError(effect, databaseError("migration"))
  return yield* transaction(sql, "migration")(Effect.gen(function*() {
    yield* step(sql`SELECT pg_advisory_xact_lock(${lockKey})`)
    yield* step(sql`CREATE TABLE IF NOT EXISTS lazydial_binding_migrations (
  migration_id integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
)`)
    const rows = yield* step(
      sql<{ readonly migration_id: number }>`SELECT migration_id FROM lazydial_binding_migrations`
    )
    const done = new Set(rows.map((row) => row.migration_id))
    const known = new Set(migrations.map((migration) => migration.id))
    if ([...done].some((id) => !known.has(id))) {
      return yield* new DatabaseSchemaTooNew({ databaseVersion: Math.max(...done), codeVersion: latest })
    }
    const applied: Array<number> = []
    for (const migration of migrations) {
      if (done.has(migration.id)) continue
      yield* step(migration.run(sql))
      yield* step(
        sql`INSERT INTO lazydial_binding_migrations (migration_id, name) VALUES (${migration.id}, ${migration.name})`
      )
      applied.push(migration.id)
    }
    return applied
  }))
}).pipe(Effect.withSpan("BindingMigrations.run"))
