/**
 * The wiring of the service: which Layers make up one running instance.
 *
 * ```
 * Database (PGlite in memory, or PostgreSQL) ─► BindingStore.layerSql
 *                                            └► AgentDirectory.layerSql ─► AgentLookup ─┐
 *          Database.Listener ─► RebuildNotices.layerSql ─► AgentDirectory (lookup answers feed the view)
 *                                                       └► ChatConnector (its view of current agents)
 * AgentAddresses (the fleet's map, or SQL) ─► SocketDialer (AgentDialer) ──────────────┤
 *                      Faults.layerConfig (core; passes through unless `Options.faults` is on)
 *                      ─► AgentDialer + AgentLookup ─► Probe.layerLookup (counts)
 * AgentDialer ─► SharedConnections.layer (core; probe: SocketDialer.probe; off: skipped)
 *             ─► AgentDialer (shared) + SharedConnections
 * AgentDialer (shared) + AgentLookup ─► LazyDial.layer (core)
 * BindingStore + LazyDial + AgentLookup (+ SharedConnections) ─► ChatConnector.layer (binding) ─► Chats
 * AgentDirectory + AgentAddresses ─► ControlPlane.layerDirectory (rebuilds write the current agent here)
 * Database ─► ChatOwners.layerSql (who created each chat: the HTTP API's ownership rule)
 * ```
 *
 * Three shapes: `layer` is the one-process run (fleet, addresses in its
 * memory); `layerReplica` is a `serve` process (no agents, addresses from the
 * database); `layerFleet` is the `fleet` process (agents, addresses written to
 * the database, no chats).
 *
 * @since 0.1.0
 */
import { AgentDirectory, BindingStore, ChatConnector, type Database, RebuildNotices } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import { type AgentDialer, type AgentLookup, Faults, LazyDial, SharedConnections } from "@lazydial/core"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as SqlClient from "effect/sql/SqlClient"
import * as AgentAddresses from "./AgentAddresses.js"
import * as ChatOwners from "./ChatOwners.js"
import * as Chats from "./Chats.js"
import * as ControlPlane from "./ControlPlane.js"
import * as Fleet from "./Fleet.js"
import * as Probe from "./Probe.js"
import type * as Settings from "./Settings.js"
import * as SocketDialer from "./SocketDialer.js"

/**
 * Counters that outlive one instance, read for the report after it is shut
 * down.
 *
 * @since 0.1.0
 * @category models
 */
