import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { BindingStoreError, DatabaseSchemaTooNew } from "../Errors.js"
import { databaseError, Deadlines, transaction } from "./database.js"
import { withDeadline } from "./deadline.js"

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
  },
  {
    // An agent belongs to its workspace: a chat may name only a (build, agent)
    // pair the directory holds for the chat's workspace, and the database
    // itself refuses any other (issue 17: forged notices had rows name another
    // workspace's agent, and a build that exists in no table). Rows that
    // already break the rule become lazy binds first, in this transaction, so
    // that the migration cannot fail on a database such an attack touched.
    id: 4,
    name: "chat_agent_of_its_workspace",
    run: (sql) =>
      Effect.andThen(
        sql`ALTER TABLE lazydial_workspace_builds ADD CONSTRAINT lazydial_workspace_builds_agent_of_workspace
  UNIQUE (workspace_id, build_id, agent_id)`,
        Effect.andThen(
          sql`UPDATE lazydial_chat_bindings AS chat
SET build_id = NULL, agent_id = NULL, version = chat.version + 1, updated_at = now()
WHERE chat.agent_id IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM lazydial_workspace_builds AS build
  WHERE build.workspace_id = chat.workspace_id AND build.build_id = chat.build_id AND build.agent_id = chat.agent_id
)`,
          sql`ALTER TABLE lazydial_chat_bindings ADD CONSTRAINT lazydial_chat_bindings_agent_of_workspace
  FOREIGN KEY (workspace_id, build_id, agent_id)
  REFERENCES lazydial_workspace_builds (workspace_id, build_id, agent_id)`
        )
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
 * transaction-scoped advisory lock, taken only when a migration is missing
 * (any role that may connect may hold that lock; an up-to-date database then
 * starts without it). DDL is transactional in PostgreSQL, so a
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
  const deadlines = yield* Deadlines
  return yield* runUpTo(sql, latest).pipe(
    withDeadline("migration", deadlines.migration, "the statement timeout plus the query deadline")
  )
}).pipe(Effect.withSpan("BindingMigrations.run"))

/**
 * The migrations up to `upTo`, in one transaction. `run` runs them all; the
 * tests stop early, to build a database as an older version left it.
 *
 * @internal
 */
export const runUpTo = (
  sql: SqlClient.SqlClient,
  upTo: number
): Effect.Effect<ReadonlyArray<number>, BindingStoreError | DatabaseSchemaTooNew> =>
  Effect.gen(function*() {
    const step = <A>(effect: Effect.Effect<A, SqlError>) => Effect.mapError(effect, databaseError("migration"))
    // Any role that may connect may take any advisory lock and hold it: a
    // start that always took the lock could be held off for ever by such a
    // role. So the lock is taken only when there is something to migrate.
    yield* refuseForeignTables(sql, step)
    const done = yield* appliedMigrations(sql, step)
    if (done !== undefined && migrations.every((migration) => migration.id > upTo || done.has(migration.id))) {
      if ([...done].some((id) => !known.has(id))) {
        return yield* new DatabaseSchemaTooNew({ databaseVersion: Math.max(...done), codeVersion: latest })
      }
      return []
    }
    return yield* migrate(sql, upTo, step)
  })

const known = new Set(migrations.map((migration) => migration.id))
const tables = [migrationsTable, chatBindingsTable, workspaceBuildsTable]

type Step = <A>(effect: Effect.Effect<A, SqlError>) => Effect.Effect<A, BindingStoreError>

/** The migrations the database holds; undefined when it has no migrations table yet. */
const appliedMigrations = (sql: SqlClient.SqlClient, step: Step) =>
  Effect.gen(function*() {
    const [table] = yield* step(
      sql<{ readonly found: boolean }>`SELECT to_regclass(${migrationsTable}) IS NOT NULL AS found`
    )
    if (table === undefined || !table.found) return undefined
    const rows = yield* step(
      sql<{ readonly migration_id: number }>`SELECT migration_id FROM lazydial_binding_migrations`
    )
    return new Set(rows.map((row) => row.migration_id))
  })

/**
 * A table of ours that another role owns was not made by this service: its
 * owner may read, change or drop what we write there. Refused before anything
 * is read from it (a role allowed to create tables, the default on
 * PostgreSQL 14 and older, could otherwise create them first).
 */
const refuseForeignTables = (sql: SqlClient.SqlClient, step: Step) =>
  Effect.gen(function*() {
    // `pg_has_role` is true for every role when this one is a superuser: a superuser service is trusted with
    // any table (docs/security.md).
    const foreign = yield* step(sql<{ readonly table: string; readonly owner: string }>`SELECT c.relname AS table,
  pg_get_userbyid(c.relowner) AS owner
FROM pg_class c
WHERE c.oid IN (to_regclass(${tables[0]!}), to_regclass(${tables[1]!}), to_regclass(${tables[2]!}))
  AND NOT pg_has_role(c.relowner, 'USAGE')`)
    if (foreign.length === 0) return
    return yield* new BindingStoreError({
      operation: "migration",
      detail: `${foreign.map((row) => `table ${row.table} is owned by role ${row.owner}`).join(", ")}, not by this ` +
        "service's role: drop it (its contents cannot be trusted), or start as its owner"
    })
  })

const migrate = (sql: SqlClient.SqlClient, upTo: number, step: Step) =>
  transaction(sql, "migration")(Effect.gen(function*() {
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
    if ([...done].some((id) => !known.has(id))) {
      return yield* new DatabaseSchemaTooNew({ databaseVersion: Math.max(...done), codeVersion: latest })
    }
    const applied: Array<number> = []
    for (const migration of migrations) {
      if (done.has(migration.id) || migration.id > upTo) continue
      yield* step(migration.run(sql))
      yield* step(
        sql`INSERT INTO lazydial_binding_migrations (migration_id, name) VALUES (${migration.id}, ${migration.name})`
      )
      applied.push(migration.id)
    }
    return applied
  }))
