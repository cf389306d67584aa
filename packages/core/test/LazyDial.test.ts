import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { AgentDialError, AgentLookupError, dialWithLazyValidation } from "@lazydial/core"
import { LazyDial } from "@lazydial/core"
import type { DialScript, LookupScript } from "@lazydial/core/testing"
import { currentAgent, layerTest, TestAgents } from "@lazydial/core/testing"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { A, B, BUILD_1, BUILD_2, W } from "./fixtures.js"

const DELAY = 100

interface Setup {
  readonly a: ReadonlyArray<DialScript>
  readonly b?: ReadonlyArray<DialScript>
  readonly current: "A" | "B" | "none"
  readonly lookup?: LookupScript
}

const setup = (options: Setup) =>
  Effect.gen(function*() {
    const agents = yield* TestAgents
    yield* agents.script(A, ...options.a)
    if (options.b) yield* agents.script(B, ...options.b)
    yield* agents.setCurrent(
      W,
      options.current === "none" ? Option.none() : Option.some(
        options.current === "A"
          ? currentAgent({ agentId: A, buildId: BUILD_1 })
          : currentAgent({ agentId: B, buildId: BUILD_2 })
      )
    )
    if (options.lookup) yield* agents.scriptLookup(W, options.lookup)
    return agents
  })

const dialA = Effect.flatMap(LazyDial.LazyDial, (service) => service.dial({ agentId: A, workspaceId: W }))

/** Starts a dial in its own scope, so the test decides when the turn ends. */
const startTurn = Effect.gen(function*() {
  const scope = yield* Scope.make()
  const fiber = yield* Effect.forkChild(Scope.provide(dialA, scope))
  return { scope, fiber }
})

const now = Clock.currentTimeMillis

const TestLayer = LazyDial.layer({ delay: DELAY }).pipe(Layer.provideMerge(layerTest))

const provide = <A, E>(effect: Effect.Effect<A, E, TestAgents | LazyDial.LazyDial>) => Effect.provide(effect, TestLayer)

