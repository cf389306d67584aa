/**
 * The deadline of `/ready`'s probe (internal/deadline.ts), on TestClock: the
 * caller gets its answer at the deadline even when the late effect's
 * interruption never ends (as a statement on a hung PostgreSQL's), and the
 * late effect is interrupted in the background, in the given Scope.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { withDeadline } from "../src/internal/deadline.js"

describe("withDeadline", () => {
  it.effect("answers at the deadline although the late effect's interruption never ends", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      // interrupting it waits forever: Effect's own timeout would never answer
      const hung = Effect.never.pipe(Effect.onInterrupt(() => Effect.never))
      const caller = yield* Effect.forkChild(
        hung.pipe(withDeadline(scope, "1 second", () => "late" as const), Effect.exit)
      )
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(caller.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.join(caller)
      assert.deepStrictEqual(exit, Exit.fail("late"))
    }))

  it.effect("the same effect under Effect.timeoutOrElse never answers (why the deadline runs it apart)", () =>
    Effect.gen(function*() {
      const hung = Effect.never.pipe(Effect.onInterrupt(() => Effect.never))
      // detached: it can never end, and the test must not wait for it
      const caller = yield* Effect.forkDetach(
        hung.pipe(
          Effect.timeoutOrElse({ duration: "1 second", orElse: () => Effect.fail("late" as const) }),
          Effect.exit
        )
      )
      yield* TestClock.adjust("1 minute")
      assert.isUndefined(caller.pollUnsafe())
    }))

  it.effect("a result in time passes through, and its failure too", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const ok = yield* Effect.succeed(42).pipe(
        Effect.delay("500 millis"),
        withDeadline(scope, "1 second", () => "late"),
        Effect.forkChild
      )
      yield* TestClock.adjust("500 millis")
      assert.strictEqual(yield* Fiber.join(ok), 42)
      const failed = yield* Effect.fail("boom" as const).pipe(
        withDeadline(scope, "1 second", () => "late" as const),
        Effect.flip
      )
      assert.strictEqual(failed, "boom")
    }))

  it.effect("the late effect is interrupted in the background, and a hung one ends with its Scope", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      let interrupted = false
      const late = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void (interrupted = true))))
      const caller = yield* Effect.forkChild(late.pipe(withDeadline(scope, "1 second", () => "late"), Effect.exit))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(caller)
      yield* Effect.yieldNow
      assert.isTrue(interrupted)
      // an interruption that hangs is still owned by the Scope: closing it ends the wait for it
      const hung = Effect.never.pipe(Effect.onInterrupt(() => Effect.never))
      const second = yield* Effect.forkChild(hung.pipe(withDeadline(scope, "1 second", () => "late"), Effect.exit))
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(yield* Fiber.join(second), Exit.fail("late"))
      // detached: the close can never end, and the test must not wait for it
      const closing = yield* Effect.forkDetach(Scope.close(scope, Exit.void))
      yield* Effect.yieldNow
      // its finalizer waits on the hung interruption: the Scope is what a hung probe holds, not the caller
      assert.isUndefined(closing.pollUnsafe())
    }))

  it.effect("an interrupted caller interrupts the effect in the background", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      let interrupted = false
      const slow = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void (interrupted = true))))
      const caller = yield* Effect.forkChild(slow.pipe(withDeadline(scope, "1 minute", () => "late")))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(caller)
      yield* Effect.yieldNow
      assert.isTrue(interrupted)
    }))
})
