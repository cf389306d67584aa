/**
 * The address book: where each agent listens, and which workspaces exist.
 * The `SocketDialer` resolves an agent id here before it dials.
 *
 * | Layer | book | use |
 * |---|---|---|
 * | `layerFleet` | the in-process `Fleet`'s own map | the one-process run and tests |
 * | `layerSql` | three service-owned tables in the shared database | `fleet` writes, every `serve` replica reads |
 *
 * Why service-owned tables and not a column of binding's builds table: the
 * address is a fact of this service's agents (a TCP port on 127.0.0.1 here, a
 * tailnet address in a real deployment), not of the binding library, which
 * only needs agent ids. The tables are created with `CREATE TABLE IF NOT
 * EXISTS` under a transaction-scoped advisory lock, so replicas starting
 * together create them once, and a later change is a new idempotent statement.
 *
 * Each agent's secret, which it proves it holds in the dialer's handshake,
 * sits in a table of its own (`agentSecretsTable`), which the service's role
 * owns and grants to no one: a role that may only connect to the database
 * (or one granted reads of the address table for monitoring) cannot read it,
 * so it cannot answer a handshake as any agent. `record` writes the address
 * and the secret in one statement, and `resolve` answers them together; an
 * address with no secret (recorded by an older version) is not dialable.
 *
 * A replica caches the addresses it resolved, secrets included, at most
 * `cacheCapacity` of them (the least recently used go first): a rebuild makes
 * a new agent id, and an id's address and secret are written once and never
 * change. Only answers that found an agent are cached. A port that another
 * process took is still caught by the handshake (`WrongAgent`).
 *
 * Workspaces have owners (user names), written once with the workspace and
 * never changed: `addWorkspace` of a recorded workspace keeps its first owner.
 * A workspace recorded before owners existed belongs to `defaultOwner`.
 *
 * Every statement has binding's client-side query deadline
 * (`Database.withDeadline`, `LAZYDIAL_DB_QUERY_DEADLINE`), which holds when
 * the server hangs: it fails as `DatabaseUnavailable`.
 *
 * @since 0.1.0
 */
import type { AgentId, WorkspaceId } from "@lazydial/core"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
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
  /** The agent's secret: what the dialer checks its handshake proof against. */
  readonly secret: Redacted.Redacted<Uint8Array>
}

/**
 * A workspace and the user it belongs to.
 *
 * @since 0.2.0
 * @category models
 */
export interface WorkspaceOwner {
  readonly workspaceId: WorkspaceId
  readonly owner: string
}

/**
 * @since 0.1.0
 * @category tags
 */
export class AgentAddresses extends Context.Service<
  AgentAddresses,
  {
    /** Records where a new agent listens, and its secret; before it is made current, so every replica can dial it. */
    readonly record: (address: AgentAddress) => Effect.Effect<void, DatabaseUnavailable>
    /** Where the agent listens (or listened), with its secret. None: no such agent was recorded. */
    readonly resolve: (agentId: AgentId) => Effect.Effect<Option.Option<AgentAddress>, DatabaseUnavailable>
    /** Records a workspace and its owner; a recorded workspace keeps its first owner. */
    readonly addWorkspace: (workspaceId: WorkspaceId, owner: string) => Effect.Effect<void, DatabaseUnavailable>
    /** Every workspace recorded, with its owner, in the order they were first recorded. */
    readonly workspaces: Effect.Effect<ReadonlyArray<WorkspaceOwner>, DatabaseUnavailable>
    /** The workspace's owner. None: no such workspace was recorded. */
    readonly ownerOf: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<string>, DatabaseUnavailable>
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
 * The table of agent secrets: the service's role owns it and grants it to no
 * one.
 *
 * @since 0.2.0
 * @category constants
 */
export const agentSecretsTable: string = internal.agentSecretsTable

/**
 * The owner of a workspace recorded with none: before owners existed, or by
 * `ControlPlane.setCurrent` of a workspace never added.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultOwner: string = internal.defaultOwner

/**
 * How many resolved addresses (and owners) a replica keeps in memory.
 *
 * @since 0.2.0
 * @category constants
 */
export const cacheCapacity: number = internal.cacheCapacity

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
 * The book in the shared database; creates its tables when missing, and
 * fails (`DatabaseUnavailable`) when that takes longer than the query
 * deadline.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSql: Layer.Layer<AgentAddresses, DatabaseUnavailable, SqlClient.SqlClient> = Layer.effect(
  AgentAddresses,
  internal.makeSql
)
