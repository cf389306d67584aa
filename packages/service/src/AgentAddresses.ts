/**
 * The address book: where each agent listens, and which workspaces exist.
 * The `SocketDialer` resolves an agent id here before it dials.
 *
 * | Layer | book | use |
 * |---|---|---|
 * | `layerFleet` | the in-process `Fleet`'s own map | the one-process run and tests |
 * | `layerSql` | two service-owned tables in the shared database | `fleet` writes, every `serve` replica reads |
 *
 * Why service-owned tables and not a column of binding's builds table: the
 * address is a fact of this service's agents (a TCP port on 127.0.0.1 here, a
 * tailnet address in a real deployment), not of the binding library, which
 * only needs agent ids. The tables are created with `CREATE TABLE IF NOT
 * EXISTS` under a transaction-scoped advisory lock, so replicas starting
 * together create them once, and a later change is a new idempotent statement.
 *
 * A replica caches every address it resolved: a rebuild makes a new agent id,
 * so the address of an id never changes. A port that another agent reuses is
 * still caught by the dialer's identity handshake (`WrongAgent`).
 *
 * @since 0.1.0
 */
import type { AgentId, WorkspaceId } from "@lazydial/core"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as SqlClient from "effect/sql/SqlClient"
import type { DatabaseUnavailable } from "./Chats.js"
import type { Fleet } from "./Fleet.js"
import * as internal from "./internal/agentAddresses.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface AgentAddress {
  readonly agentId: AgentId
  readonly workspaceId: WorkspaceId
  readonly host: string
  readonly port: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class AgentAddresses extends Context.Service<
  AgentAddresses,
  {
    /** Records where a new agent listens; before it is made current, so every replica can dial it. */
    readonly record: (address: AgentAddress) => Effect.Effect<void, DatabaseUnavailable>
    /** Where the agent listens (or listened). None: no such agent was recorded. */
    readonly resolve: (agentId: AgentId) => Effect.Effect<Option.Option<AgentAddress>, DatabaseUnavailable>
    /** Records a workspace (idempotent). */
    readonly addWorkspace: (workspaceId: WorkspaceId) => Effect.Effect<void, DatabaseUnavailable>
    /** Every workspace recorded, in the order they were first recorded. */
    readonly workspaces: Effect.Effect<ReadonlyArray<WorkspaceId>, DatabaseUnavailable>
  }
>()("@lazydial/service/AgentAddresses") {}

/**
 * The table of agent addresses.
 *
 * @since 0.1.0
 * @category constants
 */
export const agentsTable: string = internal.agentsTable

/**
 * The table of workspaces.
 *
 * @since 0.1.0
 * @category constants
 */
export const workspacesTable: string = internal.workspacesTable

/**
 * The book of the in-process fleet: no database, nothing to record.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFleet: Layer.Layer<AgentAddresses, never, Fleet> = Layer.effect(AgentAddresses, internal.makeFleet)

/**
 * The book in the shared database; creates its tables when missing.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSql: Layer.Layer<AgentAddresses, DatabaseUnavailable, SqlClient.SqlClient> = Layer.effect(
  AgentAddresses,
  internal.makeSql
)
