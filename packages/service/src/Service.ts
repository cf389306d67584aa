/**
 * The wiring of the service: which Layers make up one running instance.
 *
 * ```
 * Database (PGlite in memory, or PostgreSQL) ─► BindingStore.layerSql
 *                                            └► AgentDirectory.layerSql ─► AgentLookup ─┐
 * Fleet (TCP agents) ─► SocketDialer (AgentDialer) ────────────────────────────────────┤
 *                      Faults.layerConfig (core; passes through unless LAZYDIAL_FAULTS=on)
 *                      ─► AgentDialer + AgentLookup ─► Probe.layerLookup (counts)
 * AgentDialer + AgentLookup ─► LazyDial.layer (core)
 * BindingStore + LazyDial + AgentLookup ─► ChatConnector.layer (binding) ─► Chats (the service's seam)
 * AgentDirectory ─► ControlPlane.layerDirectory (rebuilds write the current agent here)
 * ```
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { AgentDirectory, BindingStore, ChatConnector, Database } from "@lazydial/binding"
import { type AgentDialer, type AgentLookup, Faults, LazyDial } from "@lazydial/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Chats from "./Chats.js"
import * as ControlPlane from "./ControlPlane.js"
import * as Fleet from "./Fleet.js"
import * as Probe from "./Probe.js"
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
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly validationDelay: Duration.DurationInput
  readonly dialTimeout: Duration.DurationInput
}

/**
 * The database: PostgreSQL when a URL is given, else PGlite in memory.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDatabase = (
  databaseUrl: string | undefined
): Layer.Layer<SqlClient.SqlClient | Database.Migrated> =>
  (databaseUrl === undefined ? Database.layerPglite() : Database.layerPg(databaseUrl)).pipe(Layer.orDie)

/**
 * Everything one instance needs on top of a database: agents, control plane,
 * dialer, counted lookups, and the chats with their turn path. A migration or
 * option error at start is a defect: the service cannot run without them.
 *
 * Core's `Faults.layerConfig` sits between the real dialer and lookup and
 * everything that uses them (`LazyDial`, `ChatConnector`, and the "latest"
 * strategy, which reads the same Tags): with `LAZYDIAL_FAULTS=on` a staging
 * run injects faults without a code change; otherwise it passes the services
 * through. It wraps the real services, so the dialer's own counters keep
 * counting only what the sockets did; `Probe` wraps it, so a lookup the turn
 * path asked for is counted even when the fault layer answered it. A bad
 * `LAZYDIAL_FAULTS_*` value fails the instance at start, naming the variable.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options,
  counters: Counters
): Layer.Layer<
  Fleet.Fleet | ControlPlane.ControlPlane | AgentDialer.AgentDialer | AgentLookup.AgentLookup | Chats.Chats,
  never,
  SqlClient.SqlClient | Database.Migrated
> => {
  const directory = AgentDirectory.layerSql()
  const control = ControlPlane.layerDirectory.pipe(Layer.provide(directory))
  const fleet = Fleet.layerWith(counters.fleet)
  const real = Layer.merge(SocketDialer.layer(counters.dialer), directory)
  const faulted = Faults.layerConfig.pipe(Layer.provide(real))
  // provideMerge: the probe's AgentLookup replaces the one it wraps; the dialer passes on
  const services = Probe.layerLookup(counters.probe).pipe(Layer.provideMerge(faulted))
  const base = Layer.mergeAll(services, control).pipe(Layer.provideMerge(fleet))
  const store = BindingStore.layerSql
  const connector = ChatConnector.layer({ dialTimeout: options.dialTimeout }).pipe(
    Layer.provide(LazyDial.layer({ delay: Duration.decode(options.validationDelay) })),
    Layer.provideMerge(store)
  )
  return Layer.provide(Chats.layer, connector).pipe(
    Layer.provideMerge(base),
    Layer.orDie,
    Layer.tapErrorCause(Effect.logError)
  )
}
