/**
 * Dial a chat's bound agent at once, and check the binding only when the dial
 * is slow or fails fast.
 *
 * ## Outcomes
 *
 * Let A be the bound agent and W its workspace. The dial of A starts at once.
 *
 * | # | what happens | result | `outcome` |
 * |---|---|---|---|
 * | 1 | A answers before `delay` | A; no lookup | `fast` |
 * | 2 | A is pending at `delay`; the lookup (at exactly `delay`) names A | A's own outcome | `confirmed` |
 * | 3 | A is pending at `delay`; the lookup fails | the lookup error is ignored; A's outcome | `lookup_failed_kept` |
 * | 4 | A is pending at `delay`; the lookup names B ≠ A | A is interrupted without waiting; B, or B's error | `switched` |
 * | 5 | A is pending at `delay`; the lookup says None | A is interrupted without waiting; `NoCurrentAgent` | `no_current_agent` |
 * | 6a | A fails before `delay`; the lookup (at once) names B ≠ A | B, or B's error | `switched` |
 * | 6b | A fails before `delay`; the lookup names A | one retry of A, or its error | `retried` |
 * | 6c | A fails before `delay`; the lookup fails | the lookup's error | `failed` |
 * | 6d | A fails before `delay`; the lookup says None | `NoCurrentAgent` | `no_current_agent` |
 *
 * Every call makes at most 2 dials and at most 1 lookup. Any error ending is
 * counted as `failed`, and an interrupted caller as `interrupted`.
 *
 * Nothing leaks and nothing blocks: the accepted connection belongs to the
 * caller's Scope; a connection that arrives late from an abandoned dial is
 * released by its own scope's finalizer as soon as it arrives; a failed dial
 * is never released; and the caller never waits for an abandoned dial, even
 * when it is itself interrupted.
 *
 * Only typed failures count as "failed fast". A defect or an interruption
 * inside a dial or a lookup is passed on as it is, since retrying a bug hides it.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { type AgentConnection, AgentDialer } from "./AgentDialer.js"
import { AgentLookup } from "./AgentLookup.js"
import type { AgentDialError, AgentLookupError, NoCurrentAgent } from "./Errors.js"
import { InvalidOption } from "./Errors.js"
import type { AgentId, CurrentAgent, WorkspaceId } from "./Ids.js"
import * as internalAdaptive from "./internal/adaptiveDelay.js"
import * as internal from "./internal/lazyDial.js"
import * as internalOutcomes from "./internal/outcomes.js"
import { boundedDuration, boundedNumber, durationConfig } from "./Options.js"

/**
 * How a successful call ends, in the order of the outcome table: the one list
 * of these names. Types, metric labels, Schema literals and report rows are
 * derived from it, in this package and the ones built on it.
 *
 * @since 0.1.0
 * @category models
 */
export const outcomes: readonly ["fast", "confirmed", "lookup_failed_kept", "switched", "retried"] =
  internalOutcomes.successOutcomes

/**
 * How a successful call ended. Failed calls are labelled `failed` or
 * `no_current_agent`, and interrupted ones `interrupted`, in spans and metrics.
 *
 * @since 0.1.0
 * @category models
 */
export type DialOutcome = typeof outcomes[number]

/**
 * `DialOutcome` as a Schema, for decoding and for APIs that carry it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const DialOutcome: Schema.Literals<typeof outcomes> = Schema.Literals(outcomes)

/**
 * Every label of the outcome counter and span attribute: `outcomes`, then how
 * a call ends without a connection.
 *
 * @since 0.1.0
 * @category models
 */
export const outcomeLabels: readonly [...typeof outcomes, "no_current_agent", "failed", "interrupted"] =
  internalOutcomes.outcomes

/**
 * @since 0.1.0
 * @category models
 */
export type OutcomeLabel = typeof outcomeLabels[number]

/**
 * `OutcomeLabel` as a Schema.
 *
 * @since 0.1.0
 * @category schemas
 */
export const OutcomeLabel: Schema.Literals<typeof outcomeLabels> = Schema.Literals(outcomeLabels)

/**
 * The outcomes whose connect times an adaptive delay learns from.
 *
 * @since 0.1.0
 * @category models
 */
