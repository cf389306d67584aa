/**
 * Fault injection for staging and tests: a Layer that wraps any `AgentDialer`
 * and `AgentLookup` with added latency, failures, hangs, dials that ignore
 * interruption, lookups that fail or find no agent, and defects.
 *
 * Faults draw from Effect's `Random` service, so a seeded `Random` makes a run
 * reproducible, and latencies run on Effect's `Clock`, so TestClock drives them.
 *
 * @example
 * ```ts
 * import { Faults } from "@lazydial/core"
 * import { Layer } from "effect"
 *
 * declare const production: Layer.Layer<import("@lazydial/core").AgentDialer.AgentDialer | import("@lazydial/core").AgentLookup.AgentLookup>
 *
 * // Pass-through unless LAZYDIAL_FAULTS=on: staging turns it on without a code change.
 * const services = Faults.layerConfig.pipe(Layer.provide(production))
 * ```
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as ParseResult from "effect/ParseResult"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import { AgentDialer } from "./AgentDialer.js"
import { AgentLookup } from "./AgentLookup.js"
import { AgentDialError, AgentLookupError } from "./Errors.js"

/**
 * A probability, from 0 to 1.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Rate = Schema.Number.pipe(Schema.between(0, 1)).annotations({
  identifier: "Rate",
  description: "a probability from 0 to 1"
})

/**
 * A non-negative duration, at most one hour, in milliseconds.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Millis = Schema.Number.pipe(Schema.finite(), Schema.between(0, 3_600_000)).annotations({
  identifier: "Millis",
  description: "a duration in milliseconds, from 0 to 3600000"
})

/**
 * Latency drawn uniformly from `min` to `max` milliseconds, plus, with
 * probability `spikeRate`, a spike of `spike` milliseconds.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Latency = Schema.Struct({
  min: Millis,
  max: Millis,
  spikeRate: Schema.optionalWith(Rate, { default: () => 0 }),
  spike: Schema.optionalWith(Millis, { default: () => 0 })
}).pipe(Schema.filter((latency) => latency.min <= latency.max || "min must not exceed max"))

/**
 * @since 0.1.0
 * @category schemas
 */
export const DialFaults = Schema.Struct({
  latency: Schema.optional(Latency),
  failureRate: Schema.optionalWith(Rate, { default: () => 0 }),
  hangRate: Schema.optionalWith(Rate, { default: () => 0 }),
  ignoreInterruptionRate: Schema.optionalWith(Rate, { default: () => 0 }),
  defectRate: Schema.optionalWith(Rate, { default: () => 0 })
}).pipe(
  Schema.filter((f) =>
    f.failureRate + f.hangRate + f.defectRate <= 1 || "the rates of failures, hangs and defects add up to more than 1"
  )
)

/**
 * @since 0.1.0
 * @category schemas
 */
export const LookupFaults = Schema.Struct({
  latency: Schema.optional(Latency),
  failureRate: Schema.optionalWith(Rate, { default: () => 0 }),
  noAgentRate: Schema.optionalWith(Rate, { default: () => 0 }),
  defectRate: Schema.optionalWith(Rate, { default: () => 0 })
}).pipe(
  Schema.filter((f) =>
    f.failureRate + f.noAgentRate + f.defectRate <= 1 ||
    "the rates of failures, missing agents and defects add up to more than 1"
  )
)

const noDialFaults = Schema.decodeSync(DialFaults)({})
const noLookupFaults = Schema.decodeSync(LookupFaults)({})

/**
 * What to inject. Every field is optional: `{}` injects nothing.
 *
 * @since 0.1.0
 * @category schemas
 */
export const FaultPlan = Schema.Struct({
  dial: Schema.optionalWith(DialFaults, { default: () => noDialFaults }),
  lookup: Schema.optionalWith(LookupFaults, { default: () => noLookupFaults })
})

/**
 * @since 0.1.0
 * @category models
 */
export type FaultPlan = typeof FaultPlan.Type

/**
 * @since 0.1.0
 * @category models
 */
export type FaultPlanInput = typeof FaultPlan.Encoded

/**
 * The defect an injected fault throws: distinguishable from real bugs in logs.
 *
 * @since 0.1.0
 * @category errors
 */
export class InjectedDefect extends Data.TaggedError("InjectedDefect")<{ readonly site: "dial" | "lookup" }> {
  override get message(): string {
    return `injected defect in ${this.site} (fault injection is on: LAZYDIAL_FAULTS)`
  }
}

/**
 * Counts injected faults by kind: `latency_spike`, `dial_failure`, `hang`,
 * `ignore_interruption`, `dial_defect`, `lookup_failure`, `no_agent`,
 * `lookup_defect`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const injectedTotal = Metric.counter("lazydial_faults_injected_total", {
  description: "Faults injected by the Faults layer, by kind",
  incremental: true
})

const faultKinds = [
  "latency_spike",
  "dial_failure",
  "hang",
  "ignore_interruption",
  "dial_defect",
  "lookup_failure",
  "no_agent",
  "lookup_defect"
] as const

// Tagged once, as core's outcome counters are: tagging per fault allocates a key each time.
const injectedByKind = Object.fromEntries(
  faultKinds.map((kind) => [kind, Metric.increment(Metric.tagged(injectedTotal, "kind", kind))])
) as Record<(typeof faultKinds)[number], Effect.Effect<void>> // safe: built from the full `faultKinds` list

const count = (kind: (typeof faultKinds)[number]): Effect.Effect<void> => injectedByKind[kind]

const delay = (latency: typeof Latency.Type | undefined): Effect.Effect<void> => {
  if (latency === undefined) return Effect.void
  return Effect.gen(function*() {
    let millis = latency.min === latency.max ? latency.min : yield* Random.nextRange(latency.min, latency.max)
    if (latency.spikeRate > 0 && (yield* Random.next) < latency.spikeRate) {
      millis += latency.spike
      yield* count("latency_spike")
    }
    if (millis > 0) yield* Effect.sleep(Duration.millis(millis))
  })
}

/**
 * Wraps the given services with the plan's faults.
 *
 * @since 0.1.0
 * @category constructors
 */
