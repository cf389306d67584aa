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

type Verdict = "admitted" | "expired" | Shed

/**
 * Runs `self` once a permit is free, within `deadlineMillis`; a waiter turned
 * away fails with `onRejected` (with `Shed` when it was shed, not expired).
 *
 * @internal
 */
export type Admission = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  deadlineMillis: number,
  onRejected: (shed: Shed | undefined) => E2
) => Effect.Effect<A, E | E2, R>

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
 * Effect 3's `Semaphore` woke every waiter on each release (they raced for the
 * permit and requeued): with thousands waiting, that herd took a 10,000-turn
 * load run out of memory. (Effect 4's wakes only the waiters that fit; the
 * deadlines and the shedding below are this queue's own.)
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
export const makeAdmission = (max: number, shedHorizonMillis: number): Effect.Effect<Admission, never, Scope.Scope> =>
  Effect.map(FiberSet.makeRuntime<never, void, never>(), (runFork) => {
    let inFlight = 0
    let released = 0
    const waiting = new Set<Waiter>()
    let sweeper: Fiber.Fiber<void> | undefined
    let samples: Array<{ readonly atMillis: number; readonly released: number }> = []

    const stopSweeperIfIdle = () => {
      if (waiting.size > 0 || sweeper === undefined) return
      sweeper.interruptUnsafe()
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
        const now = clock.currentTimeMillisUnsafe()
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
        return Effect.andThen(Effect.sleep(Duration.millis(Math.min(untilHead, sweepEveryMillis))), sweep)
      })
    )

    const acquire = (deadlineMillis: number): Effect.Effect<Verdict> =>
      Effect.callback<Verdict>((resume) => {
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
        // The sweeper belongs to the Scope of the connector's Layer, and runs
        // on its runtime (so on its Clock: TestClock in tests). It ends when
        // the queue is empty, and at the latest when the Layer is released.
        if (sweeper === undefined) {
          samples = []
          // interruptible whatever the waiter's region: an idle queue stops it
          sweeper = runFork(Effect.interruptible(sweep))
        }
        // An interrupted waiter leaves the queue; one that was handed a
        // permit in the meantime gives it on.
        return Effect.sync(() => {
          if (waiter.admitted) return release()
          waiting.delete(waiter)
          stopSweeperIfIdle()
        })
      })

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
                const admittedAt = clock.currentTimeMillisUnsafe()
                return Effect.ensuring(
                  restore(self),
                  Effect.sync(() => {
                    serviceMillis += (clock.currentTimeMillisUnsafe() - admittedAt - serviceMillis) / 16
                    release()
                  })
                )
              })
              : Effect.fail(onRejected(verdict === "expired" ? undefined : verdict))
        )
      )
  })