export const learnedFrom: readonly ["fast", "confirmed"] = internalOutcomes.learnedFrom

/**
 * The values of the `delay_mode` label of the `lazydial_validation_delay_seconds`
 * gauge, which shows the delay a service uses now.
 *
 * @since 0.1.0
 * @category models
 */
export const delayModes: readonly ["fixed", "adaptive"] = internalAdaptive.delayModes

/**
 * The `lazydial_validation_delay_seconds` gauge, by `delay_mode`: the delay
 * the last service built (fixed) or the learning one (adaptive) uses now. With
 * several services in one process, the last one to change it wins.
 *
 * @since 0.1.0
 * @category metrics
 */
export const delayGauges: Readonly<Record<typeof delayModes[number], Metric.Gauge<number>>> =
  internalAdaptive.delayGauges

/**
 * @since 0.1.0
 * @category models
 */
export interface DialResult<A> {
  /** The connection, owned by the caller's Scope. */
  readonly connection: A
  /** The agent that answered. */
  readonly agentId: AgentId
  /** True when `agentId` is not the bound agent: persist the new binding. */
  readonly switched: boolean
  readonly outcome: DialOutcome
}

/**
 * Dials `agentId` at once and validates the binding lazily. See the module
 * documentation for the outcome table.
 *
 * @example
 * ```ts
 * import { dialWithLazyValidation, NoCurrentAgent } from "@lazydial/core"
 * import { Effect, Option } from "effect"
 * import type { AgentId, WorkspaceId } from "@lazydial/core"
 *
 * declare const bound: AgentId
 * declare const workspace: WorkspaceId
 * declare const connect: (agent: AgentId) => Effect.Effect<string>
 *
 * const turn = dialWithLazyValidation({
 *   agentId: bound,
 *   workspaceId: workspace,
 *   dial: connect,
 *   lookup: () => Effect.succeed(Option.some(bound)),
 *   delay: "5 seconds"
 * }).pipe(
 *   Effect.catchTag("NoCurrentAgent", (e: NoCurrentAgent) => Effect.die(e)),
 *   Effect.scoped
 * )
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const dialWithLazyValidation = <A, E1, R1, E2, R2>(options: {
  readonly agentId: AgentId
  readonly workspaceId: WorkspaceId
  /** R1 may include Scope: the release of the connection is a finalizer. */
  readonly dial: (agentId: AgentId) => Effect.Effect<A, E1, R1>
  /** None: the workspace has no agent now. */
  readonly lookup: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<AgentId>, E2, R2>
  /** How long the bound agent may stay pending before the binding is checked. */
  readonly delay: Duration.Input
  /**
   * Optional early-validation signal: when it completes while the bound
   * agent is still pending, the delay ends at once (for example when a notice
   * says the workspace was rebuilt). Without it, nothing changes.
   */
  readonly validateNow?: Effect.Effect<void> | undefined
}): Effect.Effect<DialResult<A>, E1 | E2 | NoCurrentAgent, Scope.Scope | Exclude<R1, Scope.Scope> | R2> =>
  internal.make({ ...options, agentIdOf: identity })

const identity = <X>(x: X): X => x

/**
 * The result of the `LazyDial` service: a `DialResult` that also carries what
 * the lookup answered, when it ran and named an agent, so that a caller can
 * persist the build and agent of one query together.
 *
 * @since 0.1.0
 * @category models
 */
export interface LazyDialResult extends DialResult<AgentConnection> {
  readonly current: Option.Option<CurrentAgent>
}

/**
 * `dialWithLazyValidation` as a service, built from `AgentDialer` and
 * `AgentLookup`.
 *
 * @since 0.1.0
 * @category tags
 */
export class LazyDial extends Context.Service<
  LazyDial,
  {
    /** The delay a call starting now uses: the fixed one, or what the adaptive delay has learned so far. */
    readonly delay: Duration.Duration
    readonly dial: (binding: {
      readonly agentId: AgentId
      readonly workspaceId: WorkspaceId
      /** Ends the validation delay at once when it completes; see `dialWithLazyValidation`. */
      readonly validateNow?: Effect.Effect<void> | undefined
    }) => Effect.Effect<LazyDialResult, AgentDialError | AgentLookupError | NoCurrentAgent, Scope.Scope>
  }
