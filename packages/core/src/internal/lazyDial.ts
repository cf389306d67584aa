/**
 * The race of `dialWithLazyValidation`, written as its outcome table: one
 * top-level function per step (`startAttempt`, `firstExitOrDelay`,
 * `lookupNow`, `discard`, `settle`) and one per row group (`fast`,
 * `afterFastFailure`, `afterDelay`).
 *
 * A pending call holds one fiber of its own, the dial's. The delay is a timer
 * callback, not a fiber, and the caller waits for "the dial ended or the delay
 * passed" in one `Effect.async`. See docs/core.md for why this is not
 * `Effect.race`, `timeout` or `disconnect`, and docs/performance.md for what
 * each piece costs.
 */
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
import type * as FiberRefs from "effect/FiberRefs"
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
import type { Sketch } from "./adaptiveDelay.js"

/**
 * How a successful call ends: the one list every package derives its types,
 * metric labels, Schema literals and report rows from.
 *
 * @internal
 */
export const successOutcomes = ["fast", "confirmed", "lookup_failed_kept", "switched", "retried"] as const

/** @internal */
export type SuccessOutcome = typeof successOutcomes[number]

/**
 * Every label of the outcome counter and span attribute: the success outcomes,
 * then how a call ends without a connection.
 *
 * @internal
 */
export const outcomes = [...successOutcomes, "no_current_agent", "failed", "interrupted"] as const

/** @internal */
export type Outcome = typeof outcomes[number]

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
  /** Ends the delay at once when it completes (an early-validation signal); never ends it otherwise. */
  readonly validateNow?: Effect.Effect<void> | undefined
  /**
   * A learned delay: when given, a call uses its current delay instead of
   * `delay`, and feeds it the connect times of the outcomes in `learnedFrom`.
   */
  readonly learned?: Sketch | undefined
}

/**
 * The outcomes whose connect time feeds a learned delay: the bound agent
 * answered and is (or was not doubted to be) the current one. A failed dial,
 * a switch or a retry times another agent, or one that just failed, and says
 * nothing about the healthy round trip. `confirmed` is in, although its dial
 * crossed the delay: without it, slow but healthy dials could never raise the
 * delay above itself, and a busy machine would pay a lookup on every turn.
 * `lookup_failed_kept` is out: nobody said its agent is still current.
 *
 * @internal
 */
export const learnedFrom = ["fast", "confirmed"] as const satisfies ReadonlyArray<SuccessOutcome>

const feedsLearned: Readonly<Record<Outcome, boolean>> = Object.fromEntries(
  outcomes.map((outcome) => [outcome, (learnedFrom as ReadonlyArray<Outcome>).includes(outcome)])
) as Record<Outcome, boolean> // safe: built from the full `outcomes` list

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

type Failure<E1, E2> = E1 | E2 | NoCurrentAgent
type Restore = <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => Effect.Effect<X, Y, Z>

/** What one call fixes at its start, shared read-only by the steps below. */
interface Call<A, E1, L, E2, R> {
  readonly options: Options<A, E1, R, L, E2, R>
  readonly delay: Duration.Duration
  readonly caller: Fiber.RuntimeFiber<unknown, unknown>
  readonly callerScope: Scope.Scope
  readonly clock: Clock.Clock
  readonly startedAt: bigint
  readonly span: Tracer.Span | undefined
  /** The caller's context, with our span as the parent: what attempts and the lookup run in. */
  readonly context: Context.Context<R>
  readonly fiberRefs: FiberRefs.FiberRefs
  readonly runtimeFlags: RuntimeFlags.RuntimeFlags
}

interface Attempt<A, E> {
  /**
   * Set once the attempt is given up (by `discard`), read by `closeOnRoot`:
   * a discarded attempt's scope is closed by its own fiber's observer, so the
   * caller's finalizer must not close it a second time.
   */
  discarded: boolean
  readonly agentId: AgentId
  readonly fiber: Fiber.RuntimeFiber<A, E>
  readonly scope: Scope.CloseableScope
  readonly runFork: <X, Y>(effect: Effect.Effect<X, Y, never>) => Fiber.RuntimeFiber<X, Y>
}

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
 * Suspends the caller until `register` calls back, interruptibly, unless
 * `ready` already has the answer. An interrupted caller runs the `cancel`
 * that `register` returned and records the `interrupted` outcome, whether the
 * interruption strikes while it waits or was already pending as it got here.
 *
 * This is one `Effect.async` whose canceler does what an `Effect.onInterrupt`
 * around the wait would: each `onInterrupt` keeps about 1.4 KB of frames on a
 * waiting caller's stack (docs/performance.md), and a pending dial waits here.
 */
