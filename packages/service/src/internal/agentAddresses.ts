import { Database } from "@lazydial/binding"
import type { AgentId, WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import type { AgentAddress, AgentAddresses, WorkspaceOwner } from "../AgentAddresses.js"
import { DatabaseUnavailable, databaseUnavailable } from "../Chats.js"
import { Fleet } from "../Fleet.js"

export const agentsTable = "lazydial_service_agents"
export const agentSecretsTable = "lazydial_service_agent_secrets"
export const workspacesTable = "lazydial_service_workspaces"

export const defaultOwner = "default"

export const cacheCapacity = 10_000

type Book = typeof AgentAddresses.Service

// An arbitrary constant, distinct from binding's migration lock.
const lockKey = 7_263_101

/**
 * A map that keeps its `capacity` most recently used entries: ids come from
 * the database and, through a forged notice or a client, from anyone, so a
 * cache of them must not grow with what it is asked.
 */
export class BoundedCache<K, V> {
  readonly #entries = new Map<K, V>()
  constructor(readonly capacity: number) {}
  get(key: K): V | undefined {
    const value = this.#entries.get(key)
    if (value === undefined) return undefined
    // re-inserted: a Map iterates in insertion order, so the first key is the least recently used
    this.#entries.delete(key)
    this.#entries.set(key, value)
    return value
  }
  set(key: K, value: V): void {
    this.#entries.delete(key)
    this.#entries.set(key, value)
    if (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value!)
  }
  get size(): number {
    return this.#entries.size
  }
}

export const makeFleet = Effect.gen(function*() {
  const fleet = yield* Fleet
  const known = new Map<WorkspaceId, string>()
  const book: Book = {
    record: () => Effect.void,
    resolve: (agentId) =>
      Effect.sync(() =>
        Option.map(fleet.info(agentId), (info) => ({
          agentId,
          workspaceId: info.workspaceId,
          host: "127.0.0.1",
          port: info.port,
          secret: info.secret
        }))
      ),
    addWorkspace: (workspaceId, owner) =>
      Effect.sync(() => {
        if (!known.has(workspaceId)) known.set(workspaceId, owner)
      }),
    workspaces: Effect.sync(() => Array.from(known, ([workspaceId, owner]) => ({ workspaceId, owner }))),
    ownerOf: (workspaceId) => Effect.sync(() => Option.fromNullishOr(known.get(workspaceId)))
  }
  return book
})

interface AgentRow {
  readonly agent_id: string
  readonly workspace_id: string
  readonly host: string
  readonly port: number
  readonly secret: string
}

const failed = (operation: string) => (cause: unknown) => new DatabaseUnavailable({ operation, cause })

// binding's query deadline (LAZYDIAL_DB_QUERY_DEADLINE), which holds when the server hangs, and its one database
// error, as the service's DatabaseUnavailable
const bounded = (operation: string) => <A, E, R>(statement: Effect.Effect<A, E, R>) =>
  statement.pipe(
    Effect.mapError(failed(operation)),
    Database.withDeadline(operation),
    databaseUnavailable(operation)
  )

export const makeSql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const migrate = Effect.gen(function*() {
    // Any role that can connect can take any advisory lock, and hold it: when
    // the tables are there already (every start but the first), the lock is
    // not taken, so such a role cannot keep a replica from starting.
    const [state] = yield* sql<{ readonly ready: boolean }>`SELECT to_regclass(${workspacesTable}) IS NOT NULL
  AND to_regclass(${agentsTable}) IS NOT NULL AND to_regclass(${agentSecretsTable}) IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(${workspacesTable}) AND attname = 'owner' AND NOT attisdropped
  ) AS ready`
    if (state?.ready !== true) {
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`SELECT pg_advisory_xact_lock(${lockKey})`
        yield* sql`CREATE TABLE IF NOT EXISTS ${sql(workspacesTable)} (
  workspace_id text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
)`
        // NULL: recorded before owners existed, read as `defaultOwner`
        yield* sql`ALTER TABLE ${sql(workspacesTable)} ADD COLUMN IF NOT EXISTS owner text`
        yield* sql`CREATE TABLE IF NOT EXISTS ${sql(agentsTable)} (
  agent_id text PRIMARY KEY,
  workspace_id text NOT NULL,
  host text NOT NULL,
  port integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`
        // A table of its own, so that a grant of the addresses (to a monitoring
        // role, say) never grants the secrets. The owner's privileges are all
        // there is: PUBLIC has none on a new table, and this says so explicitly.
        yield* sql`CREATE TABLE IF NOT EXISTS ${sql(agentSecretsTable)} (
  agent_id text PRIMARY KEY,
  secret text NOT NULL
)`
        yield* sql`REVOKE ALL ON ${sql(agentSecretsTable)} FROM PUBLIC`
      }))
    }
    // `CREATE TABLE IF NOT EXISTS` keeps a table that someone else made first:
    // where PUBLIC may create tables in the schema (PostgreSQL 14 and older by
    // default), another role could make the secrets table, own it, and read
    // every secret written to it. The tables must be this role's (or a role's
    // it belongs to).
    const foreign = yield* sql<{ readonly table: string; readonly owner: string }>`SELECT c.relname AS table,
  pg_get_userbyid(c.relowner) AS owner
FROM pg_class c
WHERE c.oid IN (to_regclass(${workspacesTable}), to_regclass(${agentsTable}), to_regclass(${agentSecretsTable}))
  AND NOT pg_has_role(c.relowner, 'USAGE')`
    if (foreign.length > 0) {
      return yield* Effect.fail(
        new Error(
          `${foreign.map((row) => `table ${row.table} is owned by role ${row.owner}`).join(", ")}, not by this ` +
            "service's role: drop it (its contents cannot be trusted), or start as its owner"
        )
      )
    }
  })
  yield* migrate.pipe(bounded("AgentAddresses.migrate"))

  const addresses = new BoundedCache<AgentId, AgentAddress>(cacheCapacity)
  const owners = new BoundedCache<WorkspaceId, string>(cacheCapacity)
  const toAddress = (agentId: AgentId, row: AgentRow): AgentAddress => ({
    agentId,
    // safe: only ids decoded at the boundary were ever recorded
    workspaceId: row.workspace_id as WorkspaceId,
    host: row.host,
    port: Number(row.port),
    secret: Redacted.make(Uint8Array.from(Buffer.from(row.secret, "hex")), { label: "agent secret" })
  })

  const book: Book = {
    record: (address) =>
      // one statement, so an address is never recorded without its secret
      sql`WITH address AS (
  INSERT INTO ${sql(agentsTable)} (agent_id, workspace_id, host, port)
  VALUES (${address.agentId}, ${address.workspaceId}, ${address.host}, ${address.port})
  ON CONFLICT (agent_id) DO NOTHING
)
INSERT INTO ${sql(agentSecretsTable)} (agent_id, secret)
VALUES (${address.agentId}, ${Buffer.from(Redacted.value(address.secret)).toString("hex")})
ON CONFLICT (agent_id) DO NOTHING`.pipe(
        bounded("AgentAddresses.record"),
        Effect.andThen(Effect.sync(() => addresses.set(address.agentId, address)))
      ),
    resolve: (agentId) =>
      Effect.suspend(() => {
        const hit = addresses.get(agentId)
        if (hit !== undefined) return Effect.succeed(Option.some(hit))
        return sql<AgentRow>`SELECT a.agent_id, a.workspace_id, a.host, a.port, s.secret
FROM ${sql(agentsTable)} a JOIN ${sql(agentSecretsTable)} s ON s.agent_id = a.agent_id
WHERE a.agent_id = ${agentId}`.pipe(
          bounded("AgentAddresses.resolve"),
          Effect.map((rows) =>
            Option.map(Option.fromNullishOr(rows[0]), (row) => {
              const address = toAddress(agentId, row)
              addresses.set(agentId, address)
              return address
            })
          )
        )
      }),
    addWorkspace: (workspaceId, owner) =>
      sql`INSERT INTO ${sql(workspacesTable)} (workspace_id, owner) VALUES (${workspaceId}, ${owner})
ON CONFLICT (workspace_id) DO NOTHING`.pipe(bounded("AgentAddresses.addWorkspace"), Effect.asVoid),
    workspaces: sql<{ readonly workspace_id: string; readonly owner: string | null }>`SELECT workspace_id, owner
FROM ${sql(workspacesTable)} ORDER BY created_at, workspace_id`.pipe(
      bounded("AgentAddresses.workspaces"),
      Effect.map((rows) =>
        rows.map((row): WorkspaceOwner => ({
          // safe: only ids decoded at the boundary were ever recorded
          workspaceId: row.workspace_id as WorkspaceId,
          owner: row.owner ?? defaultOwner
        }))
      )
    ),
    ownerOf: (workspaceId) =>
      Effect.suspend(() => {
        const hit = owners.get(workspaceId)
        if (hit !== undefined) return Effect.succeed(Option.some(hit))
        return sql<{ readonly owner: string | null }>`SELECT owner FROM ${sql(workspacesTable)}
WHERE workspace_id = ${workspaceId}`.pipe(
          bounded("AgentAddresses.ownerOf"),
          Effect.map((rows) =>
            Option.map(Option.fromNullishOr(rows[0]), (row) => {
              const owner = row.owner ?? defaultOwner
              // an owner is written once with its workspace: a found one never changes
              owners.set(workspaceId, owner)
              return owner
            })
          )
        )
      })
  }
  return book
})
