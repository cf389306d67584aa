/**
 * A fleet of workspace agents, each a real TCP server on 127.0.0.1.
 *
 * An agent speaks a line protocol: the client sends `hello <nonce>` (a fresh
 * random nonce per dial), the agent answers `agent <agentId> <proof>`, where
 * the proof is HMAC-SHA256 of `<nonce> <agentId>` under the agent's own secret;
 * then each `turn <text>` is answered with `ok <agentId> <workspaceId> <text>`,
 * and each `ping` with `pong` (the probe of a connection kept across turns: no
 * turn, and no identity, which the handshake proved). With `dialLatency` each
 * agent holds its handshake answer back that long, the cost of a handshake
 * through a tunnel; pings and turns answer at once.
 * Naming itself lets a dialer notice that a reused port now belongs to another
 * agent; the proof lets it refuse a process that only claims the name (an
 * impostor on a freed port, or one replaying an old answer). Each agent's
 * secret is made when it starts, kept by the fleet, and recorded where only
 * the service's database role can read it (`AgentAddresses`); it never
 * crosses the wire.
 *
 * A retired agent either dies (its port refuses connections: the fast-failure
 * path), hangs (it accepts and never answers: the slow path), dies and its
 * port is taken by the workspace's next agent (a dial of the old agent reaches
 * the wrong one and must fail; with `retire(old, "reuse_port", next)` the next
 * agent takes over the old listener, so the port is never free in between),
 * or crashes in the middle of every handshake
 * (`die_mid_handshake`: it accepts, reads the `hello`, and resets the
 * connection before answering, like a process killed between `accept` and
 * `write`).
 *
 * The fleet also keeps the address book (agent id to port) that a dialer needs,
 * like the tailnet address a real deployment would use. Addresses of retired
 * agents stay in the book, as stale addresses do; of the dead ones, the
 * 10,000 most recent (older ones are forgotten, so the book does not grow
 * with every rebuild). Hung agents stay, listening, for the life of the fleet.
 *
 * @since 0.1.0
 */
import type { AgentId, BuildId, WorkspaceId } from "@lazydial/core"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as Redacted from "effect/Redacted"
import * as internal from "./internal/fleet.js"

/**
 * How a retired agent behaves after a rebuild.
 *
 * @since 0.1.0
 * @category models
 */
export const retireModes = ["die", "hang", "reuse_port", "die_mid_handshake"] as const

/**
 * @since 0.1.0
 * @category models
 */
export type RetireMode = typeof retireModes[number]

/**
 * The modes a scheduled rebuild draws from (`fleet --rebuild-rate`, and the
 * rebuilds `cluster` sends while it measures): `die_mid_handshake` is left
 * to its own tests.
 *
 * @since 0.1.0
 * @category models
 */
export const scheduledRetireModes = ["die", "hang", "reuse_port"] as const satisfies ReadonlyArray<RetireMode>

/**
 * How a stopped workspace's agent behaves: it dies, or hangs (the case where a
 * bound chat learns of the stop only from a lookup).
 *
 * @since 0.1.0
 * @category models
 */
export const stopModes = ["die", "hang"] as const satisfies ReadonlyArray<RetireMode>

/**
 * @since 0.1.0
 * @category models
 */
export type StopMode = typeof stopModes[number]

/**
 * @since 0.1.0
 * @category models
 */
export interface AgentInfo {
  readonly agentId: AgentId
  readonly buildId: BuildId
  readonly workspaceId: WorkspaceId
  readonly port: number
  /** The agent's own secret, that it proves it holds in every handshake. */
  readonly secret: Redacted.Redacted<Uint8Array>
}

/**
 * Counters of the agents' side of every connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface FleetStats {
  readonly agentsStarted: number
  readonly died: number
  readonly hung: number
  readonly portsReused: number
  /** Agents retired with `die_mid_handshake`. */
  readonly diedMidHandshake: number
  /** Handshakes cut by an agent that died in the middle of them. */
  readonly handshakesCut: number
  readonly accepted: number
  /** Accepted sockets not yet closed. 0 once the fleet is shut down. */
  readonly acceptedOpen: number
  /**
   * Of those, the sockets of retired agents (hung or crashing ones keep
   * theirs open until their client closes them): a client that still holds
   * a connection to an agent its workspace no longer runs.
   */
  readonly retiredOpen: number
  readonly listening: number
  /** Workspaces whose change is in flight or waited for (`exclusive`); 0 when none is. */
  readonly workspaceLocks: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Fleet extends Context.Service<
  Fleet,
  {
    /** Starts a new agent for the workspace on a fresh port, or on `port` when given. */
    readonly start: (workspaceId: WorkspaceId, port?: number) => Effect.Effect<AgentInfo>
    /**
     * Retires an agent. With `reuse_port` and a `successor`, the successor
     * takes over the old agent's listener (a dial of the old id reaches it);
     * with `reuse_port` alone the port is freed, for the caller to start the
     * next agent on it.
     */
    readonly retire: (agentId: AgentId, mode: RetireMode, successor?: AgentId) => Effect.Effect<void>
    /** Where an agent listens (or listened): the address book. */
    readonly portOf: (agentId: AgentId) => Option.Option<number>
    readonly info: (agentId: AgentId) => Option.Option<AgentInfo>
    /** The workspace's agents that still serve (not retired), oldest first. */
    readonly serving: (workspaceId: WorkspaceId) => ReadonlyArray<AgentInfo>
    /**
     * Runs `effect` as the only change of this workspace's agents in flight:
     * a rebuild, stop, start or settle of one workspace waits for the one
     * before it, so none retires an agent that another is recording.
     */
    readonly exclusive: (
      workspaceId: WorkspaceId
    ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    /**
     * Marks a workspace whose change failed after its agents changed (a new
     * agent started, or a stop asked): which of its agents the directory
     * holds is not known until it answers. `ControlPlane.settle` finds out.
     */
    readonly unsettle: (workspaceId: WorkspaceId) => Effect.Effect<void>
    readonly settled: (workspaceId: WorkspaceId) => Effect.Effect<void>
    /** The workspaces marked by `unsettle` and not yet settled. */
    readonly unsettled: Effect.Effect<ReadonlyArray<WorkspaceId>>
    readonly stats: Effect.Effect<FleetStats>
  }
>()("@lazydial/service/Fleet") {}

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /**
   * How long every agent holds back its handshake answer: what a dial costs
   * through a tunnel (tens to hundreds of milliseconds in a real deployment).
   * Default 0: the localhost dial, about 1 ms.
   */
  readonly dialLatency?: Duration.Input | undefined
}

/**
 * The most `Options.dialLatency` may be: past a minute it is no tunnel's cost.
 *
 * @since 0.2.0
 * @category constants
 */
export const maxDialLatency: Duration.Duration = internal.maxDialLatency

/**
 * A fleet whose agents all stop (servers closed, sockets destroyed) when the
 * Layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Fleet> = Layer.effect(Fleet, internal.make)

/**
 * The counters of a fleet, read after its Layer is released. Shares the
 * counters with `layerWith`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeCounters = internal.makeCounters

/**
 * A fleet that reports into the given counters, so they can be read after
 * the fleet is gone.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWith = (counters: internal.FleetCounters, options?: Options): Layer.Layer<Fleet> =>
  Layer.effect(Fleet, internal.makeWith(counters, options))

/**
 * The figures of a fleet's counters (`makeCounters`), as `Fleet.stats` gives
 * them: for a report made after the fleet is gone.
 *
 * @since 0.2.0
 * @category accessors
 */
export const snapshot: (counters: ReturnType<typeof makeCounters>) => FleetStats = internal.snapshot
