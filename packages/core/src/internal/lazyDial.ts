import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
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

const noTags: ReadonlyArray<never> = []

interface Attempt<A, E> {
  /** Set once the attempt is given up: its own observer closes its scope. */
  discarded: boolean
  readonly agentId: AgentId
  readonly fiber: Fiber.RuntimeFiber<A, E>
  readonly scope: Scope.CloseableScope
  readonly runFork: <X, Y>(effect: Effect.Effect<X, Y, never>) => Fiber.RuntimeFiber<X, Y>
}

type Restore = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>

/**
 * An exit is "failed" (and may trigger a lookup) only for a typed failure. A
 * defect or an interruption of the dial itself is passed on as it is.
 */
const isTypedFailure = <E>(exit: Exit.Exit<unknown, E>): boolean =>
  exit._tag === "Failure" && Option.isSome(Cause.failureOption(exit.cause))

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

/**
 * The span of one call, made as `Effect.withSpan` makes it, but by hand: the
 * fast path then pays for the span object only, not for the fiber-ref and
 * context updates `withSpan` does around it (a third of the fast path's cost).
 */
const startSpan = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  clock: Clock.Clock,
  attributes: Readonly<Record<string, string>>
): Tracer.Span | undefined => {
  if (!fiber.getFiberRef(FiberRef.currentTracerEnabled)) return undefined
  const context = fiber.currentContext
  if (Context.get(context, Tracer.DisablePropagation)) return undefined
  const tracer = Context.get(fiber.currentDefaultServices, Tracer.Tracer)
  const parent = Context.getOption(context, Tracer.ParentSpan)
  const links = Chunk.toReadonlyArray(fiber.getFiberRef(FiberRef.currentTracerSpanLinks))
  const startTime = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled) ? clock.unsafeCurrentTimeNanos() : 0n
  const span = tracer.span("LazyDial.dial", parent, Context.empty(), links, startTime, "client", {})
  HashMap.forEach(fiber.getFiberRef(FiberRef.currentTracerSpanAnnotations), (value, key) => span.attribute(key, value))
  for (const key in attributes) span.attribute(key, attributes[key])
  return span
}

