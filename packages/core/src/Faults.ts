/**
 * Fault injection for staging and tests: a Layer that wraps any `AgentDialer`
 * and `AgentLookup` with added latency, failures, hangs, dials that ignore
 * interruption, lookups that fail or find no agent, and defects.
 *
 * Faults draw from Effect's `Random` service, so a seeded `Random` makes a run
 * reproducible, and latencies run on Effect's `Clock`, so TestClock drives them.
 *
 * Configured with `layerConfig`, whose variables the caller names (see its
 * example).
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
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
export const Rate = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })).annotate({
  identifier: "Rate",
  description: "a probability from 0 to 1"
})

/**
 * A non-negative duration, at most one hour, in milliseconds.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Millis = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 3_600_000 })).annotate({
  identifier: "Millis",
  description: "a duration in milliseconds, from 0 to 3600000"
})

const zero = <S extends typeof Rate | typeof Millis>(schema: S) =>
  schema.pipe(Schema.withDecodingDefaultType(Effect.succeed(0)))

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
  spikeRate: zero(Rate),
  spike: zero(Millis)
}).check(Schema.makeFilter((latency) => latency.min <= latency.max || "min must not exceed max"))

/**
 * @since 0.1.0
 * @category schemas
 */
export const DialFaults = Schema.Struct({
  latency: Schema.optional(Latency),
  failureRate: zero(Rate),
  hangRate: zero(Rate),
  ignoreInterruptionRate: zero(Rate),
  defectRate: zero(Rate)
}).check(
  Schema.makeFilter((f) =>
    f.failureRate + f.hangRate + f.defectRate <= 1 || "the rates of failures, hangs and defects add up to more than 1"
  )
)

/**
 * @since 0.1.0
 * @category schemas
 */
