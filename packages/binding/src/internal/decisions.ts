import { LazyDial } from "@lazydial/core"
import * as Effect from "effect/Effect"
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

/** @deprecated the paths before `turnOutcomes`; kept until the service reads `outcome`. @internal */
export const turnPaths = ["hot", "lazy_bind", "switched", "switched_by_notice"] as const

/** @internal */
export type TurnPath = typeof turnPaths[number]

/**
 * The labels of the decision counter: the paths, and `repair_lost`, a write
 * that lost to a concurrent writer.
 *
 * @internal
 */
export const decisions = [...turnPaths, "repair_lost"] as const

/** @internal */
export type Decision = typeof decisions[number]

/**
 * What the last binding write of a connect did.
 *
 * @internal
 */
export const writeResults = ["none", "recorded", "lost"] as const

/** @internal */
export type WriteResult = typeof writeResults[number]

/** @internal */
export const decisionsTotal = Metric.counter("lazydial_binding_decisions_total", {
  description: "Chat connects, by decision of the turn path",
  incremental: true
})

const decisionCounters = Object.fromEntries(
  decisions.map((decision) => [decision, Metric.withAttributes(decisionsTotal, { decision })])
) as Record<Decision, Metric.Counter<number>> // safe: built from the full `decisions` list

/** @internal */
export const lookupsTotal = Metric.counter("lazydial_binding_lookups_total", {
  description: "Latest-agent lookups made by lazy binds of the chat connector",
  incremental: true
})

/** @internal */
export const sharedTotal = Metric.counter("lazydial_binding_shared_connects_total", {
  description: "Chat connects that joined a dial already under way in the same turn",
  incremental: true
})

/**
 * Records a decision: on the current span (`lazydial.path`, or
 * `lazydial.repair` for a lost write) and in the decision counter.
 *
 * @internal
 */
export const decide = (decision: Decision): Effect.Effect<void> =>
  Effect.andThen(
    Effect.annotateCurrentSpan(decision === "repair_lost" ? "lazydial.repair" : "lazydial.path", decision),
    Metric.update(decisionCounters[decision], 1)
  )