const waitFor = <X, A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  restore: Restore,
  register: (resume: (x: X) => void) => () => void,
  ready: () => X | null
): Effect.Effect<X> =>
  Effect.withFiberRuntime((caller) => {
    const pending = caller.getFiberRef(FiberRef.interruptedCause)
    // Interrupted while uninterruptible: `restore` would end the wait before it starts.
    if (!Cause.isEmpty(pending)) {
      register(() => {})()
      interrupted(call, pending)
      return restore(Effect.never)
    }
    const done = ready()
    if (done !== null) return Effect.succeed(done)
    return restore(Effect.async<X>((resume) => {
      const cancel = register((x) => resume(Effect.succeed(x)))
      return Effect.withFiberRuntime((interruptedCaller) => {
        cancel()
        interrupted(call, interruptedCaller.getFiberRef(FiberRef.interruptedCause))
        return Effect.void
      })
    }))
  })

const interrupted = <A, E1, L, E2, R>(call: Call<A, E1, L, E2, R>, cause: Cause.Cause<never>): void =>
  end(call, "interrupted", Exit.failCause(Cause.interrupt(FiberId.combineAll(Cause.interruptors(cause)))))

/** `waitFor` the exit of a fiber; `cancel` runs if the caller is interrupted. */
const waitForExit = <X, Y, A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  restore: Restore,
  fiber: Fiber.RuntimeFiber<X, Y>,
  cancel: () => void
): Effect.Effect<Exit.Exit<X, Y>> =>
  waitFor(call, restore, (resume) => {
    fiber.addObserver(resume)
    return () => {
      fiber.removeObserver(resume)
      cancel()
    }
  }, () => fiber.unsafePoll())

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

// The clock every runtime has unless a test or a program replaces it.
const liveClock = Effect.runSync(Effect.clock)
// setTimeout's limit; a longer delay goes through the clock's own sleep.
const maxTimerMillis = 2 ** 31 - 1

/**
 * Calls `wake` once `delay` has passed on the call's clock, and returns a
 * cancel. On the live clock this is a `setTimeout`, the very timer the live
 * clock's `sleep` sets, so no fiber waits for it. On any other clock (the
 * TestClock) it is that clock's `sleep`, on a root fiber of its own: the
 * delay is then exactly the clock's, and `TestClock.adjust` drives it.
 */
const startTimer = <A, E1, L, E2, R>(call: Call<A, E1, L, E2, R>, wake: () => void): () => void => {
  const millis = Duration.toMillis(call.delay)
  if (call.clock === liveClock && millis <= maxTimerMillis) {
    const timer = setTimeout(wake, millis)
    return () => clearTimeout(timer)
  }
  const sleeper = runOnCaller(call, Effect.zipRight(call.clock.sleep(call.delay), Effect.sync(wake)))
  return () => sleeper.unsafeInterruptAsFork(call.caller.id())
}

/**
 * Calls `wake` once, when the delay has passed or when the call's
 * `validateNow` signal completes, whichever is first, and returns a cancel.
 * Without a signal this is the timer alone; with one, the signal is awaited
 * on a root fiber of its own, so only callers that pass a signal pay for it.
 */
const wakeAfter = <A, E1, L, E2, R>(call: Call<A, E1, L, E2, R>, wake: () => void): () => void => {
  const signal = call.options.validateNow
  if (signal === undefined) return startTimer(call, wake)
  // Local to this wait: the timer and the signal may both fire, and `wake` must run once.
  let woken = false
  // Assigned after the timer: a signal that has already fired calls `cancel` before `runOnCaller` returns.
  let watcher: Fiber.RuntimeFiber<void> | undefined = undefined
  const cancel = () => {
    woken = true
    cancelTimer()
    watcher?.unsafeInterruptAsFork(call.caller.id())
  }
  const once = () => {
    if (woken) return
    cancel()
    wake()
  }
  const cancelTimer = startTimer(call, once)
  watcher = runOnCaller(call, Effect.zipRight(signal, Effect.sync(once)))
  return cancel
}

