import type { AgentLookup, ChatId, LazyDial, WorkspaceId } from "@lazydial/core"
import { CurrentAgent, NoCurrentAgent } from "@lazydial/core"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import type { BindingStore, Expected, RecordResult } from "../BindingStore.js"
import type { ChatBinding } from "../ChatBinding.js"
import type { ChatConnection, ChatConnector, ConnectError, Decision, WriteResult } from "../ChatConnector.js"
import { ChatHasNoWorkspace, DialTimeout } from "../Errors.js"

const decisions: ReadonlyArray<Decision> = ["hot", "lazy_bind", "switched", "repair_lost"]

const decisionCounter = Metric.counter("lazydial_binding_decisions_total", {
  description: "Chat connects, by decision of the turn path",
  incremental: true
})

/** @internal */
export const decisionsTotal = decisionCounter

const decisionCounters = Object.fromEntries(
  decisions.map((decision) => [decision, Metric.tagged(decisionCounter, "decision", decision)])
) as Record<Decision, Metric.Metric.Counter<number>> // safe: built from the full `decisions` list

/** @internal */
export const lookupsTotal = Metric.counter("lazydial_binding_lookups_total", {
  description: "Latest-agent lookups made by lazy binds of the chat connector",
  incremental: true
})

/** @internal */
export const sharedTotal = Metric.counter("lazydial_binding_shared_connects_total", {
  description: "Chat connects that joined a dial already under way in the same turn",
  incremental: true
})

const decide = (decision: Decision) =>
  Effect.zipRight(
    Effect.annotateCurrentSpan(decision === "repair_lost" ? "lazydial.repair" : "lazydial.path", decision),
    Metric.increment(decisionCounters[decision])
  )

// A lazy bind that loses its write re-reads and starts again; this bounds
// the restarts when the row keeps changing under it.
const maxLazyBinds = 3

interface Shared {
  readonly deferred: Deferred.Deferred<ChatConnection, ConnectError>
  waiters: number
  fiber: Fiber.RuntimeFiber<ChatConnection, ConnectError> | undefined
}

/**
 * Why a waiting turn was turned away before its permit: it would have been
 * admitted only after its deadline, at the rate the queue has been moving.
 *
 * @internal
 */
export interface Shed {
  readonly waitingAhead: number
  readonly admittedPerSecond: number
}

type Verdict = "admitted" | "expired" | Shed

interface Waiter {
  readonly deadlineMillis: number
  admitted: boolean
  readonly resume: (verdict: Verdict) => void
}

// The sweeper looks at the queue this often while it is not empty, and
// measures how fast permits come back over the last second. It sheds only on
// a measured rate (half a second of it, at least 10 permits), gives the rate
// a quarter more than it showed, and judges a waiter only within the last
// `shedHorizonMillis` of its budget: early in a burst the pace is low (the
// process is busy taking the burst in), and shedding on it turned away most
// of the turns that went on to make it.
const sweepEveryMillis = 100
const rateWindowMillis = 1_000
const minRateWindowMillis = 500
const minRateSamples = 10
const rateAllowance = 1.25

/**
 * A FIFO of waiting turns that wakes exactly one waiter per released permit.
 * Effect's `Semaphore` wakes every waiter on each release (they race for the
 * permit and requeue): with thousands waiting, that herd took a 10,000-turn
 * load run out of memory.
 *
 * A waiter also has a deadline. While it waits it holds no timer and no fiber
 * of its own: one sweeper fiber, alive while the queue is not empty, turns
 * away every waiter whose deadline has passed, and sheds, at once, every
 * waiter that the queue's measured pace would admit only after its deadline,
 * once that deadline is within `shedHorizonMillis`.
 * Under overload, turns then fail fast, spread over the burst, instead of all
 * together at the deadline, when answering thousands at once made them late.
 *
 * @internal
 */
