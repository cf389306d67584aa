import type { AgentId, WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import type { AgentAddress, AgentAddresses } from "../AgentAddresses.js"
import { DatabaseUnavailable } from "../Chats.js"
import { Fleet } from "../Fleet.js"

export const agentsTable = "lazydial_service_agents"
export const workspacesTable = "lazydial_service_workspaces"

type Book = typeof AgentAddresses.Service

// An arbitrary constant, distinct from binding's migration lock.
const lockKey = 7_263_101

export const makeFleet = Effect.gen(function*() {
  const fleet = yield* Fleet
  const known: Array<WorkspaceId> = []
  const book: Book = {
    record: () => Effect.void,
    resolve: (agentId) =>
      Effect.sync(() =>
        Option.map(fleet.info(agentId), (info) => ({
          agentId,
          workspaceId: info.workspaceId,
          host: "127.0.0.1",
          port: info.port
        }))
      ),
    addWorkspace: (workspaceId) =>
      Effect.sync(() => {
        if (!known.includes(workspaceId)) known.push(workspaceId)
      }),
    workspaces: Effect.sync(() => [...known])
  }
  return book
})

interface AgentRow {
  readonly agent_id: string
  readonly workspace_id: string
  readonly host: string
  readonly port: number
}

const failed = (operation: string) => (cause: unknown) => new DatabaseUnavailable({ operation, cause })

export const makeSql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${lockKey})`
    yield* sql`CREATE TABLE IF NOT EXISTS ${sql(workspacesTable)} (
  workspace_id text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
)`
    yield* sql`CREATE TABLE IF NOT EXISTS ${sql(agentsTable)} (
  agent_id text PRIMARY KEY,
  workspace_id text NOT NULL,
  host text NOT NULL,
  port integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`
  })).pipe(Effect.mapError(failed("AgentAddresses.migrate")))

  // an id's address never changes: cache every answer that found one
  const cache = new Map<AgentId, AgentAddress>()
  const book: Book = {
    record: (address) =>
      sql`INSERT INTO ${sql(agentsTable)} (agent_id, workspace_id, host, port)
VALUES (${address.agentId}, ${address.workspaceId}, ${address.host}, ${address.port})
ON CONFLICT (agent_id) DO NOTHING`.pipe(
        Effect.andThen(Effect.sync(() => void cache.set(address.agentId, address))),
        Effect.mapError(failed("AgentAddresses.record"))
      ),
    resolve: (agentId) =>
      Effect.suspend(() => {
        const hit = cache.get(agentId)
        if (hit !== undefined) return Effect.succeed(Option.some(hit))
        return sql<AgentRow>`SELECT agent_id, workspace_id, host, port FROM ${sql(agentsTable)}
WHERE agent_id = ${agentId}`.pipe(
          Effect.map((rows) =>
            Option.map(Option.fromNullishOr(rows[0]), (row) => {
              // safe: only ids decoded at the boundary were ever recorded
              const address: AgentAddress = {
                agentId,
                workspaceId: row.workspace_id as WorkspaceId,
                host: row.host,
                port: Number(row.port)
              }
              cache.set(agentId, address)
              return address
            })
          ),
          Effect.mapError(failed("AgentAddresses.resolve"))
        )
      }),
    addWorkspace: (workspaceId) =>
      sql`INSERT INTO ${sql(workspacesTable)} (workspace_id) VALUES (${workspaceId})
ON CONFLICT (workspace_id) DO NOTHING`.pipe(Effect.asVoid, Effect.mapError(failed("AgentAddresses.addWorkspace"))),
    workspaces: sql<{ readonly workspace_id: string }>`SELECT workspace_id FROM ${sql(workspacesTable)}
ORDER BY created_at, workspace_id`.pipe(
      // safe: only ids decoded at the boundary were ever recorded
      Effect.map((rows) => rows.map((row) => row.workspace_id as WorkspaceId)),
      Effect.mapError(failed("AgentAddresses.workspaces"))
    )
  }
  return book
})
