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
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { type AgentConnection, AgentDialer } from "./AgentDialer.js"
import { AgentLookup } from "./AgentLookup.js"
import type { AgentDialError, AgentLookupError, InvalidOption, NoCurrentAgent } from "./Errors.js"
import type { AgentId, CurrentAgent, WorkspaceId } from "./Ids.js"
import * as internal from "./internal/lazyDial.js"
import { boundedDuration } from "./Options.js"

/**
 * How a successful call ends, in the order of the outcome table: the one list
 * of these names. Types, metric labels, Schema literals and report rows are
 * derived from it, in this package and the ones built on it.
 *
 * @since 0.1.0
 * @category models
 */
export const outcomes: readonly ["fast", "confirmed", "lookup_failed_kept", "switched", "retried"] =
  internal.successOutcomes

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
export const DialOutcome: Schema.Literal<typeof outcomes> = Schema.Literal(...outcomes)

/**
 * Every label of the outcome counter and span attribute: `outcomes`, then how
 * a call ends without a connection.
 *
 * @since 0.1.0
 * @category models
 */
export const outcomeLabels: readonly [...typeof outcomes, "no_current_agent", "failed", "interrupted"] =
  internal.outcomes

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
export const OutcomeLabel: Schema.Literal<typeof outcomeLabels> = Schema.Literal(...outcomeLabels)

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
  readonly delay: Duration.DurationInput
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
export class LazyDial extends Context.Tag("@lazydial/core/LazyDial")<
  LazyDial,
  {
    readonly delay: Duration.Duration
    readonly dial: (binding: {
      readonly agentId: AgentId
      readonly workspaceId: WorkspaceId
      /** Ends the validation delay at once when it completes; see `dialWithLazyValidation`. */
      readonly validateNow?: Effect.Effect<void> | undefined
    }) => Effect.Effect<LazyDialResult, AgentDialError | AgentLookupError | NoCurrentAgent, Scope.Scope>
  }
>() {}

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
 * Builds the service. The delay is checked here, so an out-of-range value
 * fails the Layer, not a turn.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: {
  readonly delay?: Duration.DurationInput | undefined
}): Effect.Effect<Context.Tag.Service<LazyDial>, InvalidOption, AgentDialer | AgentLookup> =>
  Effect.gen(function*() {
    const delay = yield* boundedDuration("delay", options?.delay ?? defaultDelay, maxDelay)
    const dialer = yield* AgentDialer
    const lookup = yield* AgentLookup
    return LazyDial.of({
      delay,
      dial: (binding) =>
        internal.make({
          agentId: binding.agentId,
          workspaceId: binding.workspaceId,
          dial: dialer.dial,
          lookup: lookup.current,
          agentIdOf: (current) => current.agentId,
          delay,
          validateNow: binding.validateNow
        })
    })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: {
  readonly delay?: Duration.DurationInput | undefined
}): Layer.Layer<LazyDial, InvalidOption, AgentDialer | AgentLookup> => Layer.effect(LazyDial, make(options))

/**
 * The delay comes from `LAZYDIAL_VALIDATION_DELAY` (for example `"5 seconds"`),
 * and defaults to 5 seconds.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<
  LazyDial,
  InvalidOption | ConfigError.ConfigError,
  AgentDialer | AgentLookup
> = Layer.effect(
  LazyDial,
  Effect.flatMap(
    Schema.Config("LAZYDIAL_VALIDATION_DELAY", Schema.String).pipe(Config.option),
    // The text is decoded by `boundedDuration`, not by the Schema: any text it
    // refuses must fail the Layer with the InvalidOption that names `delay`,
    // as a bad value passed to `layer` does, not with a ConfigError.
    Option.match({
      onNone: () => make(),
      onSome: (text) => Effect.flatMap(boundedDuration("delay", text, maxDelay), (delay) => make({ delay }))
    })
  )
)