>()("@lazydial/core/LazyDial") {}

/**
 * The default validation delay.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultDelay: Duration.Duration = Duration.seconds(5)

/**
 * The largest validation delay a Layer accepts.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxDelay: Duration.Duration = Duration.minutes(10)

/**
 * How the adaptive delay learns (`delay: "adaptive"`): the delay is
 * `clamp(factor × quantile of the last window successful connect times, min, max)`,
 * and `initial` until the window holds enough samples (1 / (1 − quantile),
 * at most `window`). Only `fast` and `confirmed` calls feed it: the bound
 * agent answered and was not found stale. See docs/core.md.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdaptiveDelayOptions {
  /** The delay until enough samples were seen; in `[min, max]`, default `max`. */
  readonly initial?: Duration.Input | undefined
  /** The smallest delay; default 50 ms. */
  readonly min?: Duration.Input | undefined
  /** The largest delay; at least `min`, default 5 seconds. */
  readonly max?: Duration.Input | undefined
  /** The safety factor over the quantile, from 1 to 100; default 3. */
  readonly factor?: number | undefined
  /** Which quantile of connect times, above 0 and at most 1; default 0.99. */
  readonly quantile?: number | undefined
  /** How many recent connects are kept, an integer from 1 to 65536; default 256. */
  readonly window?: number | undefined
}

/**
 * The options of `layer` and `make`.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** The validation delay (default 5 seconds), or `"adaptive"` to learn it. */
  readonly delay?: Duration.Input | "adaptive" | undefined
  /** Only with `delay: "adaptive"`. */
  readonly adaptive?: AdaptiveDelayOptions | undefined
}

/**
 * The defaults of `AdaptiveDelayOptions` (`initial` defaults to `max`).
 *
 * @since 0.1.0
 * @category constants
 */
export const adaptiveDefaults: {
  readonly min: Duration.Duration
  readonly max: Duration.Duration
  readonly factor: number
  readonly quantile: number
  readonly window: number
} = {
  min: Duration.millis(50),
  max: defaultDelay,
  factor: 3,
  quantile: 0.99,
  window: 256
}

const adaptiveKeys = ["initial", "min", "max", "factor", "quantile", "window"] as const satisfies ReadonlyArray<
  keyof AdaptiveDelayOptions
>

type AdaptiveKey = typeof adaptiveKeys[number]

/** The option names a Layer's errors use: `adaptive.min`, and so on. */
const adaptiveOptionNames = Object.fromEntries(adaptiveKeys.map((key) => [key, `adaptive.${key}`])) as {
  readonly [K in AdaptiveKey]: string
} // safe: built from every key

/** Checks every adaptive option, naming each by `names`. */
const checkAdaptive = (
  input: { readonly [K in AdaptiveKey]?: unknown },
  names: { readonly [K in AdaptiveKey]: string }
): Effect.Effect<internalAdaptive.AdaptiveOptions, InvalidOption> =>
  Effect.gen(function*() {
    const min = yield* boundedDuration(names.min, input.min ?? adaptiveDefaults.min, maxDelay)
    const max = yield* boundedDuration(names.max, input.max ?? adaptiveDefaults.max, maxDelay)
    if (Duration.isLessThan(max, min)) {
      return yield* new InvalidOption({
        option: names.max,
        value: Duration.format(max),
        expected: `at least ${names.min} (${Duration.format(min)})`
      })
    }
    const initial = yield* boundedDuration(names.initial, input.initial ?? max, maxDelay)
    if (Duration.isLessThan(initial, min) || Duration.isGreaterThan(initial, max)) {
      return yield* new InvalidOption({
        option: names.initial,
        value: Duration.format(initial),
        expected: `a duration from ${names.min} (${Duration.format(min)}) to ${names.max} (${Duration.format(max)})`
      })
    }
    const factor = yield* boundedNumber(names.factor, input.factor ?? adaptiveDefaults.factor, 1, 100)
    const quantile = yield* boundedNumber(names.quantile, input.quantile ?? adaptiveDefaults.quantile, 0, 1, {
      minExclusive: true
    })
    const window = yield* boundedNumber(names.window, input.window ?? adaptiveDefaults.window, 1, 65536, {
      integer: true
    })
    return { initial, min, max, factor, quantile, window }
  })