describe("dialWithLazyValidation outcomes", () => {
  it.effect("fast: the bound agent answers before the delay; no lookup", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ latency: 10, result: "connect" }], current: "B" })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(10)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.outcome, "fast")
      assert.strictEqual(result.agentId, A)
      assert.isFalse(result.switched)
      assert.strictEqual((yield* agents.lookups).length, 0)
      yield* TestClock.adjust(1000)
      assert.strictEqual((yield* agents.lookups).length, 0, "no lookup after the delay either")
      assert.strictEqual((yield* agents.unreleased).length, 1, "the connection lives until the turn ends")
      yield* Scope.close(scope, Exit.void)
      const ledger = yield* agents.ledger
      deepStrictEqual(ledger.map((entry) => entry.releasedAt), [[1010]])
    })))

  it.effect("fast: a dial that is ready at once returns without any clock step", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ result: "connect" }], current: "A" })
      const result = yield* Effect.scoped(dialA)
      assert.strictEqual(result.outcome, "fast")
      assert.strictEqual((yield* agents.lookups).length, 0)
      deepStrictEqual((yield* agents.ledger).map((entry) => entry.releasedAt.length), [1])
    })))

  it.effect("confirmed: the lookup runs at exactly the delay, and the slow dial of A is kept", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ latency: 300, result: "connect" }], current: "A" })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(DELAY - 1)
      assert.strictEqual((yield* agents.lookups).length, 0, "not a millisecond before the delay")
      yield* TestClock.adjust(1)
      deepStrictEqual((yield* agents.lookups).map((call) => call.at), [DELAY])
      yield* TestClock.adjust(200)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.outcome, "confirmed")
      assert.strictEqual(result.agentId, A)
      assert.isFalse(result.switched)
      deepStrictEqual((yield* agents.dials).map((call) => call.id), [A])
      deepStrictEqual(result.current, Option.some(currentAgent({ agentId: A, buildId: BUILD_1 })))
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* agents.unreleased).length, 0)
    })))

  it.effect("lookup_failed_kept: a failed lookup is ignored and the dial of A is awaited", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({
        a: [{ latency: 300, result: "connect" }],
        current: "B",
        lookup: { latency: 20, result: "fail" }
      })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(300)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.outcome, "lookup_failed_kept")
      assert.strictEqual(result.agentId, A)
      assert.strictEqual((yield* agents.lookups).length, 1)
      yield* Scope.close(scope, Exit.void)
    })))

  it.effect("lookup_failed_kept: A's own error is returned when A then fails", () =>
    provide(Effect.gen(function*() {
      yield* setup({ a: [{ latency: 300, result: "fail" }], current: "A", lookup: { result: "fail" } })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(300)
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "AgentDialError")
      yield* Scope.close(scope, Exit.void)
    })))

  it.effect("switched: a stale dial that honours interruption is interrupted; B answers", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ result: "hang" }], b: [{ latency: 10, result: "connect" }], current: "B" })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(DELAY + 10)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.outcome, "switched")
      assert.strictEqual(result.agentId, B)
      assert.isTrue(result.switched)
      deepStrictEqual(result.current, Option.some(currentAgent({ agentId: B, buildId: BUILD_2 })))
      deepStrictEqual((yield* agents.dials).map((call) => [call.id, call.at]), [[A, 0], [B, DELAY]])
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* agents.unreleased).length, 0)
    })))

  it.effect("switched: does not block on a stale dial that ignores interruption; its late connection is released once, on arrival", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({
        a: [{ latency: 5000, result: "connect", interruptible: false }],
        b: [{ latency: 10, result: "connect" }],
        current: "B"
      })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(DELAY + 10)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.agentId, B, "the switch returned at 110 ms, not at 5 s")
      assert.strictEqual(yield* now, DELAY + 10)
      yield* TestClock.adjust(5000)
      const late = (yield* agents.ledger).find((entry) => entry.agentId === A)!
      assert.strictEqual(late.acquiredAt, 5000)
      deepStrictEqual(late.releasedAt, [5000], "released once, as soon as it arrived")
      const kept = (yield* agents.ledger).find((entry) => entry.agentId === B)!
      deepStrictEqual(kept.releasedAt, [], "B belongs to the caller's scope")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* agents.releasedTwice).length, 0)
      assert.strictEqual((yield* agents.unreleased).length, 0)
    })))

  it.effect("switched: B's error is returned when B fails", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ result: "hang" }], b: [{ latency: 10, result: "fail" }], current: "B" })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(DELAY + 10)
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "AgentDialError")
      assert.strictEqual((error as AgentDialError).agentId, B)
      assert.strictEqual((yield* agents.ledger).length, 0, "a failed dial is never released")
      yield* Scope.close(scope, Exit.void)
    })))

  it.effect("no_current_agent: the workspace is stopped; fail at once without waiting for A", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ latency: 5000, result: "connect", interruptible: false }], current: "none" })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(DELAY)
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "NoCurrentAgent")
      assert.strictEqual(yield* now, DELAY)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust(5000)
      deepStrictEqual((yield* agents.ledger).map((entry) => entry.releasedAt), [[5000]])
    })))

  it.effect("fast failure, lookup names B: switched, with the lookup made at once, before the delay", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({
        a: [{ latency: 5, result: "fail" }],
        b: [{ latency: 10, result: "connect" }],
        current: "B"
      })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(15)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.outcome, "switched")
      assert.strictEqual(result.agentId, B)
      deepStrictEqual((yield* agents.lookups).map((call) => call.at), [5])
      yield* Scope.close(scope, Exit.void)
    })))

  it.effect("retried: fast failure, the lookup names A, and A is retried exactly once", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({
        a: [{ latency: 5, result: "fail" }, { latency: 5, result: "connect" }],
        current: "A"
      })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(10)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.outcome, "retried")
      assert.strictEqual(result.agentId, A)
      assert.isFalse(result.switched)
      deepStrictEqual((yield* agents.dials).map((call) => call.at), [0, 5])
      yield* Scope.close(scope, Exit.void)
    })))

  it.effect("retried: when the retry fails too, its error is returned and there is no third dial", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ latency: 5, result: "fail" }], current: "A" })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(1000)
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "AgentDialError")
      assert.strictEqual((yield* agents.dials).length, 2)
      assert.strictEqual((yield* agents.lookups).length, 1)
      yield* Scope.close(scope, Exit.void)
    })))

  it.effect("failed: fast failure and a failed lookup give the lookup's error", () =>
    provide(Effect.gen(function*() {
      yield* setup({ a: [{ latency: 5, result: "fail" }], current: "A", lookup: { result: "fail" } })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(5)
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "AgentLookupError")
      yield* Scope.close(scope, Exit.void)
    })))

  it.effect("no_current_agent: fast failure and a stopped workspace give NoCurrentAgent", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ latency: 5, result: "fail" }], current: "none" })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(5)
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "NoCurrentAgent")
      assert.strictEqual((yield* agents.dials).length, 1)
      yield* Scope.close(scope, Exit.void)
    })))
})