export const makeAdmission = (max: number, shedHorizonMillis: number) => {
  let inFlight = 0
  let released = 0
  const waiting = new Set<Waiter>()
  let sweeper: Fiber.RuntimeFiber<void> | undefined
  let samples: Array<{ readonly atMillis: number; readonly released: number }> = []

  const stopSweeperIfIdle = () => {
    if (waiting.size > 0 || sweeper === undefined) return
    sweeper.unsafeInterruptAsFork(FiberId.none)
    sweeper = undefined
  }

  // How long an admitted turn has been holding its permit, lately: a waiter
  // must be admitted this long before its deadline to make it.
  let serviceMillis = 0
  const release = () => {
    inFlight--
    released++
    const next = waiting.values().next()
    if (next.done === true) return
    waiting.delete(next.value)
    next.value.admitted = true
    inFlight++
    next.value.resume("admitted")
    stopSweeperIfIdle()
  }

  const measuredRate = (now: number): number | undefined => {
    samples.push({ atMillis: now, released })
    while (samples.length > 2 && now - samples[1]!.atMillis >= rateWindowMillis) samples.shift()
    const oldest = samples[0]!
    const elapsed = now - oldest.atMillis
    const count = released - oldest.released
    return elapsed >= minRateWindowMillis && count >= minRateSamples ? (count * 1000) / elapsed : undefined
  }

  const sweep: Effect.Effect<void> = Effect.clockWith((clock) =>
    Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      const rate = measuredRate(now)
      let ahead = 0
      for (const waiter of waiting) {
        const admittedBy = rate === undefined
          ? now
          : now + ((ahead + 1) * 1000) / (rate * rateAllowance) + serviceMillis
        if (waiter.deadlineMillis <= now) {
          waiting.delete(waiter)
          waiter.resume("expired")
        } else if (admittedBy > waiter.deadlineMillis && waiter.deadlineMillis - now <= shedHorizonMillis) {
          waiting.delete(waiter)
          waiter.resume({ waitingAhead: ahead, admittedPerSecond: Math.round(rate!) }) // safe: admittedBy > now only with a rate
        } else {
          ahead++
        }
      }
      const head = waiting.values().next()
      if (head.done === true) {
        sweeper = undefined
        return Effect.void
      }
      const untilHead = head.value.deadlineMillis - now
      return Effect.zipRight(Effect.sleep(Duration.millis(Math.min(untilHead, sweepEveryMillis))), sweep)
    })
  )

  const acquire = (deadlineMillis: number): Effect.Effect<Verdict> =>
    Effect.flatMap(Effect.runtime<never>(), (runtime) =>
      Effect.async<Verdict>((resume) => {
        if (inFlight < max) {
          inFlight++
          return resume(Effect.succeed("admitted"))
        }
        const waiter: Waiter = {
          deadlineMillis,
          admitted: false,
          resume: (verdict) => resume(Effect.succeed(verdict))
        }
        waiting.add(waiter)
        // The sweeper runs on the first waiter's runtime, so on its Clock
        // (TestClock in tests); it ends when the queue is empty.
        if (sweeper === undefined) {
          samples = []
          // interruptible whatever the waiter's region: an idle queue stops it
          sweeper = Runtime.runFork(runtime)(Effect.interruptible(sweep))
        }
        // An interrupted waiter leaves the queue; one that was handed a
        // permit in the meantime gives it on.
        return Effect.sync(() => {
          if (waiter.admitted) return release()
          waiting.delete(waiter)
          stopSweeperIfIdle()
        })
      }))

  return <A, E, R, E2>(
    self: Effect.Effect<A, E, R>,
    deadlineMillis: number,
    onRejected: (shed: Shed | undefined) => E2
  ): Effect.Effect<A, E | E2, R> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(
        restore(acquire(deadlineMillis)),
        (verdict): Effect.Effect<A, E | E2, R> =>
          verdict === "admitted"
            ? Effect.clockWith((clock) => {
              const admittedAt = clock.unsafeCurrentTimeMillis()
              return Effect.ensuring(
                restore(self),
                Effect.sync(() => {
                  serviceMillis += (clock.unsafeCurrentTimeMillis() - admittedAt - serviceMillis) / 16
                  release()
                })
              )
            })
            : Effect.fail(onRejected(verdict === "expired" ? undefined : verdict))
      )
    )
}