/** Runs an effect on a root fiber of the caller's runtime (its services, clock and tracer, our span as parent). */
const runOnCaller = <X, Y, R, A, E1, L, E2>(call: Call<A, E1, L, E2, R>, effect: Effect.Effect<X, Y, R>) =>
  Runtime.runFork(Runtime.make({ context: call.context, runtimeFlags: call.runtimeFlags, fiberRefs: call.fiberRefs }))(
    effect
  )

/** Records the call's outcome in the metrics and ends its span. */
const end = <A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  outcome: Outcome,
  exit: Exit.Exit<unknown, unknown>
): void => {
  outcomeCounters[outcome].unsafeUpdate(1, noTags)
  const now = call.clock.unsafeCurrentTimeNanos()
  if (exit._tag === "Success") {
    const millis = Number(now - call.startedAt) / 1e6
    connectSeconds.unsafeUpdate(millis / 1000, noTags)
    if (call.options.learned !== undefined && feedsLearned[outcome]) call.options.learned.record(millis)
  }
  if (call.span !== undefined) {
    call.span.attribute("lazydial.outcome", outcome)
    call.span.end(now, exit)
  }
}

const succeed = <A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  attempt: Attempt<A, E1>,
  connection: A,
  outcome: SuccessOutcome,
  current: Option.Option<L>
): Effect.Effect<Result<A, L>> => {
  const result: Result<A, L> = {
    connection,
    agentId: attempt.agentId,
    switched: attempt.agentId !== call.options.agentId,
    outcome,
    current
  }
  end(call, outcome, Exit.succeed(result))
  return Effect.succeed(result)
}

const fail = <E, A, E1, L, E2, R>(call: Call<A, E1, L, E2, R>, cause: Cause.Cause<E>, outcome: Outcome) => {
  end(call, outcome, Exit.failCause(cause))
  return Effect.failCause(cause)
}

const noCurrentAgent = <A, E1, L, E2, R>(call: Call<A, E1, L, E2, R>) =>
  fail(call, Cause.fail(new NoCurrentAgent({ workspaceId: call.options.workspaceId })), "no_current_agent")

/**
 * The attempt's finalizers were registered on the attempt's fiber. Effect
 * runs a finalizer with the fiber refs of the fiber that registered it,
 * patching them into the fiber that closes the scope; done on the caller's
 * fiber, that patch grows the caller's fiber-ref stacks by two entries per
 * dial, for ever. So the attempt's scope is always closed on a root fiber of
 * its own runtime, and the caller only waits for it.
 */
const closeOnRoot = (attempt: Attempt<unknown, unknown>, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (attempt.discarded) return Effect.void
    const closing = attempt.runFork(Scope.close(attempt.scope, exit))
    const done = closing.unsafePoll()
    return done !== null ? done : Effect.flatten(awaitExit(closing))
  })

/**
 * Starts a dial as a root fiber on the caller's runtime, with a Scope of its
 * own (a child of the caller's), started synchronously: a dial that is ready
 * at once has finished when this returns, with no timer, no scheduler hop and
 * no lookup. Being a root, it is never joined, so nothing waits for it. The
 * Scope and interruptibility are set in its runtime up front: `Scope.extend`
 * and `Effect.interruptible` would cost a fiber-ref update each.
 */
const startAttempt = <A, E1, L, E2, R>(call: Call<A, E1, L, E2, R>, target: AgentId): Effect.Effect<Attempt<A, E1>> =>
  Effect.flatMap(Scope.make(ExecutionStrategy.sequential), (scope) => {
    // The same runtime closes the scope, so the finalizers' fiber-ref patch
    // is empty but for the fiber ids.
    const runFork = Runtime.runFork(Runtime.make({
      context: Context.add(call.context, Scope.Scope, scope),
      runtimeFlags: call.runtimeFlags,
      fiberRefs: call.fiberRefs
    }))
    const attempt: Attempt<A, E1> = {
      discarded: false,
      agentId: target,
      scope,
      runFork,
      fiber: runFork(call.options.dial(target))
    }
    return Effect.as(Scope.addFinalizerExit(call.callerScope, (exit) => closeOnRoot(attempt, exit)), attempt)
  })

/**
 * Nobody will use this attempt's connection. Its scope is closed as soon as
 * the attempt ends, so a connection that arrives late is released then, once,
 * and the caller never waits for it.
 */
