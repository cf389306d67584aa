/**
 * Compares dialWithLazyValidation with a small model of the outcome table,
 * over random latencies, outcomes, interruptibility, delays, caller
 * interruption times and early-validation signals (a rebuild notice that
 * arrives while the bound agent is pending), and checks the connection ledger
 * after every run.
 *
 * Times are spread over residues (mod 8) so that no two events fall on the
 * same millisecond: the table says nothing about ties. A's latency is 1 (or 0),
 * the delay and the lookup's latency 0, the signal 3, the retry's and B's
 * latency 2, so every event of a call falls on 0, 1, 2, 3 or 5 (the signal,
 * the lookup and B: 3 + 0 + 2). The caller's interruption is on 7, a residue
 * no sum reaches (it was on 5, which tied with B's connection after a signal).
 */
import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { AgentDialer, AgentLookup, LazyDial } from "@lazydial/core"
import { currentAgent, make as makeKit } from "@lazydial/core/testing"
import * as Arbitrary from "effect/Arbitrary"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { A, B, BUILD_1 as BUILD, W } from "./fixtures.js"

const HORIZON = 100_000

interface Dial {
  readonly latency: number
  readonly result: "connect" | "fail" | "hang"
  readonly interruptible: boolean
}

interface Scenario {
  readonly delay: number
  readonly a: Dial
  readonly retry: Dial
  readonly b: Dial
  readonly lookupLatency: number
  readonly lookupFails: boolean
  readonly current: "A" | "B" | "none"
  readonly interruptAt: number | undefined
  /** When the `validateNow` signal fires; undefined: the call passes no signal. */
  readonly signalAt: number | undefined
}

type Expected =
  | { readonly _tag: "Success"; readonly outcome: string; readonly agent: "A" | "B"; readonly at: number }
  | { readonly _tag: "Failure"; readonly error: string; readonly at: number }
  | { readonly _tag: "Pending" }

const boolean = Arbitrary.schema(Schema.Boolean)
/** A time on the grid `8 * n + residue`, n from 0 to `max`. */
const at = (max: number, residue: number) =>
  Arbitrary.map(
    Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: max }))),
    (n) => 8 * n + residue
  )
const either = <A, B>(left: Arbitrary.Arbitrary<A>, right: Arbitrary.Arbitrary<B>) =>
  Arbitrary.flatMap(boolean, (pick): Arbitrary.Arbitrary<A | B> => pick ? left : right)
const optional = <A>(value: Arbitrary.Arbitrary<A>) => either(value, Arbitrary.Constant(undefined))

const dial = (residue: number, ready: boolean): Arbitrary.Arbitrary<Dial> =>
  Arbitrary.all({
    latency: ready ? either(Arbitrary.Constant(0), at(60, residue)) : at(60, residue),
    result: Arbitrary.schema(Schema.Literals(["connect", "fail", "hang"])),
    interruptible: boolean
  })

const scenario: Arbitrary.Arbitrary<Scenario> = Arbitrary.all({
  delay: at(40, 0),
  a: dial(1, true),
  retry: dial(2, false),
  b: dial(2, false),
  lookupLatency: at(20, 0),
  lookupFails: boolean,
  current: Arbitrary.schema(Schema.Literals(["A", "B", "none"])),
  interruptAt: optional(at(120, 7)),
  signalAt: optional(at(60, 3))
})

/**
 * When the binding is validated if the bound agent is still pending: at the
 * delay, or earlier when the signal fires first. A signal never changes the
 * table otherwise.
 */
const validatesAt = (s: Scenario): number => s.signalAt === undefined ? s.delay : Math.min(s.delay, s.signalAt)

/** The outcome table, as a function of the scenario. */
const model = (s: Scenario): Expected => {
  const settle = (d: Dial, start: number, outcome: string, agent: "A" | "B"): Expected =>
    d.result === "hang"
      ? { _tag: "Pending" }
      : d.result === "connect"
      ? { _tag: "Success", outcome, agent, at: start + d.latency }
      : { _tag: "Failure", error: "AgentDialError", at: start + d.latency }
  const aDone = s.a.result !== "hang" && (s.a.latency === 0 || s.a.latency < validatesAt(s))
  let expected: Expected
  if (aDone && s.a.result === "connect") {
    expected = { _tag: "Success", outcome: "fast", agent: "A", at: s.a.latency }
  } else if (aDone) {
    const answered = s.a.latency + s.lookupLatency
    expected = s.lookupFails
      ? { _tag: "Failure", error: "AgentLookupError", at: answered }
      : s.current === "none"
      ? { _tag: "Failure", error: "NoCurrentAgent", at: answered }
      : s.current === "A"
      ? settle(s.retry, answered, "retried", "A")
      : settle(s.b, answered, "switched", "B")
  } else {
    const answered = validatesAt(s) + s.lookupLatency
    const keepA = (outcome: string): Expected => {
      const a = settle(s.a, 0, outcome, "A")
      return a._tag === "Pending" ? a : { ...a, at: Math.max(a.at, answered) }
    }
    expected = s.lookupFails
      ? keepA("lookup_failed_kept")
      : s.current === "none"
      ? { _tag: "Failure", error: "NoCurrentAgent", at: answered }
      : s.current === "A"
      ? keepA("confirmed")
      : settle(s.b, answered, "switched", "B")
  }
  if (s.interruptAt !== undefined && (expected._tag === "Pending" || s.interruptAt < expected.at)) {
    return { _tag: "Failure", error: "Interrupted", at: s.interruptAt }
  }
  return expected
}

