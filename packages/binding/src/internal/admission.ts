import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"

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

/**
 * Runs `self` once a permit is free, and ends it at `deadlineMillis`: a turn
 * turned away fails with `onRejected` (with `Shed` when it was shed while
 * waiting, `undefined` at its deadline).
 *
 * @internal
 */
export type Admission = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  deadlineMillis: number,
  onRejected: (shed: Shed | undefined) => E2
) => Effect.Effect<A, E | E2, R>

interface Turn {
  readonly deadlineMillis: number
  state: "waiting" | "running" | "done"
  admittedAt: number
  readonly start: () => void
  readonly reject: (shed: Shed | undefined) => void
}

// While turns wait, the sweeper looks at the queue this often, and measures
// how fast permits come back over the last second. It sheds only on a
// measured rate (half a second of it, at least 10 permits), gives the rate a
// quarter more than it showed, and judges a waiter only within the last
// `shedHorizonMillis` of its budget: early in a burst the pace is low (the
// process is busy taking the burst in), and shedding on it turned away most
// of the turns that went on to make it.
const sweepEveryMillis = 100
const rateWindowMillis = 1_000
const minRateWindowMillis = 500
const minRateSamples = 10
const rateAllowance = 1.25

/**
 * The turns of a connector: at most `max` run at once, the others wait in a
 * FIFO, and every turn, waiting or running, ends at its deadline.
 *
 * A turn costs one fiber, its own (the caller waits on a callback, not on a
 * fiber of its own), and holds no timer: one sweeper fiber, alive while any
 * turn is, wakes at the earliest deadline and, while turns wait, every
 * 100 ms. At a deadline the caller gets its answer at once and the turn's
 * fiber is interrupted in the background, not waited for: cancelling its work
 * can take long (an interrupted `@effect/sql-pg` query sends a cancel request
 * and drains its connection, which a hung server never answers), and Effect
 * 4's `timeoutOption` waits for the loser of its race. The permit is given
 * back then, so for a moment the cancelled work winds down beside the next
 * admitted turn.
 *
 * Under overload the sweeper also sheds, at once, every waiter that the
 * queue's measured pace would admit only after its deadline, once that
 * deadline is within `shedHorizonMillis`: turns then fail fast, spread over
 * the burst, instead of all together at the deadline, when answering
 * thousands at once made them late.
 *
 * Why not Effect 4's `Semaphore` (FIFO, and it wakes only the waiters that
 * fit): it knows no deadline, so each waiter would need a timeout of its own
 * (`timeoutOption` races two fibers and a timer per waiter), and it cannot
 * shed, since it does not know when a waiter must be admitted
 * (`test/Admission.test.ts`).
 *
 * @internal
 */
