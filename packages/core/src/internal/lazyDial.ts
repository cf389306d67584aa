/**
 * The race of `dialWithLazyValidation`, written as its outcome table from
 * Effect's own parts: each dial is forked into a Scope of its own, the caller
 * waits for its exit with `Effect.timeoutOption` (or `raceFirst` with the
 * early-validation signal), and a dial nobody will use is given up by closing
 * its Scope on a fiber that Scope owns, so the caller never waits for it and
 * whatever it delivers late is released by that Scope's finalizer.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { NoCurrentAgent } from "../Errors.js"
import type { AgentId, WorkspaceId } from "../Ids.js"
import { delayGauges, type Sketch } from "./adaptiveDelay.js"

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

/** @internal */
export interface Result<A, L> {
  readonly connection: A
  readonly agentId: AgentId
  readonly switched: boolean
  readonly outcome: SuccessOutcome
  readonly current: Option.Option<L>
}

/** @internal */
export interface Options<A, E1, R1, L, E2, R2> {
  readonly agentId: AgentId
  readonly workspaceId: WorkspaceId
  readonly dial: (agentId: AgentId) => Effect.Effect<A, E1, R1>
  readonly lookup: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<L>, E2, R2>
  readonly agentIdOf: (current: L) => AgentId
  readonly delay: Duration.Input
  /** Ends the delay at once when it completes; never ends it otherwise. */
  readonly validateNow?: Effect.Effect<void> | undefined
  /** A learned delay: used instead of `delay`, and fed the connect times of `learnedFrom`. */
  readonly learned?: Sketch | undefined
}

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

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * What one call fixes at its start. `restore` makes a wait interruptible: the
 * race itself is not, so an interruption can only land in a wait, where the
 * attempts it leaves behind are given up.
 */
type Call = Options<unknown, unknown, never, unknown, unknown, never> & {
  readonly wait: Duration.Duration
  readonly restore: Restore
}

interface Attempt {
  readonly agentId: AgentId
  readonly scope: Scope.Closeable
  readonly fiber: Fiber.Fiber<unknown, unknown>
}

/** Dials `agentId` on a fiber forked into a Scope of its own, a child of the caller's, started at once. */
const start = (call: Call, agentId: AgentId): Effect.Effect<Attempt, never, Scope.Scope> =>
  Effect.flatMap(Effect.scope, (callerScope) =>
    Effect.flatMap(Scope.fork(callerScope), (scope) =>
      Effect.map(
        Effect.forkIn(Scope.provide(call.dial(agentId), scope), scope, { startImmediately: true }),
        (fiber) => ({ agentId, scope, fiber })
      )))

/**
 * Nobody will use this attempt. Its Scope is closed on a fiber that Scope owns:
 * closing it detaches it from the caller's Scope at once, interrupts the dial,
 * waits for it there, and releases whatever it delivered, exactly once.
 */
const discard = (attempt: Attempt): Effect.Effect<void> =>
  Effect.asVoid(Effect.forkIn(Scope.close(attempt.scope, Exit.void), attempt.scope, { startImmediately: true }))

/** Waits for an attempt; an interrupted caller gives it up instead of waiting for it. */
const settle = (call: Call, attempt: Attempt, outcome: SuccessOutcome, current: Option.Option<unknown>) =>
  Effect.flatMap(Effect.onInterrupt(call.restore(Fiber.await(attempt.fiber)), () => discard(attempt)), (exit) => {
    if (Exit.isSuccess(exit)) {
      const switched = attempt.agentId !== call.agentId
      return Effect.succeed({ connection: exit.value, agentId: attempt.agentId, switched, outcome, current })
    }
    return Effect.andThen(discard(attempt), Effect.failCause(exit.cause))
  })

/** Asks which agent is current; an interrupted caller also gives up `pending`. */
const lookupNow = (call: Call, pending: Attempt | undefined) =>
  Effect.andThen(
    Metric.update(lookupCounter, 1),
    Effect.onInterrupt(Effect.exit(call.restore(call.lookup(call.workspaceId))), () =>
      pending === undefined ? Effect.void : discard(pending))
  )

/** The bound agent's exit if it ends before the delay (or the signal), None then. */
const firstExitOrDelay = (call: Call, first: Attempt) => {
  const exit = Fiber.await(first.fiber)
  const wait = call.validateNow === undefined
    ? Effect.timeoutOption(exit, call.wait)
    : Effect.raceFirst(
      Effect.asSome(exit),
      Effect.as(Effect.raceFirst(Effect.sleep(call.wait), call.validateNow), Option.none())
    )
  return Effect.onInterrupt(call.restore(wait), () => discard(first))
}

const noCurrentAgent = (call: Call) => Effect.fail(new NoCurrentAgent({ workspaceId: call.workspaceId }))