describe("caller interruption", () => {
  const phases = [
    { name: "while A is pending, before the delay", at: 50, lookup: { latency: 0, result: "current" } as const },
    { name: "while the lookup runs", at: DELAY + 10, lookup: { latency: 50, result: "current" } as const },
    { name: "while B is being dialed", at: DELAY + 60, lookup: { latency: 50, result: "current" } as const }
  ]
  for (const phase of phases) {
    it.effect(`interrupted ${phase.name}: returns at once and leaks nothing`, () =>
      provide(Effect.gen(function*() {
        const agents = yield* setup({
          a: [{ latency: 3000, result: "connect", interruptible: false }],
          b: [{ latency: 1000, result: "connect", interruptible: false }],
          current: "B",
          lookup: phase.lookup
        })
        const { fiber, scope } = yield* startTurn
        yield* TestClock.adjust(phase.at)
        yield* Fiber.interrupt(fiber)
        assert.strictEqual(yield* now, phase.at, "interruption did not wait for any dial")
        yield* TestClock.adjust(5000)
        yield* Scope.close(scope, Exit.void)
        const ledger = yield* agents.ledger
        for (const entry of ledger) {
          deepStrictEqual(entry.releasedAt, [entry.acquiredAt], `${entry.agentId} released once, on arrival`)
        }
      })))
  }

  it.effect("an interruptible dial is interrupted with the caller and acquires nothing", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ latency: 3000, result: "connect" }], current: "A" })
      const { fiber, scope } = yield* startTurn
      yield* TestClock.adjust(50)
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust(5000)
      assert.strictEqual((yield* agents.ledger).length, 0)
      yield* Scope.close(scope, Exit.void)
    })))
})

describe("errors and defects", () => {
  it.effect("dial errors reach the caller as they are, so catchTag works", () =>
    Effect.gen(function*() {
      const result = yield* dialWithLazyValidation({
        agentId: A,
        workspaceId: W,
        dial: (agentId) => Effect.fail(new AgentDialError({ agentId, reason: "Refused" })),
        lookup: () => Effect.fail(new AgentLookupError({ workspaceId: W })),
        delay: DELAY
      }).pipe(Effect.catchTag("AgentLookupError", (e) => Effect.succeed(e.workspaceId)))
      assert.strictEqual(result, W)
    }))

  it.effect("a defect in the dial is passed on; no lookup is made", () =>
    Effect.gen(function*() {
      let lookups = 0
      const exit = yield* Effect.exit(dialWithLazyValidation({
        agentId: A,
        workspaceId: W,
        dial: () => Effect.die("boom"),
        lookup: () => Effect.sync(() => (lookups++, Option.some(B))),
        delay: DELAY
      }))
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      assert.strictEqual(lookups, 0)
    }))

  it.effect("a delay out of range is refused when the Layer is built", () =>
    Effect.gen(function*() {
      for (const delay of [-1, Infinity, "-5 seconds", "1 day", Number.NaN]) {
        const error = yield* Effect.flip(
          Effect.provide(LazyDial.LazyDial, LazyDial.layer({ delay: delay as never }).pipe(Layer.provide(layerTest)))
        )
        assert.strictEqual(error._tag, "InvalidOption")
        assert.include(error.message, "delay")
      }
    }))
})

