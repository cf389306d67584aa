import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import { NoCurrentAgent } from "../Errors.js"
import type { AgentId, WorkspaceId } from "../Ids.js"

/** @internal */
export type Outcome =
  | "fast"
  | "confirmed"
  | "lookup_failed_kept"
  | "switched"
  | "retried"
  | "no_current_agent"
  | "failed"
  | "interrupted"

/** @internal */
export const outcomes: ReadonlyArray<Outcome> = [
  "fast",
  "confirmed",
  "lookup_failed_kept",
  "switched",
  "retried",
  "no_current_agent",
  "failed",
  "interrupted"
]

/** @internal */
export type SuccessOutcome = "fast" | "confirmed" | "lookup_failed_kept" | "switched" | "retried"

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
  readonly delay: Duration.DurationInput
}

// Metric objects are built once: tagging per call would allocate a key per dial.
const outcomeCounter = Metric.counter("lazydial_dial_outcomes_total", {
  description: "Calls of dialWithLazyValidation, by outcome",
  incremental: true
})
/** @internal */
export const outcomeCounters: Readonly<Record<Outcome, Metric.Metric.Counter<number>>> = Object.fromEntries(
  outcomes.map((outcome) => [outcome, Metric.tagged(outcomeCounter, "outcome", outcome)])
) as Record<Outcome, Metric.Metric.Counter<number>> // safe: built from the full `outcomes` list
/** @internal */
export const lookupCounter = Metric.counter("lazydial_lookups_total", {
  description: "Latest-agent lookups made by dialWithLazyValidation",
  incremental: true
})
/** @internal */
export const connectSeconds = Metric.histogram(
  "lazydial_connect_seconds",
  MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 18 }),
  "Time from the call of dialWithLazyValidation to a connection, in seconds"
)

interface Attempt<A, E> {
  readonly agentId: AgentId
  readonly fiber: Fiber.RuntimeFiber<A, E>
  readonly scope: Scope.CloseableScope
}

/**
 * An exit is "failed" (and may trigger a lookup) only for a typed failure. A
 * defect or an interruption of the dial itself is passed on as it is.
 */
const typedFailure = <E>(exit: Exit.Exit<unknown, E>): Option.Option<E> =>
  exit._tag === "Failure" ? Cause.failureOption(exit.cause) : Option.none()

/**
 * Waits for a fiber without joining it: interrupting the waiter only removes
 * the observer and never waits for the observed fiber.
 */
const awaitExit = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): Effect.Effect<Exit.Exit<A, E>> =>
  Effect.suspend(() => {
    const done = fiber.unsafePoll()
    if (done !== null) return Effect.succeed(done)
    return Effect.async<Exit.Exit<A, E>>((resume) => {
      const observer = (exit: Exit.Exit<A, E>) => resume(Effect.succeed(exit))
      fiber.addObserver(observer)
      return Effect.sync(() => fiber.removeObserver(observer))
    })
  })

type Restore = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>

