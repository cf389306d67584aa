/**
 * The names a call of `dialWithLazyValidation` can end with, and the metrics
 * labelled by them: declared once, here, and derived everywhere else.
 */
import * as Metric from "effect/Metric"

/** How a successful call ends: the one list every package derives its names from. @internal */
export const successOutcomes = ["fast", "confirmed", "lookup_failed_kept", "switched", "retried"] as const

/** @internal */
export type SuccessOutcome = typeof successOutcomes[number]

/** Every label of the outcome counter and span attribute. @internal */
export const outcomes = [...successOutcomes, "no_current_agent", "failed", "interrupted"] as const

/** @internal */
export type Outcome = typeof outcomes[number]

/**
 * The outcomes whose connect time feeds a learned delay: the bound agent
 * answered and was not found stale. `confirmed` is in although its dial
 * crossed the delay: without it slow but healthy dials could never raise the
 * delay above itself. See docs/core.md.
 *
 * @internal
 */
export const learnedFrom = ["fast", "confirmed"] as const satisfies ReadonlyArray<SuccessOutcome>

// One metric per label, built once: each carries its attributes, so an update
// allocates nothing, and the caller's own metric attributes still apply.
const description = "Calls of dialWithLazyValidation, by outcome"
/** @internal */
export const outcomeCounters = Object.fromEntries(outcomes.map((outcome) => [
  outcome,
  Metric.counter("lazydial_dial_outcomes_total", { description, incremental: true, attributes: { outcome } })
])) as Record<Outcome, Metric.Counter<number>> // safe: built from the full `outcomes` list
/** @internal */
export const lookupCounter = Metric.counter("lazydial_lookups_total", {
  description: "Latest-agent lookups made by dialWithLazyValidation",
  incremental: true
})
/** @internal */
export const connectSeconds = Metric.histogram("lazydial_connect_seconds", {
  description: "Time from the call of dialWithLazyValidation to a connection, in seconds",
  boundaries: Metric.exponentialBoundaries({ start: 0.0005, factor: 2, count: 18 })
})