/**
 * Builds the service. The delay is checked here, so an out-of-range value
 * fails the Layer, not a turn. `delay: "adaptive"` learns the delay from
 * recent connect times (see `AdaptiveDelayOptions`), per service: each
 * service built from this has a sketch of its own.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<LazyDial["Service"], InvalidOption, AgentDialer | AgentLookup> =>
  Effect.gen(function*() {
    const dialer = yield* AgentDialer
    const lookup = yield* AgentLookup
    const service = (delay: Duration.Duration, learned: internalAdaptive.Sketch | undefined) => ({
      dial: (binding: Parameters<LazyDial["Service"]["dial"]>[0]) =>
        internal.make({
          agentId: binding.agentId,
          workspaceId: binding.workspaceId,
          dial: dialer.dial,
          lookup: lookup.current,
          agentIdOf: (current) => current.agentId,
          delay,
          validateNow: binding.validateNow,
          learned
        })
    })
    if (options?.delay === "adaptive") {
      const learned = new internalAdaptive.Sketch(yield* checkAdaptive(options.adaptive ?? {}, adaptiveOptionNames))
      yield* Metric.update(internalAdaptive.delayGauges.adaptive, Duration.toSeconds(learned.delay))
      const { dial } = service(learned.delay, learned)
      return LazyDial.of({
        get delay() {
          return learned.delay
        },
        dial
      })
    }
    // Fields left undefined are not given: a Config.Wrap reads an unset variable as undefined.
    if (options?.adaptive !== undefined && Object.values(options.adaptive).some((value) => value !== undefined)) {
      return yield* new InvalidOption({
        option: "adaptive",
        value: "given",
        expected: `no adaptive options unless delay is "adaptive"`
      })
    }
    const delay = yield* boundedDuration("delay", options?.delay ?? defaultDelay, maxDelay)
    yield* Metric.update(internalAdaptive.delayGauges.fixed, Duration.toSeconds(delay))
    return LazyDial.of({ delay, ...service(delay, undefined) })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: Options): Layer.Layer<LazyDial, InvalidOption, AgentDialer | AgentLookup> =>
  Layer.effect(LazyDial, make(options))

/**
 * `layer`, with its options read from configuration: the caller picks the
 * names (and prefixes, and where they come from), as Effect's own packages do.
 * Read durations with `delayConfig` and `Options.durationConfig`, numbers with
 * `Options.numberConfig`, so that every one is read the same way and a bad
 * value fails with a `ConfigError` naming its variable; wrap an optional one in
 * `Options.optional`, so that an unset variable means the default.
 *
 * @example
 * ```ts
 * import { LazyDial, Options } from "@lazydial/core"
 * import { Duration } from "effect"
 *
 * const lazyDial = LazyDial.layerConfig({
 *   delay: Options.optional(LazyDial.delayConfig("MY_VALIDATION_DELAY")),
 *   adaptive: {
 *     factor: Options.optional(Options.numberConfig("MY_VALIDATION_DELAY_FACTOR", { min: 1, max: 100 })),
 *     max: Options.optional(Options.durationConfig("MY_VALIDATION_DELAY_MAX", { max: Duration.minutes(10) }))
 *   }
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<Options>
): Layer.Layer<LazyDial, InvalidOption | Config.ConfigError, AgentDialer | AgentLookup> =>
  Layer.effect(LazyDial, Effect.flatMap(Config.unwrap(config), make))

/**
 * The validation delay read from configuration text: `adaptive`, or a
 * duration from 0 to `maxDelay` (`"5 seconds"`, or milliseconds). Anything
 * else fails with a `ConfigError` that names the variable.
 *
 * @since 0.2.0
 * @category config
 */
export const delayConfig = (name: string): Config.Config<Duration.Duration | "adaptive"> =>
  Config.orElse(Config.Literal("adaptive", name), () => durationConfig(name, { max: maxDelay }))