export interface Counters {
  readonly fleet: ReturnType<typeof Fleet.makeCounters>
  readonly dialer: ReturnType<typeof SocketDialer.makeCounters>
  readonly probe: Probe.ProbeCounters
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeCounters = (): Counters => ({
  fleet: Fleet.makeCounters(),
  dialer: SocketDialer.makeCounters(),
  probe: Probe.makeCounters()
})

/**
 * Agent connections kept across turns (core's `SharedConnections`): one per
 * agent per replica, borrowed by every turn of a chat bound to that agent.
 * The times are core's options, their defaults core's `SharedConnections.defaults`
 * (1 minute, 10 seconds, 1 second).
 *
 * @since 0.2.0
 * @category models
 */
export interface SharedConnectionSettings {
  /** Default true. Off: every turn dials its own connection and closes it after the turn (before issue 20). */
  readonly enabled?: boolean | undefined
  /** How long a connection no turn borrows stays open. */
  readonly idleTimeToLive?: Duration.Input | undefined
  /**
   * A borrow after this long without a use first probes the connection
   * (`SocketDialer.probe`: `ping`, `pong`). Default core's (10 s) with
   * notices, 0 (every borrow) without: see `sharedConnectionOptions`.
   */
  readonly probeAfterIdle?: Duration.Input | undefined
  /** The bound of that probe: past it the connection is dropped and the turn dials afresh. */
  readonly probeTimeout?: Duration.Input | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The fixed delay; with `delayMode: "adaptive"`, the learned delay's starting value. */
  readonly validationDelay: Duration.Input
  /**
   * `"adaptive"`: core's learned delay (`LazyDial.layer({ delay: "adaptive" })`),
   * starting at `validationDelay` and learned between 50 ms and half the dial
   * timeout (see `adaptiveCeiling`). Default `"fixed"`.
   */
  readonly delayMode?: typeof LazyDial.delayModes[number] | undefined
  readonly dialTimeout: Duration.Input
  /**
   * Rebuild notices (`RebuildNotices.layerSql`, LISTEN/NOTIFY on PGlite and
   * PostgreSQL alike); default on. Off, every stale binding waits out the
   * validation delay: the report can then show lazy validation alone.
   */
  readonly notices?: boolean | undefined
  /** binding's `ChatConnector` admission: connects in progress at once (default binding's, 256). */
  readonly maxInFlight?: number | undefined
  /** binding's `ChatConnector` view: workspaces it keeps (default binding's, 10,000). */
  readonly viewSize?: number | undefined
  /** binding's `AgentDirectory`: how long a batch of lookups collects (default binding's, 5 ms). */
  readonly batchWindow?: Duration.Input | undefined
  /** core's fault injection (`Faults.layerConfig`); default off. */
  readonly faults?: Faults.ConfigOptions | undefined
  /**
   * Connections kept across turns; default on with core's times. The
   * "latest" strategy never shares: it dials per turn, as the baseline.
   */
  readonly sharedConnections?: SharedConnectionSettings | undefined
  /**
   * `layer` only (the one-process run, whose fleet runs here): how long each
   * agent holds back its handshake answer (`Fleet.Options.dialLatency`).
   * Default 0. A replica has no agents: the `fleet` process takes its own.
   */
  readonly dialLatency?: Duration.Input | undefined
}

/**
 * What the service needs of a database Layer: a client, the migrations run,
 * and a listener for rebuild notices.
 *
 * @since 0.1.0
 * @category models
 */
export type DatabaseServices = SqlClient.SqlClient | Database.Listener | Database.Migrated

/**
 * The database: PostgreSQL when a URL is given, else PGlite in memory.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDatabase = (
  databaseUrl: string | undefined
): Layer.Layer<DatabaseServices> => layerDatabaseEither(Option.fromNullishOr(databaseUrl)).pipe(Layer.orDie)

/**
 * The database, failing (not dying) when it cannot start, for a process to
 * report: PostgreSQL with binding's settings (`Settings.database`, PostgreSQL
 * only), else PGlite in memory.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDatabaseEither = (
  databaseUrl: Option.Option<string>,
  settings?: Settings.DatabaseSettings
): Layer.Layer<DatabaseServices, Database.StartError> =>
  Option.match(databaseUrl, {
    onNone: () => PgliteDatabase.layerPglite(),
    onSome: (url) => PgDatabase.layerPg(url, settings)
  })

/**
 * Chats, dialer, counted lookups and control plane, over a database and an
 * address book.
 *
 * Core's `Faults.layerConfig` sits between the real dialer and lookup and
 * everything that uses them (`LazyDial`, `ChatConnector`, and the "latest"
 * strategy, which reads the same Tags): with `Options.faults` on (the service
 * reads `LAZYDIAL_FAULTS`, `Settings.faults`) a staging run injects faults
 * without a code change; otherwise it passes the services through. It wraps
 * the real services, so the dialer's own counters keep counting only what the
 * sockets did; `Probe` wraps it, so a lookup the turn path asked for is
 * counted even when the fault layer answered it.
 *
 * One `RebuildNotices` Layer sits below both the directory (its lookup answers
 * feed the view) and the connector (which keeps the view); `layerNone` when
 * notices are off. The "latest" strategy never reads the view: its turns
 * look up and dial as before, whichever Layer is chosen.
 *
 * With `Options.sharedConnections` on (the default, lazydial only), core's
 * `SharedConnections` sits above the fault layer and below `LazyDial`, and in
 * the connector's context, which drops a retired agent's connection when its
 * view learns of it; the socket dialer tells an agent's hang-ups to a queue
 * of the instance's, whose consumer drops that agent's connection at once.
 */
/**
 * The most the learned delay may grow to: half the dial timeout. On a busy
 * machine every dial slows down and the delay must be free to grow with them,
 * past the starting value, or steady-state turns start looking up (with the
 * ceiling at a 500 ms starting value and both cores saturated, a quarter of
 * them did). It stays below the timeout so that a turn that waits out the
 * whole delay for a hung agent still has half its budget to look up and dial
 * the current one, instead of timing out.
 *
 * @since 0.1.0
 * @category constructors
 */
export const adaptiveCeiling = (dialTimeout: Duration.Input): Duration.Duration =>
  Duration.millis(Duration.toMillis(dialTimeout) / 2)

/**
 * The `LazyDial.layer` options of an instance: the fixed delay, or the
 * adaptive one with its starting value and its range.
 *
 * @since 0.1.0
 * @category constructors
 */
export const lazyDialOptions = (
  options: Pick<Options, "validationDelay" | "delayMode" | "dialTimeout">
): Parameters<typeof LazyDial.layer>[0] => {
  const delay = Duration.fromInputUnsafe(options.validationDelay)
  if (options.delayMode !== "adaptive") return { delay }
  const max = adaptiveCeiling(options.dialTimeout)
  const initial = Duration.min(delay, max)
  // Twice the p99 rather than core's three times: a turn of a hung agent waits
  // the whole delay, so the factor is the p99's multiple over a healthy dial.
  // Over 3 runs each (docs/performance.md), 2 kept steady-state lookups at 0
  // with both cores saturated and cut the p99 ratio to latest from 6.4 to 4.6
  // there; a healthy dial slower than twice the p99 is rarer than 1 in 100.
  return {
    delay: "adaptive",
    adaptive: { initial, max, min: Duration.min(initial, LazyDial.adaptiveDefaults.min), factor: 2 }
  }
}

/**
 * Whether an instance shares agent connections across turns: on unless
 * `Options.sharedConnections.enabled` is false, and never for the "latest"
 * strategy, the baseline that dials per turn.
 *
 * @since 0.2.0
 * @category constructors
 */
export const sharesConnections = (options: Pick<Options, "sharedConnections">, strategy: Chats.Strategy): boolean =>
  strategy === "lazydial" && options.sharedConnections?.enabled !== false

/**
 * The `SharedConnections.layer` options of an instance: its times (the
 * probe's idle time 0 when notices are off, unless set), and the socket
 * dialer's `ping` as the probe.
 *
 * @since 0.2.0
 * @category constructors
 */
export const sharedConnectionOptions = (
  options: Pick<Options, "sharedConnections" | "notices">
): SharedConnections.Options => {
  const settings = options.sharedConnections
  return {
    idleTimeToLive: settings?.idleTimeToLive,
    // Without notices nothing tells a replica that an agent which stays alive (a hung one) was retired, but lazy
    // validation: a probe on every borrow gives it what a dial gave it, an answer to wait for. A borrow's probe runs
    // inside `LazyDial`'s dial, so an unanswered one is raced by the validation delay, and the turn looks up and
    // switches as it did with a dial per turn. The price is a round trip per turn. With notices the view drops a
    // retired agent's connection, and a connection is probed only after core's idle time.
    probeAfterIdle: settings?.probeAfterIdle ?? (options.notices === false ? Duration.zero : undefined),
    probeTimeout: settings?.probeTimeout,
    probe: SocketDialer.probe
  }
}

// LazyDial over the shared connections, which wrap the dialer below them (the faulted one): a borrow is no dial,
// so it meets no dial fault, as a real borrow meets no handshake; a dial that opens a connection meets them as any
// dial does. Above the fault layer, every borrow would pay an injected latency that no socket pays, and an injected
// failure would fail a turn without dropping the connection. `SharedConnections` is merged in for the connector,
// which drops a superseded agent's connection when its view learns of it; the "latest" strategy reads the Tags of
// `base`, below all this, and dials per turn.
const dialing = (options: Options, hangups: Layer.Layer<SocketDialer.Hangups> | undefined) => {
  const lazyDial = LazyDial.layer(lazyDialOptions(options))
  if (hangups === undefined) return lazyDial
  const shared = SharedConnections.layer(sharedConnectionOptions(options))
  const drop = dropOnHangup().pipe(Layer.provide(shared), Layer.provide(hangups))
  return lazyDial.pipe(Layer.provideMerge(Layer.merge(shared, drop)))
}

// An agent that hangs up on a kept connection (it died, or left its port) has it dropped at once: the next turn
// dials, and meets whatever the agent has become (a refusal, another agent), through the outcome table, instead of
// borrowing a closed socket and failing at its exchange. The fiber is the Layer's: it ends with the instance. A new
// Layer per instance: a shared one could be memoized into an instance whose queue it does not take from.
const dropOnHangup = (): Layer.Layer<never, never, SocketDialer.Hangups | SharedConnections.SharedConnections> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const { queue } = yield* SocketDialer.Hangups
    const shared = yield* SharedConnections.SharedConnections
    yield* Effect.forkScoped(Effect.forever(Effect.flatMap(Queue.take(queue), shared.invalidate)))
  }))