export const wrap = (
  plan: FaultPlan,
  services: {
    readonly dialer: Context.Tag.Service<AgentDialer>
    readonly lookup: Context.Tag.Service<AgentLookup>
  }
): { readonly dialer: Context.Tag.Service<AgentDialer>; readonly lookup: Context.Tag.Service<AgentLookup> } => {
  const { dial, lookup } = plan
  const dialer = AgentDialer.of({
    dial: (agentId) =>
      Effect.gen(function*() {
        const roll = yield* Random.next
        // A hang never ends by itself, so it always honours interruption: one
        // that ignored it too would keep its fiber for the life of the process.
        const ignoresInterruption = roll >= dial.hangRate && dial.ignoreInterruptionRate > 0 &&
          (yield* Random.next) < dial.ignoreInterruptionRate
        const attempt = Effect.zipRight(
          delay(dial.latency),
          roll < dial.hangRate
            ? Effect.zipRight(count("hang"), Effect.never)
            : roll < dial.hangRate + dial.failureRate
            ? Effect.zipRight(
              count("dial_failure"),
              Effect.fail(new AgentDialError({ agentId, reason: "Unreachable", detail: "injected fault" }))
            )
            : roll < dial.hangRate + dial.failureRate + dial.defectRate
            ? Effect.zipRight(count("dial_defect"), Effect.die(new InjectedDefect({ site: "dial" })))
            : services.dialer.dial(agentId)
        )
        if (!ignoresInterruption) return yield* attempt
        yield* count("ignore_interruption")
        return yield* Effect.uninterruptible(attempt)
      })
  })
  const wrappedLookup = AgentLookup.of({
    current: (workspaceId) =>
      Effect.gen(function*() {
        yield* delay(lookup.latency)
        const roll = yield* Random.next
        if (roll < lookup.failureRate) {
          yield* count("lookup_failure")
          return yield* new AgentLookupError({ workspaceId, detail: "injected fault" })
        }
        if (roll < lookup.failureRate + lookup.noAgentRate) {
          yield* count("no_agent")
          return Option.none()
        }
        if (roll < lookup.failureRate + lookup.noAgentRate + lookup.defectRate) {
          yield* count("lookup_defect")
          return yield* Effect.die(new InjectedDefect({ site: "lookup" }))
        }
        return yield* services.lookup.current(workspaceId)
      })
  })
  return { dialer, lookup: wrappedLookup }
}

/**
 * A Layer transformer: it takes `AgentDialer` and `AgentLookup` and provides
 * them again, with faults. The plan is decoded here; a bad plan fails the
 * Layer with a `ParseError` that names the field.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  plan: FaultPlanInput
): Layer.Layer<AgentDialer | AgentLookup, ParseResult.ParseError, AgentDialer | AgentLookup> =>
  Layer.effectContext(Effect.gen(function*() {
    const decoded = yield* Schema.decodeUnknown(FaultPlan)(plan)
    const wrapped = wrap(decoded, { dialer: yield* AgentDialer, lookup: yield* AgentLookup })
    return Context.make(AgentDialer, wrapped.dialer).pipe(Context.add(AgentLookup, wrapped.lookup))
  }))

/**
 * The plan as read from the environment. `LAZYDIAL_FAULTS` must be `on` for
 * any fault to be injected; the other variables are JSON documents or numbers:
 *
 * | variable | meaning |
 * |---|---|
 * | `LAZYDIAL_FAULTS` | `on` or `off` (default `off`) |
 * | `LAZYDIAL_FAULTS_DIAL` | a `DialFaults` JSON document |
 * | `LAZYDIAL_FAULTS_LOOKUP` | a `LookupFaults` JSON document |
 *
 * @since 0.1.0
 * @category config
 */
export const planConfig: Config.Config<Option.Option<FaultPlan>> = Config.all({
  enabled: Config.literal("on", "off")("LAZYDIAL_FAULTS").pipe(Config.withDefault("off" as const)),
  dial: Schema.Config("LAZYDIAL_FAULTS_DIAL", Schema.parseJson(DialFaults)).pipe(Config.option),
  lookup: Schema.Config("LAZYDIAL_FAULTS_LOOKUP", Schema.parseJson(LookupFaults)).pipe(Config.option)
}).pipe(Config.map(({ dial, enabled, lookup }) =>
  enabled === "off"
    ? Option.none()
    : Option.some(FaultPlan.make({
      dial: Option.getOrElse(dial, () => noDialFaults),
      lookup: Option.getOrElse(lookup, () => noLookupFaults)
    }))
))

/**
 * `layer`, configured from the environment (see `planConfig`). With
 * `LAZYDIAL_FAULTS` unset or `off` it passes the services through untouched,
 * so production wiring can include it always.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<
  AgentDialer | AgentLookup,
  ConfigError.ConfigError,
  AgentDialer | AgentLookup
> = Layer.effectContext(Effect.gen(function*() {
  const plan = yield* planConfig
  const dialer = yield* AgentDialer
  const lookup = yield* AgentLookup
  const services = Option.isSome(plan) ? wrap(plan.value, { dialer, lookup }) : { dialer, lookup }
  return Context.make(AgentDialer, services.dialer).pipe(Context.add(AgentLookup, services.lookup))
}))