const discard = <A, E1, L, E2, R>(call: Call<A, E1, L, E2, R>, attempt: Attempt<unknown, unknown>): void => {
  const close = (exit: Exit.Exit<unknown, unknown>) => {
    attempt.runFork(Scope.close(attempt.scope, Exit.asVoid(exit)))
  }
  attempt.discarded = true
  const done = attempt.fiber.unsafePoll()
  if (done !== null) return close(done)
  attempt.fiber.unsafeInterruptAsFork(call.caller.id())
  attempt.fiber.addObserver(close)
}

/**
 * The attempt's exit if it ends before the delay, `None` at the delay: the
 * caller waits once, woken by whichever comes first, the attempt's observer or
 * the delay's timer. An interrupted caller discards the attempt.
 */
const firstExitOrDelay = <A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  restore: Restore,
  attempt: Attempt<A, E1>
): Effect.Effect<Option.Option<Exit.Exit<A, E1>>> =>
  waitFor<Option.Option<Exit.Exit<A, E1>>, A, E1, L, E2, R>(call, restore, (resume) => {
    const onExit = (exit: Exit.Exit<A, E1>) => {
      cancelDelay()
      resume(Option.some(exit))
    }
    // Observe first: a signal that has already fired wakes the caller inside `wakeAfter`.
    attempt.fiber.addObserver(onExit)
    const cancelDelay = wakeAfter(call, () => {
      attempt.fiber.removeObserver(onExit)
      resume(Option.none())
    })
    return () => {
      cancelDelay()
      attempt.fiber.removeObserver(onExit)
      discard(call, attempt)
    }
  }, () => null)

/**
 * Waits for an attempt, interruptibly. If the caller is interrupted, the
 * attempt is discarded, not awaited.
 */
const settle = <A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  restore: Restore,
  attempt: Attempt<A, E1>,
  outcome: SuccessOutcome,
  current: Option.Option<L>
): Effect.Effect<Result<A, L>, E1> =>
  Effect.flatMap(
    waitForExit(call, restore, attempt.fiber, () => discard(call, attempt)),
    (exit) => {
      if (exit._tag === "Success") return succeed(call, attempt, exit.value, outcome, current)
      discard(call, attempt)
      return fail(call, exit.cause, "failed")
    }
  )

/** Asks which agent is current, interruptibly; an interrupted caller also discards `pending`. */
const lookupNow = <L, E2, A, E1, R>(
  call: Call<A, E1, L, E2, R>,
  restore: Restore,
  pending: Attempt<unknown, unknown> | undefined
): Effect.Effect<Exit.Exit<Option.Option<L>, E2>> =>
  Effect.suspend(() => {
    lookupCounter.unsafeUpdate(1, noTags)
    const lookup = runOnCaller(call, Effect.interruptible(call.options.lookup(call.options.workspaceId)))
    return waitForExit(call, restore, lookup, () => {
      lookup.unsafeInterruptAsFork(call.caller.id())
      if (pending !== undefined) discard(call, pending)
    })
  })

/** Dials the agent the lookup named, and waits for it. */
const dialCurrent = <A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  restore: Restore,
  current: L,
  outcome: (next: AgentId) => SuccessOutcome
): Effect.Effect<Result<A, L>, E1> => {
  const next = call.options.agentIdOf(current)
  return Effect.flatMap(
    startAttempt(call, next),
    (attempt) => settle(call, restore, attempt, outcome(next), Option.some(current))
  )
}

/** Outcome 6: the bound agent failed before the delay. Ask at once, then retry it (6b) or switch (6a). */
const afterFastFailure = <A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  restore: Restore,
  failed: Attempt<A, E1>
): Effect.Effect<Result<A, L>, Failure<E1, E2>> => {
  discard(call, failed)
  return Effect.flatMap(lookupNow(call, restore, undefined), (lookup): Effect.Effect<Result<A, L>, Failure<E1, E2>> => {
    if (lookup._tag === "Failure") return fail(call, lookup.cause, "failed") // 6c
    if (Option.isNone(lookup.value)) return noCurrentAgent(call) // 6d
    return dialCurrent(
      call,
      restore,
      lookup.value.value,
      (next) => next === call.options.agentId ? "retried" : "switched"
    )
  })
}

