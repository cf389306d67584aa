import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Pool from "effect/Pool"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as TestClock from "effect/testing/TestClock"
import { makeAdmission } from "../src/internal/admission.js"
import { pendingSleeps } from "./fixtures.js"

class Expired {
  readonly _tag = "Expired"
}
const never = Number.POSITIVE_INFINITY
const expired = () => new Expired()

/** A queue of one permit, held until `freePermit`. */
const permitHeld = Effect.gen(function*() {
  const admit = yield* makeAdmission(1, 2_500)
  const gate = yield* Deferred.make<void>()
  const holder = yield* Effect.forkChild(admit(Deferred.await(gate), never, expired))
  yield* Effect.yieldNow
  return { admit, freePermit: Effect.andThen(Deferred.succeed(gate, void 0), Fiber.join(holder)) }
})

describe("admission control", () => {
  it.effect("wakes waiters one at a time, first come first served", () =>
    Effect.gen(function*() {
      const { admit, freePermit } = yield* permitHeld
      const order: Array<number> = []
      const waiters = yield* Effect.forEach(
        [1, 2, 3],
        // forked one after the other, by this fiber: a fork inside a concurrent
        // forEach belongs to its short-lived worker fiber in Effect 4
        (i) => Effect.forkChild(admit(Effect.sync(() => order.push(i)), never, expired))
      )
      yield* Effect.yieldNow
      // copies: Effect 4 caches the hash of an array it compared, and this one grows
      deepStrictEqual([...order], [])
      yield* freePermit
      yield* Fiber.joinAll(waiters)
      deepStrictEqual([...order], [1, 2, 3])
    }))

  it.effect("an interrupted waiter gives up its place without leaking a permit", () =>
    Effect.gen(function*() {
      const { admit, freePermit } = yield* permitHeld
      const quitter = yield* Effect.forkChild(admit(Effect.void, never, expired))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(quitter)
      yield* freePermit
      // Both permits' worth of work still runs: nothing was lost.
      assert.strictEqual(yield* admit(Effect.succeed("admitted"), never, expired), "admitted")
      assert.strictEqual(yield* admit(Effect.succeed("again"), never, expired), "again")
    }))

  it.effect("a waiter is turned away at its deadline, in queue order, and takes no permit", () =>
    Effect.gen(function*() {
      const { admit, freePermit } = yield* permitHeld
      const ran: Array<number> = []
      const waiters = yield* Effect.forEach(
        [1000, 2000, 2000, 5000],
        (deadline, i) => Effect.forkChild(Effect.result(admit(Effect.sync(() => ran.push(i)), deadline, expired)))
      )
      yield* Effect.yieldNow
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(waiters[0]!.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Fiber.join(waiters[0]!))._tag, "Failure")
      assert.isUndefined(waiters[1]!.pollUnsafe())
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(waiters[1]!))._tag, "Failure")
      assert.strictEqual((yield* Fiber.join(waiters[2]!))._tag, "Failure")
      // The permit comes back before the last deadline: that waiter runs.
      yield* freePermit
      assert.strictEqual((yield* Fiber.join(waiters[3]!))._tag, "Success")
      deepStrictEqual(ran, [3])
      // Expired waiters took no permit: the only one is free again.
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* admit(Effect.succeed("free"), 0, expired), "free")
    }))

  it.effect("with a free permit, a turn whose work ends at once keeps its answer, even past its deadline", () =>
    Effect.gen(function*() {
      const admit = yield* makeAdmission(1, 2_500)
      assert.strictEqual(yield* admit(Effect.succeed("ran"), -1, expired), "ran")
    }))

  it.effect("an admitted turn is answered at its deadline; its fiber is interrupted in the background, not waited for", () =>
    Effect.gen(function*() {
      const admit = yield* makeAdmission(1, 2_500)
      const interrupted = yield* Deferred.make<number>()
      // work whose interruption takes 5 s, as a cancelled PostgreSQL query's may
      const slow = Effect.onInterrupt(
        Effect.never,
        () =>
          Effect.andThen(
            Effect.sleep("5 seconds"),
            Effect.flatMap(Clock.currentTimeMillis, (t) => Deferred.succeed(interrupted, t))
          )
      )
      const turn = yield* Effect.forkChild(Effect.result(admit(slow, 1_000, expired)))
      yield* Effect.yieldNow
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(turn.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const answer = turn.pollUnsafe()
      assert.isTrue(answer !== undefined && Exit.isSuccess(answer) && answer.value._tag === "Failure")
      // the permit came back at the deadline, while the work still winds down
      assert.strictEqual(yield* admit(Effect.succeed("next"), never, expired), "next")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* Deferred.await(interrupted), 6_000)
    }))

  it.effect("every turn, waiting or admitted, shares one sweeper: 1,000 turns hold one timer", () =>
    Effect.gen(function*() {
      const admit = yield* makeAdmission(500, 2_500)
      const turns = yield* Effect.forEach(
        Array.from({ length: 1000 }),
        (_, i) => Effect.forkChild(Effect.result(admit(Effect.never, 10_000 + i, expired)))
      )
      yield* Effect.yieldNow
      assert.strictEqual((yield* pendingSleeps).length, 1)
      yield* TestClock.adjust("10 seconds")
      yield* TestClock.adjust("1 second")
      for (const turn of turns) assert.strictEqual((yield* Fiber.join(turn))._tag, "Failure")
      assert.strictEqual((yield* pendingSleeps).length, 0)
    }))

  it.effect("Effect 4's Semaphore and Pool, the alternatives: a deadline per waiter costs a timer per waiter", () =>
    Effect.gen(function*() {
      // What the queue would be with Effect's pieces: FIFO permits, and each
      // turn's deadline as a timeoutOption of its own. Every waiting turn
      // then holds a timer (and the race's two fibers), and nothing can shed:
      // the semaphore does not know when a waiter must be admitted.
      const semaphore = yield* Semaphore.make(500)
      const turns = yield* Effect.forEach(
        Array.from({ length: 1000 }),
        (_, i) => Effect.forkChild(Effect.timeoutOption(semaphore.withPermit(Effect.never), 10_000 + i))
      )
      yield* Effect.yieldNow
      assert.strictEqual((yield* pendingSleeps).length, 1000)
      yield* TestClock.adjust("11 seconds")
      yield* Fiber.joinAll(turns)
      // Pool is no different: a permit would be a pooled item, and its waiters have no deadline either
      const pool = yield* Pool.make({ acquire: Effect.void, size: 500 })
      const pooled = yield* Effect.forEach(
        Array.from({ length: 1000 }),
        (_, i) =>
          Effect.forkChild(
            Effect.timeoutOption(Effect.scoped(Effect.andThen(Pool.get(pool), Effect.never)), 10_000 + i)
          )
      )
      yield* Effect.yieldNow
      assert.strictEqual((yield* pendingSleeps).length, 1000)
      yield* TestClock.adjust("11 seconds")
      yield* Fiber.joinAll(pooled)
    }).pipe(Effect.scoped))

  it.effect("under overload a waiter that the queue's pace would admit after its deadline is shed at once", () =>
    Effect.gen(function*() {
      const admit = yield* makeAdmission(1, 2_500)
      const shedAt: Array<number> = []
      const expiredAt: Array<number> = []
      const ranAt: Array<number> = []
      const now = Effect.map(Clock.currentTimeMillis, Number)
      const record = (times: Array<number>) => Effect.flatMap(now, (t) => Effect.sync(() => times.push(t)))
      // 300 turns at once, each holding the permit for 100 ms (10 a second),
      // each with a 10 s deadline: about 100 of them can make it.
      const turns = yield* Effect.forEach(
        Array.from({ length: 300 }),
        () =>
          Effect.forkChild(
            admit(Effect.andThen(Effect.sleep("100 millis"), record(ranAt)), 10_000, (shed) => shed).pipe(
              Effect.catch((shed) => {
                if (shed === undefined) return record(expiredAt)
                assert.strictEqual(shed.admittedPerSecond, 10)
                return record(shedAt)
              })
            )
          )
      )
      yield* TestClock.adjust("7400 millis")
      assert.strictEqual(shedAt.length, 0)
      // Shed once the deadline is within the horizon (2.5 s), not at 10 s.
      yield* TestClock.adjust("600 millis")
      assert.isAbove(shedAt.filter((t) => t === 7500).length, 150)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.joinAll(turns)
      assert.strictEqual(shedAt.length + expiredAt.length + ranAt.length, 300)
      // Every turn ended by its deadline, and few were left to time out there.
      assert.isTrue(ranAt.every((t) => t <= 10_000))
      assert.isTrue(expiredAt.every((t) => t === 10_000))
      assert.isAtMost(expiredAt.length, 15)
      assert.isAtLeast(ranAt.length, 95)
    }))

  it.effect("the sweeper belongs to the Scope it was made in: closing it stops the sweeper while turns still wait", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const admit = yield* Scope.provide(makeAdmission(1, 2_500), scope)
      const holder = yield* Effect.forkChild(admit(Effect.never, never, expired))
      const waiter = yield* Effect.forkChild(admit(Effect.void, 5_000, expired))
      yield* Effect.yieldNow
      yield* Scope.close(scope, Exit.void)
      // Past the waiter's deadline: a live sweeper would have turned it away.
      yield* TestClock.adjust("10 seconds")
      assert.isUndefined(waiter.pollUnsafe())
      yield* Fiber.interrupt(waiter)
      yield* Fiber.interrupt(holder)
    }))
})
