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
import {
  connectSeconds,
  learnedFrom,
  lookupCounter,
  type Outcome,
  outcomeCounters,
  type SuccessOutcome
} from "./outcomes.js"

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

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * What one run of a call fixes at its start. `restore` makes a wait
 * interruptible: the race itself is not, so an interruption can only land in
 * a wait, where the attempts it leaves behind are given up.
 */
interface Call {
  readonly options: Options<unknown, unknown, never, unknown, unknown, never>
  readonly wait: Duration.Duration
  readonly restore: Restore
  readonly startedAt: bigint
  /** The attempts an interrupted caller gives up: those not yet discarded or accepted. */
  pending: ReadonlyArray<Attempt>
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
        Effect.forkIn(Scope.provide(call.options.dial(agentId), scope), scope, { startImmediately: true }),
        (fiber) => ({ agentId, scope, fiber })
      )))

/**
 * Nobody will use this attempt. Its Scope is closed on a fiber that Scope owns:
 * closing it detaches it from the caller's Scope at once, interrupts the dial,
 * waits for it there, and releases whatever it delivered, exactly once.
 */
const discard = (attempt: Attempt): Effect.Effect<void> =>
  Effect.asVoid(Effect.forkIn(Scope.close(attempt.scope, Exit.void), attempt.scope, { startImmediately: true }))

/** Records the outcome in the span and the counter. */
const count = (call: Call, outcome: Outcome) =>
  Effect.andThen(
    // Set at the end, so that a pending call's span holds no attributes.
    Effect.annotateCurrentSpan({
      "lazydial.agent_id": call.options.agentId,
      "lazydial.workspace_id": call.options.workspaceId,
      "lazydial.outcome": outcome
    }),
    Metric.update(outcomeCounters[outcome], 1)
  )

/** A wait of the caller, the only place it can be interrupted: then it gives up `pending` (see `make`). */
const wait = <A, E>(call: Call, effect: Effect.Effect<A, E>, pending: ReadonlyArray<Attempt>) => {
  call.pending = pending
  return call.restore(effect)
}

/** A connection: the outcome, its connect time, and what a learned delay makes of it. */
const succeed = (
  call: Call,
  attempt: Attempt,
  connection: unknown,
  outcome: SuccessOutcome,
  current: Option.Option<unknown>
): Effect.Effect<Result<unknown, unknown>> =>
  Effect.flatMap(Clock.currentTimeNanos, (now) => {
    const millis = Number(now - call.startedAt) / 1e6
    const learned = call.options.learned
    const moved = learned !== undefined && (learnedFrom as ReadonlyArray<Outcome>).includes(outcome) &&
      learned.record(millis)
    const switched = attempt.agentId !== call.options.agentId
    return count(call, outcome).pipe(
      Effect.andThen(Metric.update(connectSeconds, millis / 1000)),
      Effect.andThen(moved ? Metric.update(delayGauges.adaptive, Duration.toSeconds(learned.delay)) : Effect.void),
      Effect.as({ connection, agentId: attempt.agentId, switched, outcome, current })
    )
  })

const fail = (call: Call, cause: Cause.Cause<unknown>): Effect.Effect<never, unknown> => {
  const error = Cause.findErrorOption(cause)
  const outcome = Option.isSome(error) && error.value instanceof NoCurrentAgent ? "no_current_agent" : "failed"
  return Effect.andThen(count(call, outcome), Effect.failCause(cause))
}

const noCurrentAgent = (call: Call) =>
  fail(call, Cause.fail(new NoCurrentAgent({ workspaceId: call.options.workspaceId })))

/** Waits for an attempt and ends the call with it: its connection, or its error. */
const settle = (call: Call, attempt: Attempt, outcome: SuccessOutcome, current: Option.Option<unknown>) =>
  Effect.flatMap(wait(call, Fiber.await(attempt.fiber), [attempt]), (exit) => {
    if (Exit.isSuccess(exit)) return succeed(call, attempt, exit.value, outcome, current)
    return Effect.andThen(discard(attempt), fail(call, exit.cause))
  })