/** Outcomes 2 to 5: the bound agent is still pending at the delay. */
const afterDelay = <A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  restore: Restore,
  pending: Attempt<A, E1>
): Effect.Effect<Result<A, L>, Failure<E1, E2>> =>
  Effect.flatMap(lookupNow(call, restore, pending), (lookup): Effect.Effect<Result<A, L>, Failure<E1, E2>> => {
    if (lookup._tag === "Failure") {
      if (isTypedFailure(lookup)) return settle(call, restore, pending, "lookup_failed_kept", Option.none()) // 3
      discard(call, pending)
      return fail(call, lookup.cause, "failed")
    }
    if (Option.isNone(lookup.value)) { // 5
      discard(call, pending)
      return noCurrentAgent(call)
    }
    const current = lookup.value.value
    if (call.options.agentIdOf(current) === call.options.agentId) { // 2
      return settle(call, restore, pending, "confirmed", lookup.value)
    }
    discard(call, pending) // 4
    return dialCurrent(call, restore, current, () => "switched")
  })

/** The bound agent's dial ended before the delay: outcome 1, or 6, or its defect passed on. */
const afterFirstExit = <A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  restore: Restore,
  first: Attempt<A, E1>,
  exit: Exit.Exit<A, E1>
): Effect.Effect<Result<A, L>, Failure<E1, E2>> => {
  if (exit._tag === "Success") return succeed(call, first, exit.value, "fast", Option.none())
  if (isTypedFailure(exit)) return afterFastFailure(call, restore, first)
  discard(call, first)
  return fail(call, exit.cause, "failed")
}

/**
 * Everything off the fast path: wait for the first exit or the delay, then
 * follow the table. Uninterruptible but for the waits, so that every
 * interruption meets a `waitFor`, which cleans up and records it.
 */
const slowPath = <A, E1, L, E2, R>(
  call: Call<A, E1, L, E2, R>,
  first: Attempt<A, E1>,
  done: Exit.Exit<A, E1> | null
): Effect.Effect<Result<A, L>, Failure<E1, E2>> =>
  Effect.uninterruptibleMask((restore) => {
    if (done !== null) return afterFirstExit(call, restore, first, done)
    if (Duration.isZero(call.delay)) return afterDelay(call, restore, first)
    return Effect.flatMap(
      firstExitOrDelay(call, restore, first),
      (early) =>
        Option.isSome(early) ? afterFirstExit(call, restore, first, early.value) : afterDelay(call, restore, first)
    )
  })

/** @internal */
export const make = <A, E1, R1, L, E2, R2>(
  options: Options<A, E1, R1, L, E2, R2>
): Effect.Effect<Result<A, L>, Failure<E1, E2>, Scope.Scope | Exclude<R1, Scope.Scope> | R2> =>
  Effect.withFiberRuntime((caller, status) => {
    const context = caller.currentContext as Context.Context<Exclude<R1, Scope.Scope> | R2 | Scope.Scope> // safe: this effect requires exactly that
    const clock = Context.get(caller.currentDefaultServices, Clock.Clock)
    const startedAt = clock.unsafeCurrentTimeNanos()
    const span = startSpan(caller, clock, {
      "lazydial.agent_id": options.agentId,
      "lazydial.workspace_id": options.workspaceId
    })
    const call: Call<A, E1, L, E2, Exclude<R1, Scope.Scope> | R2 | Scope.Scope> = {
      // safe: R is R1 (but for Scope, which `startAttempt` provides) and R2, and `context` provides it
      options: options as Options<
        A,
        E1,
        Exclude<R1, Scope.Scope> | R2 | Scope.Scope,
        L,
        E2,
        Exclude<R1, Scope.Scope> | R2 | Scope.Scope
      >,
      delay: options.learned === undefined ? Duration.decode(options.delay) : options.learned.delay,
      caller,
      callerScope: Context.get(context, Scope.Scope),
      clock,
      startedAt,
      span,
      context: span === undefined ? context : Context.add(context, Tracer.ParentSpan, span),
      fiberRefs: caller.getFiberRefs(),
      runtimeFlags: RuntimeFlags.enable(status.runtimeFlags, RuntimeFlags.Interruption)
    }
    return Effect.flatMap(startAttempt(call, options.agentId), (first) => {
      const done = first.fiber.unsafePoll()
      // The fast path (outcome 1, ready at once): nothing below this line runs for it.
      if (done !== null && done._tag === "Success") return succeed(call, first, done.value, "fast", Option.none())
      return slowPath(call, first, done)
    })
  })