const chatsOver = (options: Options, counters: Counters, strategy: Chats.Strategy = "lazydial") => {
  const notices = options.notices === false ? RebuildNotices.layerNone : RebuildNotices.layerSql
  const directory = AgentDirectory.layerSql({ batchWindow: options.batchWindow }).pipe(Layer.provideMerge(notices))
  const control = ControlPlane.layerDirectory.pipe(Layer.provide(directory))
  // one queue of hang-ups per instance, between its dialer and its shared connections (none when it does not share)
  const hangups = sharesConnections(options, strategy)
    ? Layer.effect(SocketDialer.Hangups, SocketDialer.makeHangups)
    : undefined
  const dialer = hangups === undefined
    ? SocketDialer.layer(counters.dialer)
    : SocketDialer.layer(counters.dialer).pipe(Layer.provide(hangups))
  const real = Layer.merge(dialer, directory)
  // the plan as read (`Settings.faults`), or none: core's layer passes the services through when it is off
  const faulted = Faults.layerConfig(Config.succeed(options.faults ?? { enabled: false })).pipe(Layer.provide(real))
  // provideMerge: the probe's AgentLookup replaces the one it wraps; the dialer passes on
  const services = Probe.layerLookup(counters.probe).pipe(Layer.provideMerge(faulted))
  // the same `notices` value as the directory's: a Layer is built once per instance, so both share one
  const base = Layer.mergeAll(services, control, notices, ChatOwners.layerSql)
  const connector = ChatConnector.layer({
    dialTimeout: options.dialTimeout,
    maxInFlight: options.maxInFlight,
    viewSize: options.viewSize
  }).pipe(
    Layer.provide(dialing(options, hangups)),
    Layer.provideMerge(BindingStore.layerSql())
  )
  const chats = strategy === "lazydial" ? Chats.layer : Chats.layerLatest({ dialTimeout: options.dialTimeout })
  return Layer.provide(chats, connector).pipe(Layer.provideMerge(base))
}