const toScript = (d: Dial) => ({ latency: d.latency, result: d.result, interruptible: d.interruptible })

/**
 * Starts one scenario at time 0 on its own fleet, and returns the check to run
 * once the shared TestClock has passed every event of the scenario.
 */
const start = (s: Scenario) =>
  Effect.gen(function*() {
    const kit = yield* makeKit
    const agents = kit
    yield* agents.script(A, toScript(s.a), toScript(s.retry))
    yield* agents.script(B, toScript(s.b))
    yield* agents.setCurrent(
      W,
      s.current === "none"
        ? Option.none()
        : Option.some(currentAgent({ agentId: s.current === "A" ? A : B, buildId: BUILD }))
    )
    yield* agents.scriptLookup(W, { latency: s.lookupLatency, result: s.lookupFails ? "fail" : "current" })
    const service = yield* LazyDial.make({ delay: s.delay }).pipe(
      Effect.provideService(AgentDialer.AgentDialer, kit),
      Effect.provideService(AgentLookup.AgentLookup, kit)
    )
    const scope = yield* Scope.make()
    const signal = yield* Deferred.make<void>()
    if (s.signalAt !== undefined) {
      yield* Effect.forkChild(Effect.andThen(Effect.sleep(s.signalAt), Deferred.succeed(signal, undefined)))
    }
    const validateNow = s.signalAt === undefined ? undefined : Deferred.await(signal)
    const fiber = yield* Effect.forkChild(
      Effect.zip(
        Effect.exit(Scope.provide(service.dial({ agentId: A, workspaceId: W, validateNow }), scope)),
        Clock.currentTimeMillis
      )
    )
    let interruptedAt: number | undefined
    if (s.interruptAt !== undefined) {
      const interruptAt = s.interruptAt
      yield* Effect.forkChild(Effect.andThen(
        Effect.sleep(interruptAt),
        Effect.suspend(() => {
          if (fiber.pollUnsafe() !== undefined) return Effect.void
          return Effect.andThen(
            Fiber.interrupt(fiber),
            Effect.map(Clock.currentTimeMillis, (now) => void (interruptedAt = now))
          )
        })
      ))
    }
    return Effect.suspend(() => check(s, agents, fiber, scope, interruptedAt))
  })

const check = (
  s: Scenario,
  agents: Effect.Success<typeof makeKit>,
  fiber: Fiber.Fiber<readonly [Exit.Exit<LazyDial.LazyDialResult, unknown>, number]>,
  scope: Scope.Closeable,
  interruptedAt: number | undefined
) =>
  Effect.gen(function*() {
    const done = fiber.pollUnsafe()
    const expected = model(s)
    let accepted: string | undefined
    if (expected._tag === "Pending") {
      assert.isUndefined(done, "the model says the caller is still waiting")
      yield* Fiber.interrupt(fiber)
    } else if (interruptedAt !== undefined) {
      deepStrictEqual<Expected>(expected, { _tag: "Failure", error: "Interrupted", at: interruptedAt })
    } else {
      assert.isDefined(done)
      if (!Exit.isSuccess(done!)) return assert.fail("the test fiber itself failed")
      const [exit, at] = done.value
      if (Exit.isSuccess(exit)) {
        accepted = exit.value.connection.connectionId
        deepStrictEqual<Expected>(
          { _tag: "Success", outcome: exit.value.outcome, agent: exit.value.agentId === A ? "A" : "B", at },
          expected
        )
        assert.strictEqual(exit.value.switched, exit.value.agentId !== A)
      } else {
        const error = Cause.findErrorOption(exit.cause).pipe(
          Option.map((e) => (e as { readonly _tag: string })._tag),
          Option.getOrElse(() => "?")
        )
        deepStrictEqual<Expected>({ _tag: "Failure", error, at }, expected)
      }
    }
    const dials = yield* agents.dials
    const lookups = yield* agents.lookups
    assert.isAtMost(dials.length, 2)
    assert.isAtMost(lookups.length, 1)
    if (expected._tag === "Success" && expected.outcome === "fast") assert.strictEqual(lookups.length, 0)
    const validateAt = validatesAt(s)
    if (lookups.length === 1 && s.a.latency < validateAt && s.a.result === "fail") {
      assert.strictEqual(lookups[0]!.at, s.a.latency, "a fast failure is validated at once")
    }
    if (lookups.length === 1 && !(s.a.latency < validateAt) && !(s.a.latency === 0 && s.a.result !== "hang")) {
      assert.strictEqual(lookups[0]!.at, validateAt, "a slow dial is validated at the delay, or at the signal if first")
    }

    // The ledger: every connection but the accepted one was released once, as
    // soon as it was both acquired and abandoned (a dial of A that lands while
    // the lookup runs is abandoned when the lookup names another agent); the
    // accepted one is released when the turn ends.
    const interrupted = interruptedAt ?? Infinity
    const firstAbandonedAt = Math.min(interrupted, validateAt + s.lookupLatency)
    for (const entry of yield* agents.ledger) {
      if (entry.connectionId === accepted) {
        deepStrictEqual(entry.releasedAt, [], "the accepted connection lives until the turn ends")
        continue
      }
      const abandonedAt = entry.agentId === A && s.a.result === "connect" ? firstAbandonedAt : interrupted
      deepStrictEqual(
        entry.releasedAt,
        [Math.max(entry.acquiredAt, abandonedAt)],
        `${entry.connectionId} released once, as soon as it was acquired and abandoned`
      )
    }
    const closedAt = yield* Clock.currentTimeMillis
    yield* Scope.close(scope, Exit.void)
    for (const entry of yield* agents.ledger) {
      assert.strictEqual(entry.releasedAt.length, 1, `${entry.connectionId} released exactly once`)
      if (entry.connectionId === accepted) deepStrictEqual(entry.releasedAt, [closedAt])
    }
  })