export const makeAdmission = (max: number, shedHorizonMillis: number): Effect.Effect<Admission, never, Scope.Scope> =>
  Effect.clockWith((clock) =>
    Effect.map(FiberSet.makeRuntime<never, void, never>(), (runFork) => {
      const waiting = new Set<Turn>()
      const running = new Set<Turn>()
      let released = 0
      let samples: Array<{ readonly atMillis: number; readonly released: number }> = []
      let sweeper: Fiber.Fiber<void> | undefined
      let wakeAt = Number.POSITIVE_INFINITY
      // A rejected turn's caller resumes synchronously, and may start or end
      // turns: while a sweep runs, it alone decides when it wakes next.
      let sweeping = false
      // How long an admitted turn has been holding its permit, lately: a waiter
      // must be admitted this long before its deadline to make it.
      let serviceMillis = 0

      const admit = (turn: Turn) => {
        waiting.delete(turn)
        turn.state = "running"
        turn.admittedAt = clock.currentTimeMillisUnsafe()
        running.add(turn)
        turn.start()
      }

      /** Ends `turn`'s part in the queue, once; false when it had ended already. */
      const end = (turn: Turn): boolean => {
        if (turn.state === "done") return false
        const wasRunning = turn.state === "running"
        turn.state = "done"
        waiting.delete(turn)
        if (wasRunning) {
          running.delete(turn)
          released++
          serviceMillis += (clock.currentTimeMillisUnsafe() - turn.admittedAt - serviceMillis) / 16
          const next = waiting.values().next()
          if (next.done !== true) admit(next.value)
        }
        if (!sweeping && waiting.size === 0 && running.size === 0 && sweeper !== undefined) {
          sweeper.interruptUnsafe()
          sweeper = undefined
        }
        return true
      }

      const measuredRate = (now: number): number | undefined => {
        samples.push({ atMillis: now, released })
        while (samples.length > 2 && now - samples[1]!.atMillis >= rateWindowMillis) samples.shift()
        const oldest = samples[0]!
        const elapsed = now - oldest.atMillis
        const count = released - oldest.released
        return elapsed >= minRateWindowMillis && count >= minRateSamples ? (count * 1000) / elapsed : undefined
      }

      /** The next time the sweeper must look: the earliest deadline, and within 100 ms while turns wait. */
      const nextWake = (now: number): number => {
        let next = Number.POSITIVE_INFINITY
        for (const turn of running) next = Math.min(next, turn.deadlineMillis)
        for (const turn of waiting) next = Math.min(next, turn.deadlineMillis, now + sweepEveryMillis)
        return next
      }

      const sleepUntil = (next: number, now: number): Effect.Effect<void> =>
        next === Number.POSITIVE_INFINITY ? Effect.never : Effect.sleep(Duration.millis(Math.max(0, next - now)))

      const sweep: Effect.Effect<void> = Effect.suspend(() => {
        const now = clock.currentTimeMillisUnsafe()
        const shed: Array<readonly [Turn, Shed | undefined]> = []
        if (waiting.size > 0) {
          const rate = measuredRate(now)
          let ahead = 0
          for (const turn of waiting) {
            const admittedBy = rate === undefined
              ? now
              : now + ((ahead + 1) * 1000) / (rate * rateAllowance) + serviceMillis
            if (turn.deadlineMillis <= now) shed.push([turn, undefined])
            else if (admittedBy > turn.deadlineMillis && turn.deadlineMillis - now <= shedHorizonMillis) {
              shed.push([turn, { waitingAhead: ahead, admittedPerSecond: Math.round(rate!) }]) // safe: admittedBy > now only with a rate
            } else {
              ahead++
            }
          }
        }
        const expired = [...running].filter((turn) => turn.deadlineMillis <= now)
        sweeping = true
        // waiters first: they leave the queue before an expired turn's permit is handed on
        for (const [turn, why] of shed) turn.reject(why)
        for (const turn of expired) turn.reject(undefined)
        sweeping = false
        if (waiting.size === 0 && running.size === 0) {
          sweeper = undefined
          return Effect.void
        }
        wakeAt = nextWake(now)
        return Effect.andThen(sleepUntil(wakeAt, now), sweep)
      })

      // The sweeper belongs to the Scope of the connector's Layer, and runs on
      // its runtime (so on its Clock: TestClock in tests); interruptible
      // whatever the caller's region, so that an idle queue stops it. A turn
      // due before the sweeper's next wake (a shorter deadline than the turns
      // before it) starts it again.
      const watch = (turn: Turn) => {
        if (sweeping) return
        const now = clock.currentTimeMillisUnsafe()
        const due = turn.state === "waiting"
          ? Math.min(turn.deadlineMillis, now + sweepEveryMillis)
          : turn.deadlineMillis
        if (sweeper !== undefined && due >= wakeAt) return
        sweeper?.interruptUnsafe()
        wakeAt = due
        sweeper = runFork(Effect.interruptible(Effect.andThen(sleepUntil(due, now), sweep)))
      }

      return <A, E, R, E2>(
        self: Effect.Effect<A, E, R>,
        deadlineMillis: number,
        onRejected: (shed: Shed | undefined) => E2
      ): Effect.Effect<A, E | E2, R> =>
        Effect.flatMap(Effect.context<R>(), (context) =>
          Effect.callback<A, E | E2>((resume) => {
            let fiber: Fiber.Fiber<A, E> | undefined
            const turn: Turn = {
              deadlineMillis,
              state: "waiting",
              admittedAt: 0,
              // The turn's fiber has the caller's services (its Scope, its
              // span), so what it acquires lives in the caller's Scope.
              start: () => {
                fiber = Effect.runForkWith(context)(self)
                fiber.addObserver((exit) => {
                  if (end(turn)) resume(exit)
                })
              },
              reject: (shed) => {
                if (!end(turn)) return
                fiber?.interruptUnsafe()
                resume(Effect.fail(onRejected(shed)))
              }
            }
            if (running.size < max && waiting.size === 0) admit(turn)
            else {
              // the pace is measured afresh for each spell of waiting
              if (waiting.size === 0) samples = []
              waiting.add(turn)
            }
            if (turn.state !== "done") watch(turn)
            // An interrupted caller is interrupted, never turned away: its turn
            // leaves the queue, and its fiber is interrupted in the background.
            return Effect.sync(() => {
              if (end(turn)) fiber?.interruptUnsafe()
            })
          }))
    })
  )
