import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { AgentDialer, AgentId, AgentLookup, BuildId, Faults, LazyDial, Options, WorkspaceId } from "@lazydial/core"
import { currentAgent, layerTest, TestAgents } from "@lazydial/core/testing"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"

const A = AgentId.make("00000000-0000-4000-8000-00000000000a")
const B = AgentId.make("00000000-0000-4000-8000-00000000000b")
const W = WorkspaceId.make("00000000-0000-4000-8000-0000000000f0")
const BUILD = BuildId.make("00000000-0000-4000-8000-000000000b01")

const withFaults = (plan: Faults.FaultPlanInput) => Faults.layer(plan).pipe(Layer.provideMerge(layerTest))

const setup = Effect.gen(function*() {
  const agents = yield* TestAgents
  yield* agents.script(A, { result: "connect" })
  yield* agents.script(B, { result: "connect" })
  yield* agents.setCurrent(W, Option.some(currentAgent({ agentId: A, buildId: BUILD })))
  return agents
})

const dialA = Effect.flatMap(AgentDialer.AgentDialer, (dialer) => dialer.dial(A))
const lookupW = Effect.flatMap(AgentLookup.AgentLookup, (lookup) => lookup.current(W))

describe("Faults", () => {
  it.effect("an empty plan injects nothing", () =>
    Effect.gen(function*() {
      yield* setup
      const connection = yield* dialA
      assert.strictEqual(connection.agentId, A)
      assert.isTrue(Option.isSome(yield* lookupW))
    }).pipe(Effect.provide(withFaults({}))))

  it.effect("dial failures are AgentDialError, as real ones are", () =>
    Effect.gen(function*() {
      yield* setup
      const error = yield* Effect.flip(dialA)
      assert.strictEqual(error._tag, "AgentDialError")
      assert.include(error.message, "injected fault")
    }).pipe(Effect.provide(withFaults({ dial: { failureRate: 1 } }))))

  it.effect("added latency runs on the Effect clock", () =>
    Effect.gen(function*() {
      yield* setup
      const fiber = yield* Effect.forkChild(dialA)
      yield* TestClock.adjust(249)
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* Fiber.join(fiber)).agentId, A)
    }).pipe(Effect.provide(withFaults({ dial: { latency: { min: 250, max: 250 } } }))))

  // A hang never ends by itself, so it honours interruption even when dials
  // are set to ignore it: otherwise its fiber would stay for ever.
  for (const ignoreInterruptionRate of [0, 1]) {
    it.effect(`a hung dial never answers, and honours interruption (ignoreInterruptionRate ${ignoreInterruptionRate})`, () =>
      Effect.gen(function*() {
        yield* setup
        const fiber = yield* Effect.forkChild(dialA)
        yield* TestClock.adjust("1 hour")
        assert.isUndefined(fiber.pollUnsafe())
        yield* Fiber.interrupt(fiber)
        assert.isTrue(Exit.hasInterrupts(fiber.pollUnsafe()!))
      }).pipe(Effect.provide(withFaults({ dial: { hangRate: 1, ignoreInterruptionRate } }))))
  }

  it.effect("defects are thrown as InjectedDefect", () =>
    Effect.gen(function*() {
      yield* setup
      const exit = yield* Effect.exit(dialA)
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
      const lookupExit = yield* Effect.exit(lookupW)
      assert.isTrue(Exit.isFailure(lookupExit) && Cause.hasDies(lookupExit.cause))
    }).pipe(Effect.provide(withFaults({ dial: { defectRate: 1 }, lookup: { defectRate: 1 } }))))

  it.effect("lookups fail or find no agent", () =>
    Effect.gen(function*() {
      yield* setup
      assert.isTrue(Option.isNone(yield* lookupW))
    }).pipe(Effect.provide(withFaults({ lookup: { noAgentRate: 1 } }))))

  it.effect("a dial that ignores interruption is switched away from, and its late connection released once", () =>
    Effect.gen(function*() {
      const agents = yield* setup
      yield* agents.setCurrent(W, Option.some(currentAgent({ agentId: B, buildId: BUILD })))
      const scope = yield* Scope.make()
      const fiber = yield* Effect.forkChild(
        Scope.provide(Effect.flatMap(LazyDial.LazyDial, (s) => s.dial({ agentId: A, workspaceId: W })), scope)
      )
      // A's dial is abandoned at 100 ms; B, faulty too, answers at 1100 ms.
      yield* TestClock.adjust(1100)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(result.agentId, B)
      const late = (yield* agents.ledger).find((entry) => entry.agentId === A)!
      deepStrictEqual(late.releasedAt, [late.acquiredAt])
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* agents.unreleased).length, 0)
    }).pipe(Effect.provide(
      LazyDial.layer({ delay: 100 }).pipe(
        Layer.provideMerge(withFaults({ dial: { ignoreInterruptionRate: 1, latency: { min: 1000, max: 1000 } } }))
      )
    )))

  it.effect("a bad plan fails the Layer and names the field", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(withFaults({ dial: { failureRate: 2 } })).pipe(Effect.scoped))
      assert.include(String(error), "failureRate")
    }))

  describe("layerConfig", () => {
    const fromEnv = (env: Record<string, string>) =>
      Faults.layerConfig({
        enabled: Faults.enabledConfig("LAZYDIAL_FAULTS"),
        dial: Options.optional(Faults.dialConfig("LAZYDIAL_FAULTS_DIAL")),
        lookup: Options.optional(Faults.lookupConfig("LAZYDIAL_FAULTS_LOOKUP"))
      }).pipe(
        Layer.provideMerge(layerTest),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))
      )

    it.effect("passes services through when LAZYDIAL_FAULTS is off", () =>
      Effect.gen(function*() {
        yield* setup
        assert.strictEqual((yield* dialA).agentId, A)
      }).pipe(Effect.provide(fromEnv({ LAZYDIAL_FAULTS_DIAL: "{\"failureRate\":1}" }))))

    it.effect("injects the configured faults when on", () =>
      Effect.gen(function*() {
        yield* setup
        assert.strictEqual((yield* Effect.flip(dialA))._tag, "AgentDialError")
      }).pipe(Effect.provide(fromEnv({ LAZYDIAL_FAULTS: "on", LAZYDIAL_FAULTS_DIAL: "{\"failureRate\":1}" }))))

    it.effect("a bad value names the variable and the field", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          Layer.build(fromEnv({ LAZYDIAL_FAULTS: "on", LAZYDIAL_FAULTS_LOOKUP: "{\"noAgentRate\":-1}" })).pipe(
            Effect.scoped
          )
        )
        assert.include(String(error), "LAZYDIAL_FAULTS_LOOKUP")
        assert.include(String(error), "noAgentRate")
      }))
  })
})
