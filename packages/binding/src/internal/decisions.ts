import { LazyDial } from "@lazydial/core"
import type * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"

/**
 * How a turn that connected ended: core's outcomes, then binding's own
 * paths. Every other list of them (types, Schemas, metric labels, span
 * attributes) is derived from this one.
 *
 * @internal
 */
export const turnOutcomes = [...LazyDial.outcomes, "lazy_bind", "switched_by_notice"] as const

/** @internal */
export type TurnOutcome = typeof turnOutcomes[number]

/**
 * What the last binding write of a connect did.
 *
 * @internal
 */
export const writeResults = ["none", "recorded", "lost"] as const

/** @internal */
export type WriteResult = typeof writeResults[number]

/**
 * What a replica's view says of a chat's stored binding (`ChatConnector.read`).
 *
 * @internal
 */
export const bindingStates = ["current", "stale", "stopped", "unknown", "unbound"] as const

/** @internal */
export type BindingState = typeof bindingStates[number]

/** @internal */
export const turnsTotal = Metric.counter("lazydial_binding_turns_total", {
  description: "Chat connects that connected, by how the turn ended (outcome) and what its binding write did (write)",
  incremental: true
})

// One metric per pair of labels, built once from the two lists.
const turnCounters = Object.fromEntries(turnOutcomes.map((outcome) => [
  outcome,
  Object.fromEntries(writeResults.map((write) => [write, Metric.withAttributes(turnsTotal, { outcome, write })]))
])) as Record<TurnOutcome, Record<WriteResult, Metric.Counter<number>>> // safe: built from both full lists

/**
 * Counts a turn that connected, and labels the current span with how it ended.
 *
 * @internal
 */
export const countTurn = (outcome: TurnOutcome, write: WriteResult): Effect.Effect<void> =>
  Metric.update(turnCounters[outcome][write], 1)

/** @internal */
export const lookupsTotal = Metric.counter("lazydial_binding_lookups_total", {
  description: "Latest-agent lookups made by lazy binds of the chat connector",
  incremental: true
})
