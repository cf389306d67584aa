import { assert, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { makeAdmission } from "../src/internal/connector.js"

describe("admission control", () => {
  it.effect("wakes waiters one at a time, first come first served", () =>
    Effect.gen(function*() {
      const admit = makeAdmission(1)
      const order: Array<number> = []
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(admit(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const waiters = yield* Effect.forEach(
        [1, 2, 3],
        (i) => Effect.fork(admit(Effect.sync(() => order.push(i)))),
        { concurrency: "unbounded" }
      )
      yield* Effect.yieldNow()
      assert.deepStrictEqual(order, [])
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(holder)
      yield* Fiber.joinAll(waiters)
      assert.deepStrictEqual(order, [1, 2, 3])
    }))

  it.effect("an interrupted waiter gives up its place without leaking a permit", () =>
    Effect.gen(function*() {
      const admit = makeAdmission(1)
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(admit(Deferred.await(gate)))
      yield* Effect.yieldNow()
      const quitter = yield* Effect.fork(admit(Effect.void))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(quitter)
      yield* Deferred.succeed(gate, void 0)
      yield* Fiber.join(holder)
      // Both permits' worth of work still runs: nothing was lost.
      assert.strictEqual(yield* admit(Effect.succeed("admitted")), "admitted")
      assert.strictEqual(yield* admit(Effect.succeed("again")), "again")
    }))
})
