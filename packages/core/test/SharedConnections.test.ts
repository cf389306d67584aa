import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { LazyDial, SharedConnections } from "@lazydial/core"
import type { AgentConnection } from "@lazydial/core"
import { currentAgent, layerTest, TestAgents } from "@lazydial/core/testing"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { A, B, BUILD_1, BUILD_2, W } from "./fixtures.js"

const probe = (connection: AgentConnection) => connection.exchange("ping")

const shared = (options?: SharedConnections.Options) =>
  LazyDial.layer({ delay: 100 }).pipe(
    Layer.provideMerge(SharedConnections.layer({ probe, ...options })),
    Layer.provideMerge(layerTest)
  )

const turn = Effect.scoped(
  Effect.flatMap(
    LazyDial.LazyDial,
    (lazyDial) =>
      Effect.flatMap(
        lazyDial.dial({ agentId: A, workspaceId: W }),
        (result) => Effect.as(result.connection.exchange("turn"), result)
      )
  )
)

const setup = Effect.gen(function*() {
  const agents = yield* TestAgents
  yield* agents.script(A, { latency: 10, result: "connect" })
  yield* agents.script(B, { latency: 10, result: "connect" })
  yield* agents.setCurrent(W, Option.some(currentAgent({ agentId: A, buildId: BUILD_1 })))
  return agents
})

/** Runs `effect` to its end on the TestClock, moving it 10 ms at a time. */
const settle = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    while (fiber.pollUnsafe() === undefined) yield* TestClock.adjust(10)
    return yield* Fiber.join(fiber)
  })

