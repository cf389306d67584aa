/**
 * Agent connections shared across turns: one live connection per agent, lent
 * to every turn that dials that agent, counted by reference, and closed after
 * an idle time (an `RcMap` keyed by agent id).
 *
 * `layer` wraps an `AgentDialer`: a turn that dials an agent with a live
 * connection borrows it (no dial, no handshake), and gives it back when its
 * Scope closes. Used under `LazyDial`, a borrowed connection is a dial that is
 * ready at once, so a steady-state turn is the `fast` outcome with no dial at
 * all, and every other row of the outcome table is unchanged: a connection
 * that turns out dead fails its use or its probe, is dropped, and the next dial
 * opens a fresh one.
 *
 * A connection is dropped at once (closed when its last borrower gives it
 * back):
 *
 * - when a use of it fails (an `exchange` error);
 * - when its probe fails: a borrow after it was idle for `probeAfterIdle` runs
 *   `probe` first, bounded by `probeTimeout`;
 * - when the caller says so with `invalidate` (for example when the directory
 *   says its agent was superseded or stopped).
 *
 * A connection being opened is shared too, for at most `openTimeout` from the
 * start of its dial: a handshake that hangs is then dropped, and the turns
 * waiting on it share one fresh dial, instead of each waiting out its own
 * timeout behind it.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import { type AgentConnection, AgentDialer } from "./AgentDialer.js"
import type { AgentDialError, InvalidOption } from "./Errors.js"
import type { AgentId } from "./Ids.js"
import * as internal from "./internal/sharedConnections.js"
import { boundedDuration, boundedNumber } from "./Options.js"

/**
 * Control of the shared connections.
 *
 * @since 0.2.0
 * @category tags
 */
export class SharedConnections extends Context.Service<SharedConnections, {
  /** Drops the agent's connection: closed now if nobody borrows it, else when its last borrower gives it back. */
  readonly invalidate: (agentId: AgentId) => Effect.Effect<void>
  /** How many agents have a live (or opening) connection. */
  readonly open: Effect.Effect<number>
}>()("@lazydial/core/SharedConnections") {}

/**
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** How long a connection nobody borrows stays open; default 1 minute. */
  readonly idleTimeToLive?: Duration.Input | undefined
  /** A borrow after this long without a use probes the connection first; default 10 seconds. */
  readonly probeAfterIdle?: Duration.Input | undefined
  /** The bound of a probe; default 1 second. */
  readonly probeTimeout?: Duration.Input | undefined
  /**
   * How long a borrower waits for a connection being opened (a dial another turn began) before it drops that
   * dial and opens a fresh one, once; default 1 second. Set it above the slowest healthy handshake.
   */
  readonly openTimeout?: Duration.Input | undefined
  /** A cheap round trip that fails when the connection is dead; default: none (no probe). */
  readonly probe?: ((connection: AgentConnection) => Effect.Effect<unknown, AgentDialError>) | undefined
  /** The most agents with a live connection; past it a dial is the caller's own; default 10,000. */
  readonly capacity?: number | undefined
}

/**
 * The defaults of `Options`.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaults = {
  idleTimeToLive: Duration.minutes(1),
  probeAfterIdle: Duration.seconds(10),
  probeTimeout: Duration.seconds(1),
  openTimeout: Duration.seconds(1),
  capacity: 10_000
} as const

const maxDuration = Duration.hours(24)

/**
 * Counters: dials made to open a shared connection, borrows (dials included),
 * and connections dropped before their idle time.
 *
 * @since 0.2.0
 * @category metrics
 */
export const metrics: {
  readonly dials: Metric.Counter<number>
  readonly borrows: Metric.Counter<number>
  readonly drops: Metric.Counter<number>
} = { dials: internal.dials, borrows: internal.borrows, drops: internal.drops }

/**
 * An `AgentDialer` that shares connections, over the `AgentDialer` it is given,
 * and `SharedConnections` to control them. The connections are closed when the
 * Layer's Scope is. Options out of range fail the Layer with `InvalidOption`.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<AgentDialer | SharedConnections, InvalidOption, AgentDialer> =>
  Layer.effectContext(Effect.gen(function*() {
    const settings: internal.Settings = {
      idleTimeToLive: yield* boundedDuration(
        "idleTimeToLive",
        options?.idleTimeToLive ?? defaults.idleTimeToLive,
        maxDuration
      ),
      probeAfterIdle: yield* boundedDuration(
        "probeAfterIdle",
        options?.probeAfterIdle ?? defaults.probeAfterIdle,
        maxDuration
      ),
      probeTimeout: yield* boundedDuration(
        "probeTimeout",
        options?.probeTimeout ?? defaults.probeTimeout,
        maxDuration,
        {
          allowZero: false
        }
      ),
      openTimeout: yield* boundedDuration(
        "openTimeout",
        options?.openTimeout ?? defaults.openTimeout,
        maxDuration,
        { allowZero: false }
      ),
      probe: options?.probe,
      capacity: yield* boundedNumber("capacity", options?.capacity ?? defaults.capacity, 1, 1_000_000, {
        integer: true
      })
    }
    const { dialer, shared } = yield* internal.make(settings)
    return Context.make(AgentDialer, dialer).pipe(Context.add(SharedConnections, SharedConnections.of(shared)))
  }))