/**
 * The one-process instance: agents in this process, on top of a database. A
 * migration or option error at start is a defect: the run cannot go on
 * without them.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options,
  counters: Counters,
  strategy: Chats.Strategy = "lazydial"
): Layer.Layer<
  | Fleet.Fleet
  | AgentAddresses.AgentAddresses
  | ControlPlane.ControlPlane
  | AgentDialer.AgentDialer
  | AgentLookup.AgentLookup
  | RebuildNotices.RebuildNotices
  | Chats.Chats
  | ChatOwners.ChatOwners,
  never,
  DatabaseServices
> =>
  chatsOver(options, counters, strategy).pipe(
    Layer.provideMerge(AgentAddresses.layerFleet),
    Layer.provideMerge(Fleet.layerWith(counters.fleet, { dialLatency: options.dialLatency })),
    Layer.orDie,
    Layer.tapCause(Effect.logError)
  )

/**
 * A `serve` replica: chats and the turn path, dialing agents at the
 * addresses the `fleet` recorded in the database. A start-up error (the
 * database refuses, a bad setting) fails the Layer, for the CLI to report.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerReplica = (options: Options, counters: Counters, strategy: Chats.Strategy = "lazydial") =>
  chatsOver(options, counters, strategy).pipe(Layer.provideMerge(AgentAddresses.layerSql))

/**
 * The `fleet` process: agents, their addresses and builds written to the
 * database. It serves no chats.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFleet = (counters: Counters, options?: Fleet.Options) =>
  ControlPlane.layerDirectory.pipe(
    Layer.provide(AgentDirectory.layerSql()),
    Layer.provideMerge(AgentAddresses.layerSql),
    Layer.provideMerge(Fleet.layerWith(counters.fleet, options))
  )