describe("resources", () => {
  // On Effect 3 a finalizer ran with the fiber refs of the fiber that
  // registered it, so closing a dial's scope on the caller's fiber grew the
  // caller's fiber-ref stacks on every call. Effect 4 keeps a fiber's state in
  // its Context; a long-lived caller must still not accumulate anything there,
  // call after call.
  it.effect("the caller's context does not grow, call after call", () =>
    Effect.gen(function*() {
      // safe: test-only look at the size of the caller fiber's Context map, the thing that could grow
      const services = Effect.withFiber((fiber) =>
        Effect.succeed((fiber.context as unknown as { mapUnsafe: Map<string, unknown> }).mapUnsafe.size)
      )
      const call = Effect.scoped(dialWithLazyValidation({
        agentId: A,
        workspaceId: W,
        dial: (agentId) => Effect.acquireRelease(Effect.succeed(agentId), () => Effect.void),
        lookup: () => Effect.succeed(Option.some(A)),
        delay: DELAY
      }))
      yield* call
      const before = yield* services
      for (let i = 0; i < 50; i++) yield* call
      assert.strictEqual(yield* services, before)
    }))
})

describe("early validation (validateNow)", () => {
  /** A turn of A with a signal the test fires; the rest is the outcome table. */
  const startSignalledTurn = Effect.gen(function*() {
    const signal = yield* Deferred.make<void>()
    const scope = yield* Scope.make()
    const fiber = yield* Effect.forkChild(Scope.provide(
      Effect.flatMap(
        LazyDial.LazyDial,
        (service) => service.dial({ agentId: A, workspaceId: W, validateNow: Deferred.await(signal) })
      ),
      scope
    ))
    return { fire: Deferred.succeed(signal, undefined), fiber, scope }
  })

  it.effect("confirmed: the signal ends the delay at once; the lookup runs then, not at the delay", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ latency: 300, result: "connect" }], current: "A" })
      const { fiber, fire, scope } = yield* startSignalledTurn
      yield* TestClock.adjust(30)
      assert.strictEqual((yield* agents.lookups).length, 0, "no lookup before the signal")
      yield* fire
      yield* TestClock.adjust(0)
      deepStrictEqual((yield* agents.lookups).map((call) => call.at), [30])
      yield* TestClock.adjust(300)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.outcome, "confirmed")
      assert.strictEqual((yield* agents.lookups).length, 1, "the delay's own timer makes no second lookup")
      yield* Scope.close(scope, Exit.void)
    })))

  it.effect("switched: after the signal, B is dialed at once", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ result: "hang" }], b: [{ result: "connect" }], current: "B" })
      const { fiber, fire, scope } = yield* startSignalledTurn
      yield* TestClock.adjust(20)
      yield* fire
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.outcome, "switched")
      deepStrictEqual((yield* agents.dials).map((call) => [call.id, call.at]), [[A, 0], [B, 20]])
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* agents.unreleased).length, 0)
    })))

  it.effect("a signal that has already fired validates at once, as a zero delay does", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ result: "hang" }], b: [{ result: "connect" }], current: "B" })
      const result = yield* Effect.scoped(Effect.flatMap(
        LazyDial.LazyDial,
        (service) => service.dial({ agentId: A, workspaceId: W, validateNow: Effect.void })
      ))
      assert.strictEqual(result.outcome, "switched")
      deepStrictEqual((yield* agents.lookups).map((call) => call.at), [0])
      assert.strictEqual((yield* agents.unreleased).length, 0)
    })))

  it.effect("fast: a signal after A answered changes nothing and makes no lookup", () =>
    provide(Effect.gen(function*() {
      const agents = yield* setup({ a: [{ latency: 10, result: "connect" }], current: "B" })
      const { fiber, fire, scope } = yield* startSignalledTurn
      yield* TestClock.adjust(10)
      const result = yield* Fiber.join(fiber)
      yield* fire
      yield* TestClock.adjust(DELAY)
      assert.strictEqual(result.outcome, "fast")
      assert.strictEqual((yield* agents.lookups).length, 0)
      yield* Scope.close(scope, Exit.void)
    })))
})