/** Asks which agent is current. */
const lookupNow = (call: Call, pending: ReadonlyArray<Attempt>) =>
  Effect.andThen(
    Metric.update(lookupCounter, 1),
    wait(call, Effect.exit(call.options.lookup(call.options.workspaceId)), pending)
  )

/** The bound agent's exit if it ends before the delay (or the early-validation signal), None then. */
const firstExitOrDelay = (call: Call, first: Attempt) => {
  const exit = Fiber.await(first.fiber)
  const signal = call.options.validateNow
  const early = signal === undefined
    ? Effect.timeoutOption(exit, call.wait)
    : Effect.raceFirst(Effect.asSome(exit), Effect.as(Effect.raceFirst(Effect.sleep(call.wait), signal), Option.none()))
  return wait(call, early, [first])
}

/** Outcomes 2 to 6: the bound agent failed before the delay, or is still pending at it. */
const slowPath = (call: Call, first: Attempt, early: Option.Option<Exit.Exit<unknown, unknown>>) =>
  Effect.gen(function*() {
    const bound = call.options.agentId
    const agentIdOf = call.options.agentIdOf
    if (Option.isSome(early)) {
      yield* discard(first)
      const exit = early.value as Exit.Failure<unknown, unknown>
      // Only a typed failure is a fast failure: a defect or an interruption is passed on as it is.
      if (!Cause.hasFails(exit.cause)) return yield* fail(call, exit.cause)
      const lookup = yield* lookupNow(call, [])
      if (Exit.isFailure(lookup)) return yield* fail(call, lookup.cause) // 6c
      if (Option.isNone(lookup.value)) return yield* noCurrentAgent(call) // 6d
      const next = agentIdOf(lookup.value.value)
      const retry = yield* start(call, next)
      return yield* settle(call, retry, next === bound ? "retried" : "switched", lookup.value) // 6b, 6a
    }
    const lookup = yield* lookupNow(call, [first])
    if (Exit.isFailure(lookup)) {
      if (Cause.hasFails(lookup.cause)) return yield* settle(call, first, "lookup_failed_kept", Option.none()) // 3
      yield* discard(first)
      return yield* fail(call, lookup.cause)
    }
    if (Option.isSome(lookup.value) && agentIdOf(lookup.value.value) === bound) {
      return yield* settle(call, first, "confirmed", lookup.value) // 2
    }
    yield* discard(first)
    if (Option.isNone(lookup.value)) return yield* noCurrentAgent(call) // 5
    const next = yield* start(call, agentIdOf(lookup.value.value))
    return yield* settle(call, next, "switched", lookup.value) // 4
  })

/** @internal */
export const make = <A, E1, R1, L, E2, R2>(
  options: Options<A, E1, R1, L, E2, R2>
): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent, Scope.Scope | Exclude<R1, Scope.Scope> | R2> => {
  // safe: the race only passes values between the caller's own dial, lookup and result
  const erased = options as unknown as Call["options"]
  const fixed = options.learned === undefined ? Duration.fromInputUnsafe(options.delay) : undefined
  const race = Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Clock.currentTimeNanos, (startedAt) => {
      // Read per run, not per construction: an effect may be run again, and a learned delay moves.
      const call: Call = { options: erased, wait: fixed ?? options.learned!.delay, restore, startedAt, pending: [] }
      const table = Effect.flatMap(start(call, erased.agentId), (first) =>
        Effect.flatMap(firstExitOrDelay(call, first), (early) =>
          Option.isSome(early) && Exit.isSuccess(early.value)
            ? succeed(call, first, early.value.value, "fast", Option.none()) // 1
            : slowPath(call, first, early)))
      return Effect.onInterrupt(
        table,
        () =>
          Effect.andThen(Effect.forEach(call.pending, discard, { discard: true }), count(call, "interrupted"))
      )
    })
  ).pipe(Effect.withSpan("LazyDial.dial", { kind: "client" }, { captureStackTrace: false }))
  // safe: `race` needs R1 (Scope aside, which `start` provides per attempt), R2 and the caller's Scope
  return race as unknown as Effect.Effect<
    Result<A, L>,
    E1 | E2 | NoCurrentAgent,
    Scope.Scope | Exclude<R1, Scope.Scope> | R2
  >
}
