/**
 * The wiring of the service: which Layers make up one running instance.
 *
 * ```
 * Fleet ─────────────► SocketDialer (AgentDialer) ─┐
 * ControlPlane ──────► AgentLookup ─► Probe.layerLookup ─┤
 *                                                  ├─► LazyDial.layer ─► Probe.layerLazyDial ─┐
 *                                                  └──────────────────────────────────────────┴─► Chats
 * ```
 *
 * @since 0.1.0
 */
import { type AgentDialerTag, type AgentLookupTag, type InvalidOption, LazyDial } from "@lazydial/core"
import type * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"
import { Chats } from "./Chats.js"
import * as ControlPlane from "./ControlPlane.js"
import * as Fleet from "./Fleet.js"
import * as interimChats from "./internal/interimChats.js"
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
 * Everything one instance needs: agents, control plane, dialer, counted
 * lookups, and the chats with their turn path.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options,
  counters: Counters
): Layer.Layer<Fleet.Fleet | ControlPlane.ControlPlane | AgentDialerTag | AgentLookupTag | Chats, InvalidOption> => {
  const fleet = Fleet.layerWith(counters.fleet)
  const dialer = SocketDialer.layer(counters.dialer).pipe(Layer.provideMerge(fleet))
  const lookup = Probe.layerLookup(counters.probe).pipe(Layer.provideMerge(ControlPlane.layerMemory))
  const base = Layer.merge(dialer, lookup)
  const lazyDial = Probe.layerLazyDial.pipe(Layer.provide(LazyDial.layer({ delay: options.validationDelay })))
  const chats = Layer.effect(Chats, interimChats.make({ dialTimeout: options.dialTimeout })).pipe(
    Layer.provide(lazyDial)
  )
  return chats.pipe(Layer.provideMerge(base))
}
