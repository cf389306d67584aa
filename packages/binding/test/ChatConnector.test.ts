/**
 * The turn path, on TestClock, with the scripted agents of @lazydial/core and
 * the in-memory store. Tests are named after the paths and errors of
 * ChatConnector's module documentation.
 */
import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { BindingStore, ChatConnector } from "@lazydial/binding"
import { type CurrentAgent, LazyDial, Options, type WorkspaceId } from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { boundChat, build, chatId, withEnv, workspaceId } from "./fixtures.js"

/** The connector on core's test kit and a store (memory unless given), with its services exposed. */
const connectorLayer = <E = never>(options: {
  readonly connector?: Parameters<typeof ChatConnector.layer>[0]
  readonly delay?: Duration.Input
  readonly store?: Layer.Layer<BindingStore.BindingStore, E>
} = {}) =>
  ChatConnector.layer(options.connector).pipe(
    Layer.provideMerge(LazyDial.layer({ delay: options.delay ?? "5 seconds" })),
    Layer.provideMerge(options.store ?? BindingStore.layerMemory),
    Layer.provideMerge(layerTest)
  )

const TestLive = connectorLayer()

/** A running workspace whose current agent answers at once. */
const runningWorkspace = Effect.gen(function*() {
  const agents = yield* TestAgents
  const w = workspaceId()
  const current = build()
  yield* agents.setCurrent(w, Option.some(current))
  yield* agents.script(current.agentId, { result: "connect" })
  return { workspaceId: w, current }
})

/** A rebuild: the workspace gets a new build and agent; the old agent is gone. */
const rebuild = (w: WorkspaceId, old: CurrentAgent, oldAgent: "fail" | "hang" = "fail") =>
  Effect.gen(function*() {
    const agents = yield* TestAgents
    const next = build()
    yield* agents.setCurrent(w, Option.some(next))
    yield* agents.script(next.agentId, { result: "connect" })
    yield* agents.script(old.agentId, { result: oldAgent })
    return next
  })

const lookupCount = Effect.map(TestAgents, (agents) => agents.lookups).pipe(
  Effect.flatten,
  Effect.map((lookups) => lookups.length)
)

const counter = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)

/** One turn: its own Scope, closed when the turn ends. */
const turn = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.scoped(effect)

