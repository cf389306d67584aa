/**
 * The service that opens a connection to one agent.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { AgentDialError } from "./Errors.js"
import type { AgentId } from "./Ids.js"

/**
 * An open connection to an agent. It lives in the Scope it was dialed in and
 * is closed by that scope's finalizer; there is no `close()` to forget.
 *
 * @since 0.1.0
 * @category models
 */
export interface AgentConnection {
  /** The agent that answered the handshake. */
  readonly agentId: AgentId
  /** Unique per dial, for logs and connection ledgers. */
  readonly connectionId: string
  /** Sends one request and waits for the agent's reply. */
  readonly exchange: (request: string) => Effect.Effect<string, AgentDialError>
}

/**
 * Dials agents. Production dials real sockets; staging wraps a dialer with
 * faults; tests script agents on the Effect clock (`@lazydial/core/testing`).
 *
 * @since 0.1.0
 * @category tags
 */
export class AgentDialer extends Context.Service<AgentDialer, {
  /** The connection is released by a finalizer of the Scope it is dialed in. */
  readonly dial: (agentId: AgentId) => Effect.Effect<AgentConnection, AgentDialError, Scope.Scope>
}>()("@lazydial/core/AgentDialer") {}
