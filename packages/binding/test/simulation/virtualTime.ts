/**
 * Virtual time for the simulation.
 *
 * `TestClock` is exact but slow for this workload: before every expired timer
 * it waits for all fibers to suspend (several turns of the event loop, about
 * 7 ms), and a sleep that was interrupted stays in its queue and is
 * expired like any other. Every connect leaves its 30 s dial-timeout timer
 * behind, so a seed of ~100 turns spent over a second waiting on real timers.
 *
 * `SimClock` keeps the same contract (time moves only when the harness moves
 * it; timers due at one instant fire in registration order) with cancelled
 * sleeps removed, and `SimScheduler` is Effect's own `MixedScheduler` with
 * its task batches run on microtasks instead of `setImmediate`, counted, so
 * "every fiber has settled" is simply "no batch is pending after a
 * macrotask". Both are deterministic: a seed replays exactly.
 * The harness can still run on `TestClock` (`time: "TestClock"`), and the
 * suite does so for a few seeds.
 */
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Scheduler from "effect/Scheduler"

interface Timer {
  readonly at: number
  readonly seq: number
  readonly fire: () => void
}

export class SimScheduler implements Scheduler.Scheduler {
  readonly executionMode = "async" as const
  private scheduled = 0
  private readonly mixed = new Scheduler.MixedScheduler("async", (run) => {
    this.scheduled++
    let cancelled = false
    queueMicrotask(() => {
      this.scheduled--
      if (!cancelled) run()
    })
    return () => {
      cancelled = true
    }
  })

  /** Task batches scheduled and not yet run. */
  get pending(): number {
    return this.scheduled
  }

  shouldYield(fiber: Fiber.Fiber<unknown, unknown>): boolean {
    return this.mixed.shouldYield(fiber)
  }

  makeDispatcher(): Scheduler.SchedulerDispatcher {
    return this.mixed.makeDispatcher()
  }
}

export class SimClock implements Clock.Clock {
  private now = 0
  private seq = 0
  private timers: Array<Timer> = []

  constructor(private readonly scheduler: SimScheduler) {}

  get pendingTimers(): number {
    return this.timers.length
  }

  currentTimeMillisUnsafe(): number {
    return this.now
  }

  currentTimeNanosUnsafe(): bigint {
    return BigInt(this.now) * 1_000_000n
  }

  monotonicTimeNanosUnsafe(): bigint {
    return this.currentTimeNanosUnsafe()
  }

  readonly currentTimeMillis: Effect.Effect<number> = Effect.sync(() => this.now)

  readonly currentTimeNanos: Effect.Effect<bigint> = Effect.sync(() => this.currentTimeNanosUnsafe())

  readonly monotonicTimeNanos: Effect.Effect<bigint> = this.currentTimeNanos

  sleep(duration: Duration.Duration): Effect.Effect<void> {
    const millis = Duration.toMillis(duration)
    if (!(millis > 0)) return Effect.void
    return Effect.callback<void>((resume) => {
      const timer: Timer = { at: this.now + millis, seq: this.seq++, fire: () => resume(Effect.void) }
      this.insert(timer)
      return Effect.sync(() => this.remove(timer))
    })
  }

  /** Lets every runnable fiber run until all of them wait (on a timer, or on each other). */
  readonly settle: Effect.Effect<void> = Effect.promise(async () => {
    for (let round = 0; round < 1_000; round++) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      if (this.scheduler.pending === 0) return
    }
  })

  /** Moves time forward by `millis`, firing each timer at its own instant, then settling. */
  advance(millis: number): Effect.Effect<void> {
    return Effect.gen({ self: this }, function*() {
      const target = this.now + Math.max(0, millis)
      yield* this.settle
      while (this.timers.length > 0 && this.timers[0]!.at <= target) {
        this.now = this.timers[0]!.at
        const due: Array<Timer> = []
        while (this.timers.length > 0 && this.timers[0]!.at === this.now) due.push(this.timers.shift()!)
        for (const timer of due) timer.fire()
        yield* this.settle
      }
      this.now = target
    })
  }

  private insert(timer: Timer): void {
    // Binary search: ordered by instant, then by registration.
    let low = 0
    let high = this.timers.length
    while (low < high) {
      const mid = (low + high) >>> 1
      const other = this.timers[mid]!
      if (other.at < timer.at || (other.at === timer.at && other.seq < timer.seq)) low = mid + 1
      else high = mid
    }
    this.timers.splice(low, 0, timer)
  }

  private remove(timer: Timer): void {
    const index = this.timers.indexOf(timer)
    if (index >= 0) this.timers.splice(index, 1)
  }
}