describe("ChatConnector", () => {
  it.effect("hot: a bound agent that answers costs 0 lookups, turn after turn", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const agents = yield* TestAgents
      const { current, workspaceId: w } = yield* runningWorkspace
      const chatId = yield* boundChat(w, current)
      const hotBefore = yield* counter(
        Metric.withAttributes(ChatConnector.turnsTotal, { outcome: "fast", write: "none" })
      )
      for (let i = 0; i < 10; i++) {
        const connection = yield* turn(connector.connect(chatId))
        assert.strictEqual(connection.outcome, "fast")
        assert.strictEqual(connection.outcome, "fast")
        assert.strictEqual(connection.agentId, current.agentId)
        assert.strictEqual(connection.buildId, current.buildId)
        assert.strictEqual(connection.write, "none")
      }
      assert.strictEqual(yield* lookupCount, 0)
      assert.strictEqual((yield* agents.ledger).length, 10)
      assert.strictEqual((yield* agents.unreleased).length, 0)
      assert.strictEqual(
        (yield* counter(Metric.withAttributes(ChatConnector.turnsTotal, { outcome: "fast", write: "none" }))) -
          hotBefore,
        10
      )
    }).pipe(Effect.provide(TestLive)))

  it("TurnOutcome: core's outcomes, then lazy_bind and switched_by_notice; nothing else decodes", () => {
    assert.deepStrictEqual(ChatConnector.turnOutcomes, [...LazyDial.outcomes, "lazy_bind", "switched_by_notice"])
    for (const outcome of ChatConnector.turnOutcomes) {
      assert.strictEqual(Schema.decodeUnknownSync(ChatConnector.TurnOutcome)(outcome), outcome)
    }
    for (const other of ["hot", "repair_lost", "direct", ""]) {
      assert.isFalse(Schema.is(ChatConnector.TurnOutcome)(other))
    }
  })

  it.effect("lazy bind: a chat with a workspace and no agent looks up once, records, then runs hot", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const { current, workspaceId: w } = yield* runningWorkspace
      const chat = yield* store.createChat({ workspaceId: w })
      const first = yield* turn(connector.connect(chat.chatId))
      assert.strictEqual(first.outcome, "lazy_bind")
      assert.strictEqual(first.outcome, "lazy_bind")
      assert.strictEqual(first.write, "recorded")
      assert.strictEqual(first.agentId, current.agentId)
      assert.strictEqual(yield* lookupCount, 1)
      const row = yield* store.get(chat.chatId)
      deepStrictEqual(row.agentId, Option.some(current.agentId))
      deepStrictEqual(row.buildId, Option.some(current.buildId))
      const second = yield* turn(connector.connect(chat.chatId))
      assert.strictEqual(second.outcome, "fast")
      assert.strictEqual(yield* lookupCount, 1)
    }).pipe(Effect.provide(TestLive)))

  it.effect("switched: after a rebuild the dial switches and the repair is persisted with its own build", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const { current, workspaceId: w } = yield* runningWorkspace
      const chatId = yield* boundChat(w, current)
      const next = yield* rebuild(w, current)
      const repaired = yield* turn(connector.connect(chatId))
      assert.strictEqual(repaired.outcome, "switched")
      assert.strictEqual(repaired.outcome, "switched")
      assert.strictEqual(repaired.write, "recorded")
      assert.strictEqual(repaired.agentId, next.agentId)
      assert.strictEqual(repaired.buildId, next.buildId)
      const row = yield* store.get(chatId)
      deepStrictEqual(row.agentId, Option.some(next.agentId))
      deepStrictEqual(row.buildId, Option.some(next.buildId))
      assert.strictEqual(yield* lookupCount, 1)
      const after = yield* turn(connector.connect(chatId))
      assert.strictEqual(after.outcome, "fast")
      assert.strictEqual(yield* lookupCount, 1)
    }).pipe(Effect.provide(TestLive)))

  it.effect("stale agent row: a bound agent that hangs is validated at the delay and replaced", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const agents = yield* TestAgents
      const store = yield* BindingStore.BindingStore
      const { current, workspaceId: w } = yield* runningWorkspace
      const chatId = yield* boundChat(w, current)
      const next = yield* rebuild(w, current, "hang")
      const fiber = yield* Effect.forkChild(turn(connector.connect(chatId)))
      yield* TestClock.adjust("4999 millis")
      assert.strictEqual(yield* lookupCount, 0)
      yield* TestClock.adjust("1 millis")
      const repaired = yield* Fiber.join(fiber)
      assert.strictEqual(repaired.outcome, "switched")
      assert.strictEqual(repaired.agentId, next.agentId)
      deepStrictEqual((yield* agents.lookups).map((lookup) => lookup.at), [5000])
      deepStrictEqual((yield* store.get(chatId)).agentId, Option.some(next.agentId))
    }).pipe(Effect.provide(TestLive)))

  it.effect("repair_lost: a switch that loses to a newer repair keeps its connection and leaves the winner's row", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const agents = yield* TestAgents
      const lost = Metric.withAttributes(ChatConnector.turnsTotal, { outcome: "switched", write: "lost" })
      const lostBefore = yield* counter(lost)
      const { current, workspaceId: w } = yield* runningWorkspace
      const chatId = yield* boundChat(w, current)
      const next = yield* rebuild(w, current)
      yield* agents.scriptLookup(w, { result: "current", latency: "1 second" })
      const fiber = yield* Effect.forkChild(turn(connector.connect(chatId)))
      yield* TestClock.adjust("500 millis")
      // Another replica repairs first, from the same expectation.
      const newer = build()
      yield* store.recordAgent(chatId, {
        expected: { workspaceId: w, agentId: Option.some(current.agentId) },
        current: newer
      })
      yield* TestClock.adjust("500 millis")
      const connection = yield* Fiber.join(fiber)
      assert.strictEqual(connection.outcome, "switched")
      assert.strictEqual(connection.write, "lost")
      assert.strictEqual(connection.agentId, next.agentId)
      deepStrictEqual(connection.binding.agentId, Option.some(newer.agentId))
      deepStrictEqual((yield* store.get(chatId)).agentId, Option.some(newer.agentId))
      assert.strictEqual((yield* counter(lost)) - lostBefore, 1)
    }).pipe(Effect.provide(TestLive)))

  it.effect("a lazy bind lost to a workspace change re-reads the row and binds the new workspace", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const agents = yield* TestAgents
      const first = yield* runningWorkspace
      const second = yield* runningWorkspace
      const chat = yield* store.createChat({ workspaceId: first.workspaceId })
      yield* agents.scriptLookup(first.workspaceId, { result: "current", latency: "1 second" })
      const fiber = yield* Effect.forkChild(turn(connector.connect(chat.chatId)))
      yield* TestClock.adjust("500 millis")
      yield* store.setWorkspace(chat.chatId, Option.some(second.workspaceId))
      yield* TestClock.adjust("500 millis")
      const connection = yield* Fiber.join(fiber)
      assert.strictEqual(connection.outcome, "lazy_bind")
      assert.strictEqual(connection.workspaceId, second.workspaceId)
      assert.strictEqual(connection.agentId, second.current.agentId)
      const row = yield* store.get(chat.chatId)
      deepStrictEqual(row.workspaceId, Option.some(second.workspaceId))
      deepStrictEqual(row.agentId, Option.some(second.current.agentId))
      deepStrictEqual((yield* agents.dials).map((dial) => dial.id), [second.current.agentId])
    }).pipe(Effect.provide(TestLive)))

  it.effect("child chat: inherits the parent's agent and runs hot at once, then evolves on its own", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const { current, workspaceId: w } = yield* runningWorkspace
      const parent = yield* boundChat(w, current)
      const child = yield* store.createChild(parent)
      const connection = yield* turn(connector.connect(child.chatId))
      assert.strictEqual(connection.outcome, "fast")
      assert.strictEqual(connection.agentId, current.agentId)
      assert.strictEqual(yield* lookupCount, 0)
      const next = yield* rebuild(w, current)
      assert.strictEqual((yield* turn(connector.connect(child.chatId))).agentId, next.agentId)
      deepStrictEqual((yield* store.get(parent)).agentId, Option.some(current.agentId))
    }).pipe(Effect.provide(TestLive)))

  it.effect("workspace change: the next turn lazily binds to the new workspace's agent", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const first = yield* runningWorkspace
      const second = yield* runningWorkspace
      const chatId = yield* boundChat(first.workspaceId, first.current)
      yield* store.setWorkspace(chatId, Option.some(second.workspaceId))
      const connection = yield* turn(connector.connect(chatId))
      assert.strictEqual(connection.outcome, "lazy_bind")
      assert.strictEqual(connection.workspaceId, second.workspaceId)
      assert.strictEqual(connection.agentId, second.current.agentId)
      const row = yield* store.get(chatId)
      deepStrictEqual(row.workspaceId, Option.some(second.workspaceId))
      deepStrictEqual(row.agentId, Option.some(second.current.agentId))
    }).pipe(Effect.provide(TestLive)))

  it.effect("errors: no workspace, a stopped workspace and an unknown chat, each by name", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const agents = yield* TestAgents
      const loose = yield* store.createChat()
      const noWorkspace = yield* Effect.flip(turn(connector.connect(loose.chatId)))
      assert.strictEqual(noWorkspace._tag, "ChatHasNoWorkspace")
      assert.include(noWorkspace.message, "has no workspace")

      const stopped = workspaceId()
      yield* agents.setCurrent(stopped, Option.none())
      const fresh = yield* store.createChat({ workspaceId: stopped })
      assert.strictEqual((yield* Effect.flip(turn(connector.connect(fresh.chatId))))._tag, "NoCurrentAgent")
      assert.isTrue(Option.isNone((yield* store.get(fresh.chatId)).agentId))

      const { current, workspaceId: w } = yield* runningWorkspace
      const bound = yield* boundChat(w, current)
      yield* agents.setCurrent(w, Option.none())
      yield* agents.script(current.agentId, { result: "fail" })
      assert.strictEqual((yield* Effect.flip(turn(connector.connect(bound))))._tag, "NoCurrentAgent")
      deepStrictEqual((yield* store.get(bound)).agentId, Option.some(current.agentId))

      const unknown = yield* Effect.flip(turn(connector.connect(chatId())))
      assert.strictEqual(unknown._tag, "ChatNotFound")
    }).pipe(Effect.provide(TestLive)))

  it.effect("dial timeout: a dial that never ends fails with DialTimeout at 30 seconds, and nothing leaks", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const agents = yield* TestAgents
      const { current, workspaceId: w } = yield* runningWorkspace
      const chatId = yield* boundChat(w, current)
      // The agent is still the current one, so validation confirms it and the dial waits.
      yield* agents.script(current.agentId, { result: "hang" })
      const fiber = yield* Effect.forkChild(turn(connector.connect(chatId)))
      yield* TestClock.adjust("29999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "DialTimeout")
      assert.include(error.message, "30000 ms")
      assert.strictEqual((yield* agents.unreleased).length, 0)
    }).pipe(Effect.provide(TestLive)))

  it.effect("dial timeout: the turn ends at its deadline even when its dial is slow to interrupt", () => {
    const slow = { reads: false }
    // A read whose interruption takes 5 s, as a cancelled PostgreSQL query's
    // does when its pg_cancel_backend waits behind other queries for a client.
    const slowToInterrupt = Layer.effect(
      BindingStore.BindingStore,
      Effect.map(BindingStore.BindingStore, (store) =>
        BindingStore.BindingStore.of({
          ...store,
          get: (chatId) =>
            slow.reads ? Effect.onInterrupt(Effect.never, () => Effect.sleep("5 seconds")) : store.get(chatId)
        }))
    ).pipe(Layer.provide(BindingStore.layerMemory))
    return Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const { current, workspaceId: w } = yield* runningWorkspace
      const chatId = yield* boundChat(w, current)
      slow.reads = true
      const fiber = yield* Effect.forkChild(turn(connector.connect(chatId)))
      yield* TestClock.adjust("30 seconds")
      const ended = fiber.pollUnsafe()
      assert.isDefined(ended)
      assert.isTrue(
        Exit.isFailure(ended!) &&
          Cause.findErrorOption(ended.cause).pipe(Option.exists((e) => e._tag === "DialTimeout"))
      )
      // the read is still being interrupted in the background, and then ends
      yield* TestClock.adjust("5 seconds")
    }).pipe(Effect.provide(connectorLayer({ store: slowToInterrupt })))
  })

  it.effect("admission: past maxInFlight a turn waits for a permit, and the wait counts against its dial timeout", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const agents = yield* TestAgents
      const first = yield* runningWorkspace
      const second = yield* runningWorkspace
      const busy = yield* boundChat(first.workspaceId, first.current)
      const waiting = yield* boundChat(second.workspaceId, second.current)
      // The busy turn holds the only permit until its own timeout, at 10 s.
      yield* agents.script(first.current.agentId, { result: "hang" })
      yield* agents.script(second.current.agentId, { latency: "5 seconds", result: "connect" })
      const busyTurn = yield* Effect.forkChild(turn(connector.connect(busy)))
      yield* TestClock.adjust("1 second")
      const waitingTurn = yield* Effect.forkChild(turn(connector.connect(waiting)))
      yield* TestClock.adjust("9 seconds")
      assert.strictEqual((yield* Effect.flip(Fiber.join(busyTurn)))._tag, "DialTimeout")
      // The waiting turn got the permit at 10 s, 9 s into its budget: it fails
      // at 11 s, not at 20 s, and not with a connection at 15 s.
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(waitingTurn.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Effect.flip(Fiber.join(waitingTurn)))._tag, "DialTimeout")
      deepStrictEqual((yield* agents.dials).map((call) => [call.id, call.at]), [
        [first.current.agentId, 0],
        [second.current.agentId, 10_000]
      ])
      assert.strictEqual((yield* agents.unreleased).length, 0)
    }).pipe(Effect.provide(
      connectorLayer({ connector: { dialTimeout: "10 seconds", maxInFlight: 1 }, delay: "30 seconds" })
    )))

  it.effect("admission: maxInFlight out of range fails the Layer with InvalidOption", () =>
    Effect.gen(function*() {
      for (const maxInFlight of [0, -1, 1.5, 1_000_000]) {
        const error = yield* Effect.flip(
          Layer.build(ChatConnector.layer({ maxInFlight }).pipe(Layer.provide(TestLive))).pipe(Effect.scoped)
        )
        assert.strictEqual(error._tag, "InvalidOption")
        assert.include(error.message, "maxInFlight")
      }
    }))

  it.effect("parent interruption: an interrupted turn is interrupted, never a DialTimeout", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const agents = yield* TestAgents
      const { current, workspaceId: w } = yield* runningWorkspace
      const chatId = yield* boundChat(w, current)
      yield* agents.script(current.agentId, { result: "hang" })
      const fiber = yield* Effect.forkChild(turn(connector.connect(chatId)))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.interrupt(fiber)
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.hasInterrupts(exit))
      assert.isTrue(Exit.isFailure(exit) && Option.isNone(Cause.findErrorOption(exit.cause)))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual((yield* agents.dials).length, 1)
      assert.strictEqual((yield* agents.unreleased).length, 0)
    }).pipe(Effect.provide(TestLive)))

  it.effect("concurrent connects in one Scope each dial (no turn sharing), and the Scope releases every connection once", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const agents = yield* TestAgents
      const { current, workspaceId: w } = yield* runningWorkspace
      yield* agents.script(current.agentId, { result: "connect", latency: "1 second" })
      const chatId = yield* boundChat(w, current)
      const scope = yield* Scope.make()
      const fiber = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 5 }), () => connector.connect(chatId), { concurrency: "unbounded" }).pipe(
          Scope.provide(scope)
        )
      )
      yield* TestClock.adjust("1 second")
      const connections = yield* Fiber.join(fiber)
      assert.strictEqual(new Set(connections.map((c) => c.connection.connectionId)).size, 5)
      assert.strictEqual((yield* agents.dials).length, 5)
      assert.strictEqual((yield* agents.unreleased).length, 5)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* agents.unreleased).length, 0)
      assert.strictEqual((yield* agents.releasedTwice).length, 0)
    }).pipe(Effect.provide(TestLive)))

  it.effect("a failed connect is not remembered by the turn: the next call in the same Scope dials again", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const agents = yield* TestAgents
      const { current, workspaceId: w } = yield* runningWorkspace
      const chatId = yield* boundChat(w, current)
      yield* agents.setCurrent(w, Option.none())
      yield* agents.script(current.agentId, { result: "fail" }, { result: "connect" })
      yield* Effect.scoped(Effect.gen(function*() {
        assert.strictEqual((yield* Effect.flip(connector.connect(chatId)))._tag, "NoCurrentAgent")
        yield* agents.setCurrent(w, Option.some(current))
        assert.strictEqual((yield* connector.connect(chatId)).outcome, "fast")
      }))
    }).pipe(Effect.provide(TestLive)))

  it.effect("layerConfig: the caller names the variable; a bad value is a ConfigError naming it, out of range unchecked by the Config an InvalidOption naming the option", () =>
    Effect.gen(function*() {
      const connectorWith = (config: Parameters<typeof ChatConnector.layerConfig>[0], value: string) =>
        Effect.map(ChatConnector.ChatConnector, (connector) => connector.dialTimeout).pipe(
          Effect.provide(
            ChatConnector.layerConfig(config).pipe(
              Layer.provide(LazyDial.layer()),
              Layer.provide(BindingStore.layerMemory),
              Layer.provide(layerTest)
            )
          ),
          withEnv({ MY_DIAL_TIMEOUT: value })
        )
      const checked = {
        dialTimeout: Options.optional(
          Options.durationConfig("MY_DIAL_TIMEOUT", { max: ChatConnector.maxDialTimeout, allowZero: false })
        )
      }
      assert.strictEqual(Duration.toMillis(yield* connectorWith(checked, "2 seconds")), 2000)
      assert.strictEqual(Duration.toMillis(yield* connectorWith(checked, "1500")), 1500)
      for (const bad of ["-1 seconds", "0 seconds", "1 hour", "soon"]) {
        const error = yield* Effect.flip(connectorWith(checked, bad))
        assert.strictEqual(error._tag, "ConfigError")
        assert.include(String(error), "MY_DIAL_TIMEOUT")
      }
      // a Config that checks no range: the Layer refuses the value, naming its option
      const unchecked = { dialTimeout: Config.Duration("MY_DIAL_TIMEOUT") }
      const outOfRange = yield* Effect.flip(connectorWith(unchecked, "1 hour"))
      assert.strictEqual(outOfRange._tag, "InvalidOption")
      assert.include(outOfRange.message, "dialTimeout")
      // unset: the default
      deepStrictEqual(
        yield* Effect.map(ChatConnector.ChatConnector, (c) => c.dialTimeout).pipe(
          Effect.provide(ChatConnector.layerConfig(checked).pipe(Layer.provide(TestLive))),
          withEnv({})
        ),
        ChatConnector.defaultDialTimeout
      )
    }))
})