const runs = Number(process.env.LAZYDIAL_PROPERTY_RUNS ?? 1000)
// TestClock lets real timers fire between its steps, so a scenario costs real
// idle time. Scenarios therefore run side by side: `perClock` scenarios share one
// TestClock (each on its own fleet, all passed in one `adjust`), and `clocks`
// such groups run at once.
const perClock = Number(process.env.LAZYDIAL_PROPERTY_PER_CLOCK ?? 5)
const clocks = Number(process.env.LAZYDIAL_PROPERTY_CLOCKS ?? 10)
const batch = perClock * clocks

const runBatch = (group: ReadonlyArray<Scenario>) =>
  Effect.gen(function*() {
    const checks = yield* Effect.forEach(group, start)
    yield* TestClock.adjust(HORIZON)
    for (const [i, check] of checks.entries()) {
      yield* check.pipe(
        Effect.catchDefect((defect) => Effect.die(new Error(`scenario ${JSON.stringify(group[i])}: ${String(defect)}`)))
      )
    }
  }).pipe(Effect.provide(TestClock.layer()))

describe("dialWithLazyValidation against the model", () => {
  it(`matches the outcome table and leaks nothing (${runs} scenarios)`, { timeout: 120_000 }, async () => {
    let scenarios = 0
    const result = await Effect.runPromise(Arbitrary.checkEffect(
      Arbitrary.array(scenario, { minLength: batch, maxLength: batch }),
      (group) =>
        Effect.as(
          Effect.forEach(
            Array.from({ length: clocks }, (_, i) => group.slice(i * perClock, (i + 1) * perClock)),
            (slice) => Effect.tap(runBatch(slice), () => Effect.sync(() => void (scenarios += slice.length))),
            { concurrency: "unbounded", discard: true }
          ),
          true
        ),
      { runs: Math.ceil(runs / batch) }
    ))
    assert.strictEqual(result._tag, "Passed", Arbitrary.formatCheckFailure(result))
    assert.isAtLeast(scenarios, runs)
  })

  it("the model itself follows the table on hand-picked cases", () => {
    const base: Scenario = {
      delay: 80,
      a: { latency: 9, result: "connect", interruptible: true },
      retry: { latency: 2, result: "connect", interruptible: true },
      b: { latency: 10, result: "connect", interruptible: true },
      lookupLatency: 8,
      lookupFails: false,
      current: "B",
      interruptAt: undefined,
      signalAt: undefined
    }
    deepStrictEqual(model(base), { _tag: "Success", outcome: "fast", agent: "A", at: 9 })
    deepStrictEqual(model({ ...base, a: { ...base.a, latency: 161 } }), {
      _tag: "Success",
      outcome: "switched",
      agent: "B",
      at: 98
    })
    deepStrictEqual(model({ ...base, a: { ...base.a, result: "fail" }, current: "A" }), {
      _tag: "Success",
      outcome: "retried",
      agent: "A",
      at: 19
    })
    // a notice at 43 ends the wait for the hung A: B is looked up then, not at the delay
    deepStrictEqual(model({ ...base, a: { ...base.a, result: "hang" }, signalAt: 43 }), {
      _tag: "Success",
      outcome: "switched",
      agent: "B",
      at: 61
    })
    // a signal after A answered changes nothing
    deepStrictEqual(model({ ...base, signalAt: 11 }), model(base))
  })
})