/** @internal */
export const make = (deps: {
  readonly dialTimeout: Duration.Duration
  readonly maxInFlight: number
  readonly store: Context.Tag.Service<BindingStore>
  readonly lazyDial: Context.Tag.Service<LazyDial.LazyDial>
  readonly lookup: Context.Tag.Service<AgentLookup.AgentLookup>
}): Context.Tag.Service<ChatConnector> => {
  const { lazyDial, lookup, store } = deps

  const record = (chatId: ChatId, expected: Expected, current: CurrentAgent) =>
    Effect.flatMap(
      store.recordAgent(chatId, { expected, current }),
      (result: RecordResult) =>
        Effect.as(
          result._tag === "Lost" ? decide("repair_lost") : Effect.void,
          result
        )
    )

  const writeResult = (result: RecordResult): WriteResult => result._tag === "Recorded" ? "recorded" : "lost"

  // Dials `agentId`, and persists a switch conditionally on `agentId` still
  // being the bound agent.
  const dialBound = (
    chatId: ChatId,
    binding: ChatBinding,
    workspaceId: WorkspaceId,
    bound: CurrentAgent,
    path: "hot" | "lazy_bind",
    write: WriteResult
  ): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> =>
    Effect.gen(function*() {
      const result = yield* lazyDial.dial({ agentId: bound.agentId, workspaceId })
      const base = { chatId, connection: result.connection, workspaceId, outcome: result.outcome }
      if (!result.switched || Option.isNone(result.current)) {
        if (path === "hot") yield* decide("hot")
        return { ...base, agentId: bound.agentId, buildId: bound.buildId, path, write, binding }
      }
      const current = result.current.value
      if (path === "hot") yield* decide("switched")
      const written = yield* record(chatId, { workspaceId, agentId: Option.some(bound.agentId) }, current)
      return {
        ...base,
        agentId: current.agentId,
        buildId: current.buildId,
        path: path === "hot" ? "switched" : path,
        write: writeResult(written),
        binding: written.binding
      }
    })

  const fromBinding = (
    chatId: ChatId,
    binding: ChatBinding,
    lazyBindsLeft: number
  ): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> =>
    Effect.gen(function*() {
      if (Option.isNone(binding.workspaceId)) return yield* new ChatHasNoWorkspace({ chatId })
      const workspaceId = binding.workspaceId.value
      if (Option.isSome(binding.agentId) && Option.isSome(binding.buildId)) {
        const bound = new CurrentAgent({ agentId: binding.agentId.value, buildId: binding.buildId.value })
        return yield* dialBound(chatId, binding, workspaceId, bound, "hot", "none")
      }

      // Lazy bind: the build and agent come from one lookup.
      yield* decide("lazy_bind")
      const current = yield* Effect.zipLeft(lookup.current(workspaceId), Metric.increment(lookupsTotal))
      if (Option.isNone(current)) return yield* new NoCurrentAgent({ workspaceId })
      const written = yield* record(chatId, { workspaceId, agentId: Option.none() }, current.value)
      if (written._tag === "Lost" && lazyBindsLeft > 1) {
        return yield* fromBinding(chatId, written.binding, lazyBindsLeft - 1)
      }
      return yield* dialBound(chatId, written.binding, workspaceId, current.value, "lazy_bind", writeResult(written))
    })

  const timeoutMillis = Duration.toMillis(deps.dialTimeout)

  // Admission control: past `maxInFlight` connects, a turn waits for a permit,
  // and the wait counts against its dial timeout. Without it, 10,000 turns at
  // once on one process overran a 10 s timeout by 10-16 s: every turn made
  // progress, slowly, and the timers fired late on a saturated event loop.
  const admission = makeAdmission(deps.maxInFlight, Math.max(1000, timeoutMillis / 4))

  // The timeout counts from the call of `connect`, not from the start of the
  // dial's fiber: under load a forked fiber can wait its turn on the event loop
  // for a while, and that wait is part of what the caller experiences. A turn
  // that waits for a permit past its deadline is turned away by the admission
  // queue; an admitted one races the rest of its budget.
  const connectOnce = (
    chatId: ChatId,
    calledAtMillis: number
  ): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> => {
    const deadlineMillis = calledAtMillis + timeoutMillis
    const timedOut = () => new DialTimeout({ chatId, timeoutMillis })
    const turnedAway = (shed: Shed | undefined) =>
      shed === undefined ? timedOut() : new DialTimeout({ chatId, timeoutMillis, shed })
    const dial = Effect.flatMap(store.get(chatId), (binding) => fromBinding(chatId, binding, maxLazyBinds))
    return admission(
      Effect.clockWith((clock) =>
        Effect.timeoutFail(
          // At the deadline the caller gets its DialTimeout at once; the dial
          // is interrupted in the background. Waiting for it would add the
          // time to cancel its work: on PostgreSQL a cancelled query sends
          // pg_cancel_backend through the same pool, behind every queued
          // query, and timeouts under load ended seconds late.
          Effect.disconnect(dial),
          { duration: Math.max(0, deadlineMillis - clock.unsafeCurrentTimeMillis()), onTimeout: timedOut }
        )
      ),
      deadlineMillis,
      turnedAway
    ).pipe(
      Effect.tap((connection) =>
        Effect.annotateCurrentSpan({
          "lazydial.agent_id": connection.agentId,
          "lazydial.build_id": connection.buildId,
          "lazydial.write": connection.write
        })
      ),
      Effect.withSpan("ChatConnector.dial", { attributes: { "lazydial.chat_id": chatId } })
    )
  }

  // Per turn (Scope), the dial under way or done for each chat.
  const turns = new WeakMap<Scope.Scope, Map<ChatId, Shared>>()

  // The registration of a caller, and the start of the dial, happen without
  // interruption; only the wait is interruptible. So a dial is never left
  // registered without a fiber, and every interrupted waiter is counted out.
  const connect = (chatId: ChatId): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.scope, (scope) =>
        Effect.suspend(() => {
          let perTurn = turns.get(scope)
          if (perTurn === undefined) {
            perTurn = new Map()
            turns.set(scope, perTurn)
          }
          const chats = perTurn
          const existing = chats.get(chatId)
          const shared: Shared = existing ?? {
            deferred: Deferred.unsafeMake<ChatConnection, ConnectError>(FiberId.none),
            waiters: 0,
            fiber: undefined
          }
          shared.waiters++
          if (existing === undefined) chats.set(chatId, shared)

          // The dial runs in its own fiber in the turn's Scope, so that it
          // belongs to no single caller; its connection is released when the
          // Scope closes. A failure is forgotten, so the next call dials again.
          const start = existing !== undefined
            ? Effect.zipRight(Metric.increment(sharedTotal), Effect.annotateCurrentSpan("lazydial.shared", true))
            : Effect.flatMap(
              Effect.clockWith((clock) =>
                Effect.forkIn(
                  Effect.interruptible(Scope.extend(connectOnce(chatId, clock.unsafeCurrentTimeMillis()), scope)),
                  scope
                )
              ),
              (fiber) =>
                Effect.sync(() => {
                  shared.fiber = fiber
                  fiber.addObserver((exit: Exit.Exit<ChatConnection, ConnectError>) => {
                    if (exit._tag === "Failure" && chats.get(chatId) === shared) chats.delete(chatId)
                    Deferred.unsafeDone(shared.deferred, exit)
                  })
                })
            )

          return Effect.zipRight(start, restore(Deferred.await(shared.deferred))).pipe(
            Effect.onInterrupt(() =>
              Effect.suspend(() => {
                shared.waiters--
                if (shared.waiters > 0 || shared.fiber?.unsafePoll() != null) return Effect.void
                // Nobody waits for this dial any more: abandon it, without waiting.
                if (chats.get(chatId) === shared) chats.delete(chatId)
                return shared.fiber === undefined ? Effect.void : Fiber.interruptFork(shared.fiber)
              })
            )
          )
        }))
    ).pipe(Effect.withSpan("ChatConnector.connect", { attributes: { "lazydial.chat_id": chatId } }))

  return { dialTimeout: deps.dialTimeout, connect }
}
