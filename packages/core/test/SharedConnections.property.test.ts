/**
 * Shared connections under random interleavings of turns, idle time,
 * invalidations and dead connections: no connection is closed while a turn
 * holds it, none is closed twice, a steady run of turns makes one dial, and
 * nothing is left open when the Layer's Scope closes.
 */
import { assert, describe, it } from "@effect/vitest"
import { AgentDialer, AgentDialError, LazyDial, SharedConnections } from "@lazydial/core"
import type { AgentConnection } from "@lazydial/core"
import { currentAgent, layerTest, TestAgents } from "@lazydial/core/testing"
import * as Arbitrary from "effect/Arbitrary"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { A, BUILD_1, W } from "./fixtures.js"

type Step =
  | { readonly _tag: "turn"; readonly holdMillis: number }
  | { readonly _tag: "idle"; readonly millis: number }
  | { readonly _tag: "invalidate" }
  | { readonly _tag: "die" }

const int = (min: number, max: number) =>
  Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: min, maximum: max })))
const step: Arbitrary.Arbitrary<Step> = Arbitrary.flatMap(int(0, 5), (kind): Arbitrary.Arbitrary<Step> =>
  kind <= 2
    ? Arbitrary.map(int(0, 3_000), (holdMillis) => ({ _tag: "turn" as const, holdMillis }))
    : kind === 3
    ? Arbitrary.map(int(0, 70_000), (millis) => ({ _tag: "idle" as const, millis }))
    : kind === 4
    ? Arbitrary.Constant({ _tag: "invalidate" as const })
    : Arbitrary.Constant({ _tag: "die" as const }))

const run = (steps: ReadonlyArray<Step>) =>
  Effect.gen(function*() {
    const dead = new Set<string>()
    const agents = yield* TestAgents
    yield* agents.script(A, { latency: 5, result: "connect" })
    yield* agents.setCurrent(W, Option.some(currentAgent({ agentId: A, buildId: BUILD_1 })))
    const breakable = Layer.effect(
      AgentDialer.AgentDialer,
      Effect.map(AgentDialer.AgentDialer, (kit) =>
        AgentDialer.AgentDialer.of({
          dial: (agentId) =>
            Effect.map(kit.dial(agentId), (connection): AgentConnection => ({
              ...connection,
              exchange: (request) =>
                dead.has(connection.connectionId)
                  ? Effect.fail(new AgentDialError({ agentId, reason: "Closed" }))
                  : connection.exchange(request)
            }))
        }))
    )
    const violations: Array<string> = []
    const layerScope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      LazyDial.layer({ delay: 100 }).pipe(
        Layer.provideMerge(SharedConnections.layer({ probe: (connection) => connection.exchange("ping") })),
        Layer.provide(breakable)
      ),
      layerScope
    )
    const lazyDial = yield* Effect.provide(LazyDial.LazyDial, context)
    const control = yield* Effect.provide(SharedConnections.SharedConnections, context)
    const lastConnection: Array<string> = []
    const turn = (holdMillis: number) =>
      Effect.scoped(Effect.gen(function*() {
        const result = yield* lazyDial.dial({ agentId: A, workspaceId: W })
        lastConnection.push(result.connection.connectionId)
        yield* Effect.ignore(result.connection.exchange("turn"))
        yield* Effect.sleep(holdMillis)
        const held = (yield* agents.ledger).find((entry) => entry.connectionId === result.connection.connectionId)
        if (held !== undefined && held.releasedAt.length > 0) {
          violations.push(`${held.connectionId} was closed while a turn held it`)
        }
      }))
    const turns: Array<Fiber.Fiber<unknown, unknown>> = []
    for (const s of steps) {
      if (s._tag === "turn") turns.push(yield* Effect.forkChild(Effect.exit(turn(s.holdMillis))))
      else if (s._tag === "idle") yield* TestClock.adjust(s.millis)
      else if (s._tag === "invalidate") yield* control.invalidate(A)
      else if (lastConnection.length > 0) dead.add(lastConnection[lastConnection.length - 1]!)
      yield* TestClock.adjust(1)
    }
    yield* TestClock.adjust(10_000)
    for (const fiber of turns) yield* Fiber.join(fiber)
    yield* Scope.close(layerScope, Exit.void)
    const ledger = yield* agents.ledger
    for (const entry of ledger) {
      if (entry.releasedAt.length !== 1) {
        violations.push(`${entry.connectionId} released ${entry.releasedAt.length} times`)
      }
    }
    const turnCount = steps.filter((s) => s._tag === "turn").length
    const dials = (yield* agents.dials).length
    if (dials > turnCount) violations.push("more dials than turns")
    yield* agents.reset
    return { violations, dials }
  }).pipe(Effect.provide(layerTest), Effect.provide(TestClock.layer()))

describe("SharedConnections against random interleavings", () => {
  it("no connection is closed while held, none twice, nothing left open (300 runs)", { timeout: 60_000 }, async () => {
    const result = await Effect.runPromise(Arbitrary.checkEffect(
      Arbitrary.array(step, { minLength: 1, maxLength: 30 }),
      (steps) =>
        Effect.map(run(steps), ({ violations }) => violations.length === 0 || assert.fail(violations.join("; "))),
      { runs: 300 }
    ))
    assert.strictEqual(result._tag, "Passed", Arbitrary.formatCheckFailure(result))
  })

  it("a steady run of turns makes one dial", async () => {
    const steps: ReadonlyArray<Step> = Array.from(
      { length: 20 },
      (_, i) => i % 2 === 0 ? { _tag: "turn", holdMillis: 10 } : { _tag: "idle", millis: 1_000 }
    )
    const { dials, violations } = await Effect.runPromise(run(steps))
    assert.strictEqual(violations.length, 0, violations.join("; "))
    assert.strictEqual(dials, 1)
  })
})
