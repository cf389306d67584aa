/**
 * The Layer form: services compose `LazyDial` from an `AgentDialer` and an
 * `AgentLookup`, and swap those for production, staging or tests. Typechecked
 * with the package, so docs/core.md stays true.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Faults, LazyDial, Options, SharedConnections } from "../src/index.js"
import type { AgentDialer, AgentId, AgentLookup, WorkspaceId } from "../src/index.js"
import { layerTest } from "../src/testing.js"

// Your production dialer and lookup, as Layers.
declare const dialerLive: Layer.Layer<AgentDialer.AgentDialer>
declare const lookupLive: Layer.Layer<AgentLookup.AgentLookup>

// Production: the delay from a variable you name (default 5 s), and the fault
// layer, which passes through unless its switch is on (staging).
export const LazyDialLive = LazyDial.layerConfig({
  delay: Options.optional(LazyDial.delayConfig("LAZYDIAL_VALIDATION_DELAY"))
}).pipe(
  Layer.provide(Faults.layerConfig({
    enabled: Faults.enabledConfig("LAZYDIAL_FAULTS"),
    dial: Options.optional(Faults.dialConfig("LAZYDIAL_FAULTS_DIAL")),
    lookup: Options.optional(Faults.lookupConfig("LAZYDIAL_FAULTS_LOOKUP"))
  })),
  Layer.provide(Layer.merge(dialerLive, lookupLive))
)

// Connections kept across turns: LazyDial dials through the shared dialer (a
// steady-state turn borrows the agent's live connection), and SharedConnections
// stays in the output, for whoever drops a retired agent's connection
// (binding's ChatConnector does).
export const LazyDialShared = LazyDial.layer({ delay: "500 millis" }).pipe(
  Layer.provideMerge(SharedConnections.layer({ probe: (connection) => connection.exchange("ping") })),
  Layer.provide(Layer.merge(dialerLive, lookupLive))
)

// Tests: scripted agents on the Effect clock.
export const LazyDialTest = LazyDial.layer({ delay: "100 millis" }).pipe(Layer.provideMerge(layerTest))

// A turn: the connection lives in the turn's Scope.
export const turn = (agentId: AgentId, workspaceId: WorkspaceId) =>
  Effect.gen(function*() {
    const lazyDial = yield* LazyDial.LazyDial
    const result = yield* lazyDial.dial({ agentId, workspaceId })
    if (result.switched && result.current._tag === "Some") {
      // persist result.current.value: { agentId, buildId }, from the same lookup
    }
    return yield* result.connection.exchange("hello")
  }).pipe(Effect.scoped)