export const LookupFaults = Schema.Struct({
  latency: Schema.optional(Latency),
  failureRate: zero(Rate),
  noAgentRate: zero(Rate),
  defectRate: zero(Rate)
}).check(
  Schema.makeFilter((f) =>
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
  dial: DialFaults.pipe(Schema.withDecodingDefaultType(Effect.succeed(noDialFaults))),
  lookup: LookupFaults.pipe(Schema.withDecodingDefaultType(Effect.succeed(noLookupFaults)))
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
export const faultKinds = [
  "latency_spike",
  "dial_failure",
  "hang",
  "ignore_interruption",
  "dial_defect",
  "lookup_failure",
  "no_agent",
  "lookup_defect"
] as const

/**
 * The `lazydial_faults_injected_total` counter, one per kind of `faultKinds`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const injectedTotal: Readonly<Record<(typeof faultKinds)[number], Metric.Counter<number>>> = Object
  .fromEntries(faultKinds.map((kind) => [
    kind,
    Metric.counter("lazydial_faults_injected_total", {
      description: "Faults injected by the Faults layer, by kind",
      incremental: true,
      attributes: { kind }
    })
  ])) as Record<(typeof faultKinds)[number], Metric.Counter<number>> // safe: built from the full `faultKinds` list

const count = (kind: (typeof faultKinds)[number]): Effect.Effect<void> => Metric.update(injectedTotal[kind], 1)

const delay = (latency: typeof Latency.Type | undefined): Effect.Effect<void> => {
  if (latency === undefined) return Effect.void
  return Effect.gen(function*() {
    let millis = latency.min === latency.max ? latency.min : yield* Random.nextBetween(latency.min, latency.max)
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
    readonly dialer: AgentDialer["Service"]
    readonly lookup: AgentLookup["Service"]
  }
): { readonly dialer: AgentDialer["Service"]; readonly lookup: AgentLookup["Service"] } => {
  const { dial, lookup } = plan
  const dialer = AgentDialer.of({
    dial: (agentId) =>
      Effect.gen(function*() {
        const roll = yield* Random.next
        // A hang never ends by itself, so it always honours interruption: one
        // that ignored it too would keep its fiber for the life of the process.
        const ignoresInterruption = roll >= dial.hangRate && dial.ignoreInterruptionRate > 0 &&
          (yield* Random.next) < dial.ignoreInterruptionRate
        const attempt = Effect.andThen(
          delay(dial.latency),
          roll < dial.hangRate
            ? Effect.andThen(count("hang"), Effect.never)
            : roll < dial.hangRate + dial.failureRate
            ? Effect.andThen(
              count("dial_failure"),
              Effect.fail(new AgentDialError({ agentId, reason: "Unreachable", detail: "injected fault" }))
            )
            : roll < dial.hangRate + dial.failureRate + dial.defectRate
            ? Effect.andThen(count("dial_defect"), Effect.die(new InjectedDefect({ site: "dial" })))
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
 * Layer with a `SchemaError` that names the field.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  plan: FaultPlanInput
): Layer.Layer<AgentDialer | AgentLookup, Schema.SchemaError, AgentDialer | AgentLookup> =>
  Layer.effectContext(Effect.gen(function*() {
    const decoded = yield* Schema.decodeUnknownEffect(FaultPlan)(plan)
    const wrapped = wrap(decoded, { dialer: yield* AgentDialer, lookup: yield* AgentLookup })
    return Context.make(AgentDialer, wrapped.dialer).pipe(Context.add(AgentLookup, wrapped.lookup))
  }))

/**
 * What `layerConfig` reads: whether faults are on, and the plan of each side
 * (none injected when absent).
 *
 * @since 0.2.0
 * @category models
 */
export interface ConfigOptions {
  readonly enabled: boolean
  readonly dial?: typeof DialFaults.Type | undefined
  readonly lookup?: typeof LookupFaults.Type | undefined
}

/**
 * `on` or `off` from configuration text (default `off`); anything else fails
 * with a `ConfigError` that names the variable.
 *
 * @since 0.2.0
 * @category config
 */
export const enabledConfig = (name: string): Config.Config<boolean> =>
  Config.Literals(["on", "off"], name).pipe(
    Config.withDefault("off" as const),
    Config.map((value) => value === "on")
  )

/**
 * A `DialFaults` JSON document from configuration text; a bad one fails with a
 * `ConfigError` naming the variable and the field.
 *
 * @since 0.2.0
 * @category config
 */
export const dialConfig = (name: string): Config.Config<typeof DialFaults.Type> =>
  Config.schema(Schema.fromJsonString(DialFaults), name)

/**
 * A `LookupFaults` JSON document from configuration text.
 *
 * @since 0.2.0
 * @category config
 */
export const lookupConfig = (name: string): Config.Config<typeof LookupFaults.Type> =>
  Config.schema(Schema.fromJsonString(LookupFaults), name)

/**
 * `layer`, configured: the caller picks the names. With faults off it passes
 * the services through untouched, so production wiring can include it always
 * and staging switches it on without a code change.
 *
 * @example
 * ```ts
 * import { AgentDialer, AgentLookup, Faults, Options } from "@lazydial/core"
 * import { Layer } from "effect"
 *
 * declare const production: Layer.Layer<AgentDialer.AgentDialer | AgentLookup.AgentLookup>
 *
 * const services = Faults.layerConfig({
 *   enabled: Faults.enabledConfig("LAZYDIAL_FAULTS"),
 *   dial: Options.optional(Faults.dialConfig("LAZYDIAL_FAULTS_DIAL")),
 *   lookup: Options.optional(Faults.lookupConfig("LAZYDIAL_FAULTS_LOOKUP"))
 * }).pipe(Layer.provide(production))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (config: Config.Wrap<ConfigOptions>): Layer.Layer<
  AgentDialer | AgentLookup,
  Config.ConfigError,
  AgentDialer | AgentLookup
> =>
  Layer.effectContext(Effect.gen(function*() {
    const options = yield* Config.unwrap(config)
    const dialer = yield* AgentDialer
    const lookup = yield* AgentLookup
    const services = options.enabled
      ? wrap({ dial: options.dial ?? noDialFaults, lookup: options.lookup ?? noLookupFaults }, { dialer, lookup })
      : { dialer, lookup }
    return Context.make(AgentDialer, services.dialer).pipe(Context.add(AgentLookup, services.lookup))
  }))