/** @internal */
export const make = <A, E1, R1, L, E2, R2>(
  options: Options<A, E1, R1, L, E2, R2>
): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent, Scope.Scope | Exclude<R1, Scope.Scope> | R2> => {
  const { agentId, workspaceId } = options
  const delay = Duration.decode(options.delay)
  const program = Effect.withFiberRuntime<
    Result<A, L>,
    E1 | E2 | NoCurrentAgent,
    Scope.Scope | Exclude<R1, Scope.Scope> | R2
  >((parent, status) => {
    // Attempts run as root fibers on the caller's runtime (its services, clock,
    // tracer and span), started synchronously: a dial that is ready at once has
    // finished when `startDial` returns, with no timer, no scheduler hop and no
    // lookup. Being roots, they are never joined, so nothing waits for them.
    const context = parent.currentContext as Context.Context<Exclude<R1, Scope.Scope> | R2 | Scope.Scope> // safe: this effect requires exactly that
    const runtime = Runtime.make({ context, runtimeFlags: status.runtimeFlags, fiberRefs: parent.getFiberRefs() })
    const runFork = Runtime.runFork(runtime)
    const callerScope = Context.get(context, Scope.Scope)
    const clock = Context.get(parent.currentDefaultServices, Clock.Clock)
    const startedAt = clock.unsafeCurrentTimeNanos()

    const record = (outcome: Outcome): Effect.Effect<void> => {
      const counted = Effect.zipRight(
        Effect.annotateCurrentSpan("lazydial.outcome", outcome),
        Metric.increment(outcomeCounters[outcome])
      )
      if (outcome === "failed" || outcome === "no_current_agent" || outcome === "interrupted") return counted
      return Effect.zipRight(
        counted,
        Effect.suspend(() => Metric.update(connectSeconds, Number(clock.unsafeCurrentTimeNanos() - startedAt) / 1e9))
      )
    }

    const startDial = (target: AgentId): Effect.Effect<Attempt<A, E1>> =>
      Effect.map(Scope.fork(callerScope, ExecutionStrategy.sequential), (scope) => ({
        agentId: target,
        scope,
        fiber: runFork(Effect.interruptible(Scope.extend(options.dial(target), scope)))
      }))

    // Nobody will use this attempt's connection. Its scope is closed as soon as
    // the attempt ends, so a connection that arrives late is released then,
    // once, and the caller never waits for it.
    const discard = (attempt: Attempt<A, E1>): void => {
      const close = (exit: Exit.Exit<A, E1>) => {
        runFork(Scope.close(attempt.scope, Exit.asVoid(exit)))
      }
      const done = attempt.fiber.unsafePoll()
      if (done !== null) return close(done)
      attempt.fiber.unsafeInterruptAsFork(parent.id())
      attempt.fiber.addObserver(close)
    }

    const finish = (
      attempt: Attempt<A, E1>,
      connection: A,
      outcome: SuccessOutcome,
      current: Option.Option<L>
    ): Effect.Effect<Result<A, L>> =>
      Effect.as(record(outcome), {
        connection,
        agentId: attempt.agentId,
        switched: attempt.agentId !== agentId,
        outcome,
        current
      })

    const fail = <E>(cause: Cause.Cause<E>, outcome: Outcome): Effect.Effect<never, E> =>
      Effect.zipRight(record(outcome), Effect.failCause(cause))

    const noCurrentAgent = () => fail(Cause.fail(new NoCurrentAgent({ workspaceId })), "no_current_agent")

    // Waits for an attempt, interruptibly. If the caller is interrupted, the
    // attempt is discarded, not awaited.
    const settle = (
      restore: Restore,
      attempt: Attempt<A, E1>,
      outcome: SuccessOutcome,
      current: Option.Option<L>
    ): Effect.Effect<Result<A, L>, E1> =>
      Effect.flatMap(
        Effect.onInterrupt(restore(awaitExit(attempt.fiber)), () => Effect.sync(() => discard(attempt))),
        (exit) => {
          if (exit._tag === "Success") return finish(attempt, exit.value, outcome, current)
          discard(attempt)
          return fail(exit.cause, "failed")
        }
      )

    const lookupNow = (restore: Restore, pending: Attempt<A, E1> | undefined) =>
      Effect.suspend(() => {
        const lookup = runFork(Effect.interruptible(options.lookup(workspaceId)))
        return Effect.zipLeft(
          Effect.onInterrupt(restore(awaitExit(lookup)), () =>
            Effect.sync(() => {
              lookup.unsafeInterruptAsFork(parent.id())
              if (pending !== undefined) discard(pending)
            })),
          Metric.increment(lookupCounter)
        )
      })

    // Outcome 6: the bound agent failed before the delay. Ask at once.
    const afterFastFailure = (
      restore: Restore,
      failed: Attempt<A, E1>
    ): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent> => {
      discard(failed)
      return Effect.flatMap(
        lookupNow(restore, undefined),
        (lookupExit): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent> => {
          if (lookupExit._tag === "Failure") return fail(lookupExit.cause, "failed")
          const current = lookupExit.value
          if (Option.isNone(current)) return noCurrentAgent()
          const next = options.agentIdOf(current.value)
          return Effect.flatMap(
            startDial(next),
            (attempt) => settle(restore, attempt, next === agentId ? "retried" : "switched", current)
          )
        }
      )
    }

    // Outcomes 2 to 5: the bound agent is still pending at the delay.
    const afterDelay = (
      restore: Restore,
      pending: Attempt<A, E1>
    ): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent> =>
      Effect.flatMap(
        lookupNow(restore, pending),
        (lookupExit): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent> => {
          if (lookupExit._tag === "Failure") {
            if (Option.isNone(typedFailure(lookupExit))) {
              discard(pending)
              return fail(lookupExit.cause, "failed")
            }
            return settle(restore, pending, "lookup_failed_kept", Option.none())
          }
          const current = lookupExit.value
          if (Option.isNone(current)) {
            discard(pending)
            return noCurrentAgent()
          }
          const next = options.agentIdOf(current.value)
          if (next === agentId) return settle(restore, pending, "confirmed", current)
          discard(pending)
          return Effect.flatMap(startDial(next), (attempt) => settle(restore, attempt, "switched", current))
        }
      )

    const onFirstExit = (
      restore: Restore,
      first: Attempt<A, E1>,
      exit: Exit.Exit<A, E1>
    ): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent> => {
      if (exit._tag === "Success") return finish(first, exit.value, "fast", Option.none())
      if (Option.isSome(typedFailure(exit))) return afterFastFailure(restore, first)
      discard(first)
      return fail(exit.cause, "failed")
    }

    return Effect.onInterrupt(
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(startDial(agentId), (first) => {
          const done = first.fiber.unsafePoll()
          if (done !== null) return onFirstExit(restore, first, done)
          if (Duration.isZero(delay)) return afterDelay(restore, first)
          return Effect.flatMap(
            Effect.onInterrupt(
              restore(Effect.timeoutOption(awaitExit(first.fiber), delay)),
              () => Effect.sync(() => discard(first))
            ),
            (early) => Option.isSome(early) ? onFirstExit(restore, first, early.value) : afterDelay(restore, first)
          )
        })
      ),
      () => record("interrupted")
    )
  })
  return Effect.withSpan(program, "LazyDial.dial", {
    attributes: { "lazydial.agent_id": agentId, "lazydial.workspace_id": workspaceId }
  })
}