describe("SharedConnections", () => {
  it.effect("a second turn borrows the first turn's connection: one dial, the same connection, a fast outcome", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      const first = yield* settle(turn)
      const second = yield* turn
      assert.strictEqual(second.outcome, "fast")
      assert.strictEqual(second.connection.connectionId, first.connection.connectionId)
      assert.strictEqual((yield* agents.dials).length, 1, "the second turn dialed nothing")
      assert.strictEqual((yield* agents.lookups).length, 0)
      assert.strictEqual((yield* agents.unreleased).length, 1, "the connection stays open between turns")
    }).pipe(Effect.provide(shared())))

  it.effect("turns at the same time share one dial", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      const results = yield* settle(Effect.all([turn, turn, turn], { concurrency: "unbounded" }))
      assert.strictEqual((yield* agents.dials).length, 1)
      deepStrictEqual(new Set(results.map((r) => r.connection.connectionId)).size, 1)
    }).pipe(Effect.provide(shared())))

  it.effect("a connection nobody borrows is closed after its idle time, exactly once", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      yield* settle(turn)
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual((yield* agents.unreleased).length, 1)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* agents.unreleased).length, 0)
      assert.strictEqual((yield* agents.releasedTwice).length, 0)
      yield* settle(turn)
      assert.strictEqual((yield* agents.dials).length, 2, "after its idle close, a turn dials again")
    }).pipe(Effect.provide(shared())))

  it.effect("a failed use drops the connection: the next turn dials a fresh one", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      const first = yield* settle(turn)
      yield* agents.breakConnection(first.connection.connectionId)
      const failed = yield* Effect.exit(turn)
      assert.isTrue(Exit.isFailure(failed))
      const next = yield* settle(turn)
      assert.notStrictEqual(next.connection.connectionId, first.connection.connectionId)
      assert.strictEqual((yield* agents.dials).length, 2)
      const ledger = yield* agents.ledger
      deepStrictEqual(ledger[0]!.releasedAt.length, 1, "the dead connection was closed, once")
    }).pipe(Effect.provide(shared())))

  it.effect("a borrow after the idle probe time probes first; a failed probe means a fresh dial, not a failed turn", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      const first = yield* settle(turn)
      yield* TestClock.adjust("5 seconds")
      yield* turn // not idle long enough: no probe, the same connection
      assert.strictEqual((yield* agents.dials).length, 1)
      yield* TestClock.adjust("11 seconds")
      yield* agents.breakConnection(first.connection.connectionId) // it died while idle: the probe finds it
      const result = yield* settle(turn)
      assert.notStrictEqual(result.connection.connectionId, first.connection.connectionId)
      assert.strictEqual((yield* agents.dials).length, 2, "the failed probe led to one fresh dial")
      assert.strictEqual((yield* agents.ledger)[0]!.releasedAt.length, 1, "the dead connection was closed")
    }).pipe(Effect.provide(shared())))

  it.effect("invalidate drops a connection: closed when its last borrower gives it back; the next turn dials", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      const control = yield* SharedConnections.SharedConnections
      const lazyDial = yield* LazyDial.LazyDial
      const scope = yield* Scope.make()
      yield* settle(Scope.provide(lazyDial.dial({ agentId: A, workspaceId: W }), scope))
      assert.strictEqual(yield* control.open, 1)
      yield* control.invalidate(A)
      assert.strictEqual((yield* agents.unreleased).length, 1, "a borrowed connection stays with its borrower")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* agents.unreleased).length, 0)
      assert.strictEqual(yield* control.open, 0)
      yield* settle(turn)
      assert.strictEqual((yield* agents.dials).length, 2)
    }).pipe(Effect.provide(shared())))

  it.effect("a failed dial is not kept: the next turn dials again", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      yield* agents.script(A, { latency: 1, result: "fail" }, { latency: 10, result: "connect" })
      yield* agents.setCurrent(W, Option.some(currentAgent({ agentId: B, buildId: BUILD_2 })))
      const switched = yield* settle(turn)
      assert.strictEqual(switched.outcome, "switched")
      yield* agents.setCurrent(W, Option.some(currentAgent({ agentId: A, buildId: BUILD_1 })))
      const back = yield* settle(turn)
      assert.strictEqual(back.outcome, "fast")
      deepStrictEqual((yield* agents.dials).map((d) => d.id), [A, B, A])
    }).pipe(Effect.provide(shared())))

  it.effect("a hung open is dropped at openTimeout: the turns waiting on it share one fresh dial and connect", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      yield* agents.script(A, { result: "hang" }, { latency: 10, result: "connect" })
      const turns = yield* Effect.forkChild(Effect.all([turn, turn, turn], { concurrency: "unbounded" }))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(turns.pollUnsafe(), "they wait on the hung open until its bound")
      yield* TestClock.adjust("20 millis")
      const results = yield* Fiber.join(turns)
      deepStrictEqual(results.map((r) => r.outcome), ["confirmed", "confirmed", "confirmed"])
      deepStrictEqual(new Set(results.map((r) => r.connection.connectionId)).size, 1, "one fresh connection")
      assert.strictEqual((yield* agents.dials).length, 2, "the hung dial, then one fresh dial for all three")
      const next = yield* turn
      assert.strictEqual(next.outcome, "fast", "the fresh connection is the shared one")
      assert.strictEqual((yield* agents.dials).length, 2)
    }).pipe(Effect.provide(shared({ openTimeout: "1 second" }))))

  it.effect("a borrower that comes later waits only what is left of the open's bound", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      yield* agents.script(A, { result: "hang" }, { latency: 10, result: "connect" })
      const first = yield* Effect.forkChild(turn)
      yield* TestClock.adjust("800 millis")
      const second = yield* Effect.forkChild(turn)
      yield* TestClock.adjust("220 millis")
      assert.strictEqual((yield* Fiber.join(second)).outcome, "confirmed", "it gave up at 1 s, not 1.8 s")
      assert.strictEqual((yield* Fiber.join(first)).outcome, "confirmed")
      assert.strictEqual((yield* agents.dials).length, 2)
    }).pipe(Effect.provide(shared({ openTimeout: "1 second" }))))

  it.effect("a healthy open slower than openTimeout: the fresh open has no bound of ours and is kept", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      yield* agents.script(A, { latency: 1_500, result: "connect" })
      const first = yield* settle(turn)
      assert.strictEqual(first.outcome, "confirmed")
      assert.strictEqual((yield* agents.dials).length, 2, "the first open given up at 1 s, the second awaited")
      assert.strictEqual((yield* turn).outcome, "fast")
      assert.strictEqual((yield* agents.dials).length, 2)
      assert.strictEqual((yield* agents.unreleased).length, 1, "the given-up open never connected")
    }).pipe(Effect.provide(shared({ openTimeout: "1 second" }))))

  it.effect("nothing is left open when the Layer's Scope closes", () =>
    Effect.gen(function*() {
      const agents = yield* TestAgents
      yield* agents.script(A, { latency: 10, result: "connect" })
      yield* Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(
          LazyDial.layer({ delay: 100 }).pipe(
            Layer.provide(SharedConnections.layer({ probe }))
          )
        )
        yield* settle(Effect.provide(turn, context))
        assert.strictEqual((yield* agents.unreleased).length, 1)
      }))
      assert.strictEqual((yield* agents.unreleased).length, 0)
      assert.strictEqual((yield* agents.releasedTwice).length, 0)
    }).pipe(Effect.provide(layerTest)))

  it.effect("options out of range fail the Layer, naming the option", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(
          SharedConnections.layer({ probeTimeout: 0 }).pipe(Layer.provide(layerTest))
        )
      )
      assert.strictEqual(error.option, "probeTimeout")
      const open = yield* Effect.flip(
        Layer.build(
          SharedConnections.layer({ openTimeout: 0 }).pipe(Layer.provide(layerTest))
        )
      )
      assert.strictEqual(open.option, "openTimeout")
    }))
})