/** The outcome table. Every wait is interruptible, and every path that leaves an attempt behind discards it. */
const race = (call: Call) =>
  Effect.gen(function*() {
    const first = yield* start(call, call.agentId)
    const early = yield* firstExitOrDelay(call, first)
    if (Option.isSome(early)) {
      const exit = early.value
      if (Exit.isSuccess(exit)) return yield* settle(call, first, "fast", Option.none()) // 1
      yield* discard(first)
      // Only a typed failure is a fast failure: a defect or an interruption is passed on as it is.
      if (!Cause.hasFails(exit.cause)) return yield* Effect.failCause(exit.cause)
      const lookup = yield* lookupNow(call, undefined)
      if (Exit.isFailure(lookup)) return yield* Effect.failCause(lookup.cause) // 6c
      if (Option.isNone(lookup.value)) return yield* noCurrentAgent(call) // 6d
      const next = call.agentIdOf(lookup.value.value)
      const retry = yield* start(call, next)
      return yield* settle(call, retry, next === call.agentId ? "retried" : "switched", lookup.value) // 6b, 6a
    }
    const lookup = yield* lookupNow(call, first)
    if (Exit.isFailure(lookup)) {
      if (Cause.hasFails(lookup.cause)) return yield* settle(call, first, "lookup_failed_kept", Option.none()) // 3
      yield* discard(first)
      return yield* Effect.failCause(lookup.cause)
    }
    if (Option.isSome(lookup.value) && call.agentIdOf(lookup.value.value) === call.agentId) {
      return yield* settle(call, first, "confirmed", lookup.value) // 2
    }
    yield* discard(first)
    if (Option.isNone(lookup.value)) return yield* noCurrentAgent(call) // 5
    const next = yield* start(call, call.agentIdOf(lookup.value.value))
    return yield* settle(call, next, "switched", lookup.value) // 4
  })

const outcomeOf = (exit: Exit.Exit<Result<unknown, unknown>, unknown>): Outcome => {
  if (Exit.isSuccess(exit)) return exit.value.outcome
  if (Cause.hasInterruptsOnly(exit.cause)) return "interrupted"
  const error = Cause.findErrorOption(exit.cause)
  return Option.isSome(error) && error.value instanceof NoCurrentAgent ? "no_current_agent" : "failed"
}

/** Records the call's outcome in its span and metrics, its connect time, and feeds a learned delay. */
const record = (call: Call, startedAt: bigint, exit: Exit.Exit<Result<unknown, unknown>, unknown>) => {
  const outcome = outcomeOf(exit)
  const counted = Effect.andThen(
    Effect.annotateCurrentSpan("lazydial.outcome", outcome),
    Metric.update(outcomeCounters[outcome], 1)
  )
  if (Exit.isFailure(exit)) return counted
  return Effect.flatMap(Clock.currentTimeNanos, (now) => {
    const millis = Number(now - startedAt) / 1e6
    const learned = call.learned !== undefined && (learnedFrom as ReadonlyArray<Outcome>).includes(outcome) &&
      call.learned.record(millis)
    return Effect.andThen(
      Effect.andThen(counted, Metric.update(connectSeconds, millis / 1000)),
      learned ? Metric.update(delayGauges.adaptive, Duration.toSeconds(call.learned!.delay)) : Effect.void
    )
  })
}

/** @internal */
export const make = <A, E1, R1, L, E2, R2>(
  options: Options<A, E1, R1, L, E2, R2>
): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent, Scope.Scope | Exclude<R1, Scope.Scope> | R2> => {
  const fixed = options.learned === undefined ? Duration.fromInputUnsafe(options.delay) : undefined
  const traced = Effect.uninterruptibleMask((restore) => {
    // Read per run, not per construction: an effect may be run again, and a learned delay moves.
    const wait = fixed ?? options.learned!.delay
    // safe: the race only passes values between the caller's own dial, lookup and result
    const call = { ...options, wait, restore } as unknown as Call
    return Effect.flatMap(
      Clock.currentTimeNanos,
      (startedAt) => Effect.onExit(race(call), (exit) => record(call, startedAt, exit))
    )
  }).pipe(Effect.withSpan("LazyDial.dial", {
    kind: "client",
    attributes: { "lazydial.agent_id": options.agentId, "lazydial.workspace_id": options.workspaceId }
  }, { captureStackTrace: false }))
  // safe: `race` needs R1 (Scope aside, which `start` provides per attempt), R2 and the caller's Scope
  return traced as unknown as Effect.Effect<
    Result<A, L>,
    E1 | E2 | NoCurrentAgent,
    Scope.Scope | Exclude<R1, Scope.Scope> | R2
  >
}