/** @internal */
export const make = <A, E1, R1, L, E2, R2>(
  options: Options<A, E1, R1, L, E2, R2>
): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent, Scope.Scope | Exclude<R1, Scope.Scope> | R2> => {
  const { agentId, workspaceId } = options
  const delay = Duration.decode(options.delay)
  const attributes = { "lazydial.agent_id": agentId, "lazydial.workspace_id": workspaceId }
  return Effect.withFiberRuntime<
    Result<A, L>,
    E1 | E2 | NoCurrentAgent,
    Scope.Scope | Exclude<R1, Scope.Scope> | R2
  >((parent, status) => {
    const callerContext = parent.currentContext as Context.Context<Exclude<R1, Scope.Scope> | R2 | Scope.Scope> // safe: this effect requires exactly that
    const clock = Context.get(parent.currentDefaultServices, Clock.Clock)
    const startedAt = clock.unsafeCurrentTimeNanos()
    const span = startSpan(parent, clock, attributes)
    const callerScope = Context.get(callerContext, Scope.Scope)

    // Attempts run as root fibers on the caller's runtime (its services, clock,
    // tracer, and our span as their parent), started synchronously: a dial that
    // is ready at once has finished when `startDial` returns, with no timer, no
    // scheduler hop and no lookup. Being roots, they are never joined, so
    // nothing ever waits for them. Each gets its own Scope, a child of the
    // caller's, and starts interruptible, both set in its runtime up front:
    // `Scope.extend` and `Effect.interruptible` would cost a fiber-ref update each.
    const attemptContext = span === undefined ? callerContext : Context.add(callerContext, Tracer.ParentSpan, span)
    const fiberRefs = parent.getFiberRefs()
    const runtimeFlags = RuntimeFlags.enable(status.runtimeFlags, RuntimeFlags.Interruption)
    // Lookups and scope closes run on this one; the fast path never needs it.
    let sharedRunFork: ReturnType<typeof Runtime.runFork<Exclude<R1, Scope.Scope> | R2 | Scope.Scope>> | undefined
    const runFork = <X, Y>(effect: Effect.Effect<X, Y, Exclude<R1, Scope.Scope> | R2 | Scope.Scope>) => {
      sharedRunFork ??= Runtime.runFork(Runtime.make({ context: attemptContext, runtimeFlags, fiberRefs }))
      return sharedRunFork(effect)
    }

    const end = (outcome: Outcome, exit: Exit.Exit<unknown, unknown>): void => {
      outcomeCounters[outcome].unsafeUpdate(1, noTags)
      const now = clock.unsafeCurrentTimeNanos()
      if (exit._tag === "Success") connectSeconds.unsafeUpdate(Number(now - startedAt) / 1e9, noTags)
      if (span !== undefined) {
        span.attribute("lazydial.outcome", outcome)
        span.end(now, exit)
      }
    }

    const succeed = (
      attempt: Attempt<A, E1>,
      connection: A,
      outcome: SuccessOutcome,
      current: Option.Option<L>
    ): Effect.Effect<Result<A, L>> => {
      const result: Result<A, L> = {
        connection,
        agentId: attempt.agentId,
        switched: attempt.agentId !== agentId,
        outcome,
        current
      }
      end(outcome, Exit.succeed(result))
      return Effect.succeed(result)
    }

    const fail = <E>(cause: Cause.Cause<E>, outcome: Outcome): Effect.Effect<never, E> => {
      end(outcome, Exit.failCause(cause))
      return Effect.failCause(cause)
    }

    const noCurrentAgent = () => fail(Cause.fail(new NoCurrentAgent({ workspaceId })), "no_current_agent")

    // The attempt's finalizers were registered on the attempt's fiber. Effect
    // runs a finalizer with the fiber refs of the fiber that registered it,
    // patching them into the fiber that closes the scope; done on the caller's
    // fiber, that patch grows the caller's fiber-ref stacks by two entries per
    // dial, for ever. So the attempt's scope is always closed on a root fiber
    // of its own runtime, and the caller only waits for it.
    const closeOnRoot = (attempt: Attempt<A, E1>, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
      Effect.suspend(() => {
        // A discarded attempt's scope is closed when its fiber ends; a second
        // close would only start a fiber to find the scope closed.
        if (attempt.discarded) return Effect.void
        const closing = attempt.runFork(Scope.close(attempt.scope, exit))
        const done = closing.unsafePoll()
        return done !== null ? done : Effect.flatten(awaitExit(closing))
      })

    const startDial = (target: AgentId): Effect.Effect<Attempt<A, E1>> =>
      Effect.flatMap(Scope.make(ExecutionStrategy.sequential), (scope) => {
        // The same runtime closes the scope, so the finalizers' fiber-ref patch
        // is empty but for the fiber ids.
        const attemptRunFork = Runtime.runFork(Runtime.make({
          context: Context.add(attemptContext, Scope.Scope, scope),
          runtimeFlags,
          fiberRefs
        }))
        const attempt: Attempt<A, E1> = {
          discarded: false,
          agentId: target,
          scope,
          runFork: attemptRunFork,
          fiber: attemptRunFork(
            options.dial(target) as Effect.Effect<A, E1, Exclude<R1, Scope.Scope> | R2 | Scope.Scope>
          ) // safe: R1 is provided by the context above
        }
        return Effect.as(Scope.addFinalizerExit(callerScope, (exit) => closeOnRoot(attempt, exit)), attempt)
      })

    // Nobody will use this attempt's connection. Its scope is closed as soon as
    // the attempt ends, so a connection that arrives late is released then,
    // once, and the caller never waits for it.
    const discard = (attempt: Attempt<A, E1>): void => {
      const close = (exit: Exit.Exit<A, E1>) => {
        attempt.runFork(Scope.close(attempt.scope, Exit.asVoid(exit)))
      }
      attempt.discarded = true
      const done = attempt.fiber.unsafePoll()
      if (done !== null) return close(done)
      attempt.fiber.unsafeInterruptAsFork(parent.id())
      attempt.fiber.addObserver(close)
    }

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
          if (exit._tag === "Success") return succeed(attempt, exit.value, outcome, current)
          discard(attempt)
          return fail(exit.cause, "failed")
        }
      )

    const lookupNow = (restore: Restore, pending: Attempt<A, E1> | undefined) =>
      Effect.suspend(() => {
        lookupCounter.unsafeUpdate(1, noTags)
        const lookup = runFork(Effect.interruptible(options.lookup(workspaceId)))
        return Effect.onInterrupt(restore(awaitExit(lookup)), () =>
          Effect.sync(() => {
            lookup.unsafeInterruptAsFork(parent.id())
            if (pending !== undefined) discard(pending)
          }))
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
            if (!isTypedFailure(lookupExit)) {
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

    const afterFirstExit = (
      restore: Restore,
      first: Attempt<A, E1>,
      exit: Exit.Exit<A, E1>
    ): Effect.Effect<Result<A, L>, E1 | E2 | NoCurrentAgent> => {
      if (exit._tag === "Success") return succeed(first, exit.value, "fast", Option.none())
      if (isTypedFailure(exit)) return afterFastFailure(restore, first)
      discard(first)
      return fail(exit.cause, "failed")
    }

    return Effect.flatMap(startDial(agentId), (first) => {
      const done = first.fiber.unsafePoll()
      // The fast path: nothing below this line runs for a dial that is ready at once.
      if (done !== null && done._tag === "Success") return succeed(first, done.value, "fast", Option.none())
      return Effect.onInterrupt(
        Effect.uninterruptibleMask((restore) => {
          if (done !== null) return afterFirstExit(restore, first, done)
          if (Duration.isZero(delay)) return afterDelay(restore, first)
          return Effect.flatMap(
            Effect.onInterrupt(
              restore(Effect.timeoutOption(awaitExit(first.fiber), delay)),
              () => Effect.sync(() => discard(first))
            ),
            (early) => Option.isSome(early) ? afterFirstExit(restore, first, early.value) : afterDelay(restore, first)
          )
        }),
        (interruptors) =>
          Effect.sync(() => end("interrupted", Exit.failCause(Cause.interrupt(FiberId.combineAll(interruptors)))))
      )
    })
  })
}
