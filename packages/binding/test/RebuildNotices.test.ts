/**
 * The turn with a view of rebuild notices, on TestClock, with core's scripted
 * agents, the in-memory store and in-memory notices. Then the notices
 * themselves, from the directory's writes, on PGlite (and PostgreSQL when
 * LAZYDIAL_TEST_DATABASE_URL is set).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import type { Database } from "@lazydial/binding"
import { AgentDirectory, BindingStore, ChatConnector, RebuildNotices } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import {
  AgentLookup,
  type BuildId,
  type CurrentAgent,
  LazyDial,
  NoCurrentAgent,
  type WorkspaceId
} from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Arbitrary from "effect/Arbitrary"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Ref from "effect/Ref"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import * as TestClock from "effect/testing/TestClock"
import * as internalConnector from "../src/internal/connector.js"
import * as internalView from "../src/internal/view.js"
import {
  boundChat,
  build,
  countingStatements,
  drive,
  failureOf,
  onPostgres,
  poll,
  until,
  workspaceId
} from "./fixtures.js"

const connectorLayer = (options: Parameters<typeof ChatConnector.layer>[0] = {}) =>
  ChatConnector.layer(options).pipe(
    Layer.provideMerge(LazyDial.layer({ delay: "5 seconds" })),
    Layer.provideMerge(Layer.mergeAll(BindingStore.layerMemory, RebuildNotices.layerMemory)),
    Layer.provideMerge(layerTest)
  )

const lookupCount = Effect.flatMap(TestAgents, (agents) => Effect.map(agents.lookups, (calls) => calls.length))
const dialCount = Effect.flatMap(TestAgents, (agents) => Effect.map(agents.dials, (calls) => calls.length))

const directoryQueries = Effect.map(Metric.value(AgentDirectory.queriesTotal), (state) => state.count)

const noticeReads = Effect.map(Metric.value(RebuildNotices.readsTotal), (state) => state.count)

const counter = (outcome: ChatConnector.TurnOutcome, write: ChatConnector.WriteResult) =>
  Effect.map(Metric.value(Metric.withAttributes(ChatConnector.turnsTotal, { outcome, write })), (state) => state.count)

const notice = (
  w: WorkspaceId,
  order: number,
  current: CurrentAgent | undefined,
  buildId = current?.buildId,
  superseded: ReadonlyArray<BuildId> = []
) => RebuildNotices.noticeOf(w, order, buildId ?? build().buildId, Option.fromNullishOr(current?.agentId), superseded)

const publish = (...notices: ReadonlyArray<RebuildNotices.Notice>) =>
  Effect.flatMap(RebuildNotices.MemoryNotices, (memory) => Effect.forEach(notices, memory.publish, { discard: true }))

/**
 * A workspace rebuilt from `first` (order 1) to `second` (order 2), in the
 * agents' truth; the first agent hangs, as a rebuild leaves it.
 */
const rebuilt = Effect.gen(function*() {
  const agents = yield* TestAgents
  const w = workspaceId()
  const first = build()
  const second = build()
  yield* agents.setCurrent(w, Option.some(second))
  yield* agents.script(second.agentId, { result: "connect" })
  yield* agents.script(first.agentId, { result: "hang" })
  return { workspaceId: w, first, second }
})

/** Runs a turn that must finish without the clock moving: no validation delay was waited out. */
const turnNow = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(Effect.scoped(effect))
    for (let i = 0; i < 20; i++) yield* Effect.yieldNow
    const exit = yield* poll(fiber)
    assert.isTrue(Option.isSome(exit), "the turn waited for the clock")
    return yield* Fiber.join(fiber)
  })

/** Whether each dial was given an early-validation signal. */
class Signals extends Context.Service<Signals, Ref.Ref<ReadonlyArray<boolean>>>()("test/Signals") {}

const signals = Effect.flatMap(Signals, Ref.get)

/** `LazyDial` with a 5 s delay that records, per dial, whether it was given `validateNow`. */
const recordingSignals = Layer.effectContext(
  Effect.gen(function*() {
    const lazyDial = yield* LazyDial.make({ delay: "5 seconds" })
    const seen = yield* Ref.make<ReadonlyArray<boolean>>([])
    const recording = LazyDial.LazyDial.of({
      ...lazyDial,
      dial: (binding) =>
        Effect.andThen(Ref.update(seen, (s) => [...s, binding.validateNow !== undefined]), lazyDial.dial(binding))
    })
    return Context.make(LazyDial.LazyDial, recording).pipe(Context.add(Signals, seen))
  })
)

/** A connector over `recordingSignals`, with `notices`. */
const signalsLayer = <R>(notices: Layer.Layer<R>) =>
  ChatConnector.layer().pipe(
    Layer.provideMerge(recordingSignals),
    Layer.provideMerge(Layer.mergeAll(BindingStore.layerMemory, notices)),
    Layer.provideMerge(layerTest)
  )

describe("ChatConnector with a view of rebuild notices", () => {
  it.effect("switched_by_notice: a bound agent the view knows superseded dials the newer agent at once, 0 lookups, and persists it", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const { first, second, workspaceId: w } = yield* rebuilt
      const chatId = yield* boundChat(w, first)
      yield* publish(notice(w, 1, first), notice(w, 2, second))
      const before = yield* counter("switched_by_notice", "recorded")
      const connection = yield* turnNow(connector.connect(chatId))
      assert.strictEqual(connection.outcome, "switched_by_notice")
      assert.strictEqual(connection.agentId, second.agentId)
      assert.strictEqual(connection.write, "recorded")
      assert.strictEqual(yield* lookupCount, 0)
      deepStrictEqual((yield* store.get(chatId)).agentId, Option.some(second.agentId))
      deepStrictEqual((yield* store.get(chatId)).buildId, Option.some(second.buildId))
      assert.strictEqual((yield* counter("switched_by_notice", "recorded")) - before, 1)
      // the next turn is hot on the new agent
      assert.strictEqual((yield* turnNow(connector.connect(chatId))).outcome, "fast")
      assert.strictEqual(yield* lookupCount, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("stopped: a workspace the view knows stopped fails with NoCurrentAgent at once, 0 dials, 0 lookups", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const { first, workspaceId: w } = yield* rebuilt
      const bound = yield* boundChat(w, first)
      const lazy = (yield* store.createChat({ workspaceId: w })).chatId
      yield* publish(notice(w, 1, first), notice(w, 2, undefined))
      for (const chatId of [bound, lazy]) {
        const exit = yield* Effect.exit(turnNow(connector.connect(chatId)))
        deepStrictEqual(failureOf(exit), Option.some(new NoCurrentAgent({ workspaceId: w })))
      }
      assert.strictEqual(yield* dialCount, 0)
      assert.strictEqual(yield* lookupCount, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("stopped, on a replica that did not bind the chat: its turns track the workspace, so the stop's notice is read, and the next turn fails at once, 0 dials, no delay", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const memory = yield* RebuildNotices.MemoryNotices
      const agents = yield* TestAgents
      const w = workspaceId()
      const first = build()
      yield* agents.setCurrent(w, Option.some(first))
      yield* agents.script(first.agentId, { result: "connect" })
      // another replica bound the chat: this one never looked the workspace up, it only dials the bound agent
      const chatId = yield* boundChat(w, first)
      assert.strictEqual((yield* turnNow(connector.connect(chatId))).outcome, "fast")
      assert.strictEqual(yield* lookupCount, 0)
      // the workspace stops: the directory holds the stop, which names the build it superseded
      const stop = build().buildId
      yield* agents.setCurrent(w, Option.none())
      yield* agents.script(first.agentId, { result: "hang" })
      yield* memory.record(notice(w, 2, undefined, stop, [first.buildId]))
      const readsBefore = yield* memory.reads
      yield* memory.notify(w)
      yield* until(Effect.map(memory.reads, (reads) => reads > readsBefore))
      const dialsBefore = yield* dialCount
      const exit = yield* Effect.exit(turnNow(connector.connect(chatId)))
      deepStrictEqual(failureOf(exit), Option.some(new NoCurrentAgent({ workspaceId: w })))
      assert.strictEqual((yield* dialCount) - dialsBefore, 0)
      assert.strictEqual(yield* lookupCount, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("a stop is trusted for 30 seconds after it was last heard; then the turn looks up (a lost restart notice cannot fail a workspace for ever)", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const { second, workspaceId: w } = yield* rebuilt
      // the view heard a stop at order 2; the restart (order 3, `second`) was lost
      yield* publish(notice(w, 2, undefined))
      const chatId = (yield* store.createChat({ workspaceId: w })).chatId
      const early = yield* Effect.exit(turnNow(connector.connect(chatId)))
      deepStrictEqual(failureOf(early), Option.some(new NoCurrentAgent({ workspaceId: w })))
      assert.strictEqual(yield* lookupCount, 0)
      yield* TestClock.adjust("31 seconds")
      assert.strictEqual((yield* turnNow(connector.connect(chatId))).agentId, second.agentId)
      assert.strictEqual(yield* lookupCount, 1)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("lazy_bind: with the current agent known to the view, 0 lookups", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const { second, workspaceId: w } = yield* rebuilt
      const chatId = (yield* store.createChat({ workspaceId: w })).chatId
      yield* publish(notice(w, 2, second))
      const connection = yield* turnNow(connector.connect(chatId))
      assert.strictEqual(connection.outcome, "lazy_bind")
      assert.strictEqual(connection.agentId, second.agentId)
      assert.strictEqual(yield* lookupCount, 0)
      deepStrictEqual((yield* store.get(chatId)).agentId, Option.some(second.agentId))
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("hot: a chat bound to a build the view never saw is not judged by it (it may be newer), and validates lazily", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const agents = yield* TestAgents
      const { first, second, workspaceId: w } = yield* rebuilt
      // the chat is bound to `second`, the view knows only `first`: the view is behind
      yield* agents.script(second.agentId, { result: "connect" })
      const chatId = yield* boundChat(w, second)
      yield* publish(notice(w, 1, first))
      const connection = yield* turnNow(connector.connect(chatId))
      assert.strictEqual(connection.outcome, "fast")
      assert.strictEqual(connection.agentId, second.agentId)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("late, repeated and out-of-order notices never move the view back", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const agents = yield* TestAgents
      const samples = yield* Arbitrary.sampleEffect(
        Arbitrary.array(Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 5 }))), {
          minLength: 1,
          maxLength: 12
        }),
        { seed: 11, count: 40 }
      )
      for (const orders of samples) {
        const w = workspaceId()
        const builds = [build(), build(), build(), build(), build()]
        for (const b of builds) yield* agents.script(b.agentId, { result: "connect" })
        // every order number at least once, the rest repeated, in the sampled order
        yield* publish(...[...orders, 1, 2, 3, 4, 5].map((order) => notice(w, order, builds[order - 1]!)))
        yield* publish(...orders.map((order) => notice(w, order, builds[order - 1]!)))
        const chatId = (yield* store.createChat({ workspaceId: w })).chatId
        assert.strictEqual((yield* turnNow(connector.connect(chatId))).agentId, builds[4]!.agentId, String(orders))
      }
      assert.strictEqual(yield* lookupCount, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("a late notice of an older build teaches the view that a chat bound to it is stale", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const { first, second, workspaceId: w } = yield* rebuilt
      const chatId = yield* boundChat(w, first)
      yield* publish(notice(w, 2, second), notice(w, 1, first))
      const connection = yield* turnNow(connector.connect(chatId))
      assert.strictEqual(connection.outcome, "switched_by_notice")
      assert.strictEqual(connection.agentId, second.agentId)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("listener drop: the view is forgotten, and turns validate lazily until a new session's notices arrive", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const memory = yield* RebuildNotices.MemoryNotices
      const { first, second, workspaceId: w } = yield* rebuilt
      const chatId = yield* boundChat(w, first)
      const lazy = (yield* store.createChat({ workspaceId: w })).chatId
      yield* publish(notice(w, 1, first), notice(w, 2, second))
      yield* memory.setListening(false)
      // not listening: the lazy bind looks up
      assert.strictEqual((yield* turnNow(connector.connect(lazy))).agentId, second.agentId)
      assert.strictEqual(yield* lookupCount, 1)
      // listening again: a new session, and the old notices are forgotten; the
      // bound chat waits out the validation delay and switches by lookup
      yield* memory.setListening(true)
      const fiber = yield* Effect.forkChild(Effect.scoped(connector.connect(chatId)))
      yield* TestClock.adjust("5 seconds")
      const connection = yield* Fiber.join(fiber)
      assert.strictEqual(connection.outcome, "switched")
      assert.strictEqual(yield* lookupCount, 2)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("a drop and a return between two turns still forgets the view (the session changed)", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const memory = yield* RebuildNotices.MemoryNotices
      const agents = yield* TestAgents
      const w = workspaceId()
      const first = build()
      const second = build()
      yield* agents.setCurrent(w, Option.some(second))
      yield* agents.script(first.agentId, { result: "connect" })
      yield* agents.script(second.agentId, { result: "connect" })
      const a = (yield* store.createChat({ workspaceId: w })).chatId
      const b = (yield* store.createChat({ workspaceId: w })).chatId
      yield* publish(notice(w, 1, first))
      // a turn reads the view in this session
      assert.strictEqual((yield* turnNow(connector.connect(a))).agentId, first.agentId)
      assert.strictEqual(yield* lookupCount, 0)
      yield* memory.setListening(false)
      yield* memory.setListening(true)
      assert.strictEqual((yield* turnNow(connector.connect(b))).agentId, second.agentId)
      assert.strictEqual(yield* lookupCount, 1)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("the view keeps at most viewSize workspaces, the least recently used go first", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const agents = yield* TestAgents
      const spaces = [workspaceId(), workspaceId(), workspaceId()]
      const builds = spaces.map(() => build())
      for (const [i, w] of spaces.entries()) {
        yield* agents.setCurrent(w, Option.some(builds[i]!))
        yield* agents.script(builds[i]!.agentId, { result: "connect" })
        yield* publish(notice(w, 1, builds[i]!))
      }
      for (const w of [spaces[2]!, spaces[1]!, spaces[0]!]) {
        yield* turnNow(connector.connect((yield* store.createChat({ workspaceId: w })).chatId))
      }
      // the first workspace was evicted when the third arrived: one lookup, for it only
      assert.strictEqual(yield* lookupCount, 1)
      const lookups = yield* Effect.flatMap(TestAgents, (agents) => agents.lookups)
      assert.strictEqual(lookups[0]!.id, spaces[0])
    }).pipe(Effect.provide(connectorLayer({ viewSize: 2 }))))

  it.effect("viewSize out of range is an InvalidOption naming it", () =>
    Effect.gen(function*() {
      for (const viewSize of [0, 1.5, ChatConnector.maxViewSize + 1]) {
        const exit = yield* Effect.exit(Layer.build(connectorLayer({ viewSize })).pipe(Effect.scoped))
        assert.isTrue(Exit.isFailure(exit))
        assert.include(String(exit), "viewSize")
      }
    }))

  it.effect("layerNone: today's behaviour, the lazy bind looks up", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const store = yield* BindingStore.BindingStore
      const { second, workspaceId: w } = yield* rebuilt
      const chatId = (yield* store.createChat({ workspaceId: w })).chatId
      assert.strictEqual((yield* turnNow(connector.connect(chatId))).agentId, second.agentId)
      assert.strictEqual(yield* lookupCount, 1)
    }).pipe(
      Effect.provide(
        ChatConnector.layer().pipe(
          Layer.provideMerge(LazyDial.layer({ delay: "5 seconds" })),
          Layer.provideMerge(Layer.mergeAll(BindingStore.layerMemory, RebuildNotices.layerNone)),
          Layer.provideMerge(layerTest)
        )
      )
    ))
})

/**
 * A connector whose view the test can see (its pending waiters), built from
 * the internal modules on the Layers of `connectorLayer`.
 */
const withView = Effect.gen(function*() {
  const view = yield* internalView.make(yield* RebuildNotices.RebuildNotices, 100)
  const connector = yield* internalConnector.make({
    dialTimeout: ChatConnector.defaultDialTimeout,
    maxInFlight: ChatConnector.defaultMaxInFlight,
    store: yield* BindingStore.BindingStore,
    lazyDial: yield* LazyDial.LazyDial,
    lookup: yield* AgentLookup.AgentLookup,
    view
  })
  return { connector, view }
})

/** Lets every fiber that can run, run, without moving the clock; then the fiber's exit, if it has one. */
const pollAfterYields = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 50; i++) yield* Effect.yieldNow
    return yield* poll(fiber)
  })

/** Lets other fibers run, without moving the clock, until `condition` holds (at most 50 yields). */
const yieldUntil = (condition: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 50 && !(yield* condition); i++) yield* Effect.yieldNow
  })

/** The turn ended 1 ms after the notice, far inside the 5 s validation delay. */
const endsWithin1ms = <A, E>(fiber: Fiber.Fiber<A, E>) =>
  Effect.gen(function*() {
    yield* TestClock.adjust("1 millis")
    const exit = yield* pollAfterYields(fiber)
    assert.isTrue(Option.isSome(exit), "the turn still waits for the validation delay")
    return Option.getOrThrow(exit)
  })

/** A chat bound to `first`, whose build the view knows; its turn is pending on the hanging agent. */
const pendingTurn = Effect.gen(function*() {
  const built = yield* withView
  const { first, second, workspaceId: w } = yield* rebuilt
  yield* publish(notice(w, 1, first))
  const chatId = yield* boundChat(w, first)
  const fiber = yield* Effect.forkChild(Effect.scoped(built.connector.connect(chatId)))
  assert.isTrue(Option.isNone(yield* pollAfterYields(fiber)), "the dial of the hanging agent is pending")
  assert.strictEqual(yield* built.view.waiters, 1)
  return { ...built, chatId, fiber, first, second, workspaceId: w }
})

describe("A notice during a pending dial", () => {
  it.effect("switched: a notice of a newer build ends the validation delay at once; the lookup switches and the write is conditional", () =>
    Effect.gen(function*() {
      const store = yield* BindingStore.BindingStore
      const { chatId, fiber, second, view, workspaceId: w } = yield* pendingTurn
      yield* publish(notice(w, 2, second))
      const exit = yield* endsWithin1ms(fiber)
      assert.isTrue(Exit.isSuccess(exit))
      const connection = Exit.isSuccess(exit) ? exit.value : undefined
      assert.strictEqual(connection?.outcome, "switched")
      assert.strictEqual(connection?.outcome, "switched")
      assert.strictEqual(connection?.agentId, second.agentId)
      assert.strictEqual(connection?.write, "recorded")
      deepStrictEqual((yield* store.get(chatId)).agentId, Option.some(second.agentId))
      deepStrictEqual((yield* store.get(chatId)).buildId, Option.some(second.buildId))
      assert.strictEqual(yield* lookupCount, 1)
      assert.strictEqual(yield* view.waiters, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("stopped: a stop notice ends the validation delay at once with NoCurrentAgent", () =>
    Effect.gen(function*() {
      const agents = yield* TestAgents
      const { fiber, view, workspaceId: w } = yield* pendingTurn
      yield* agents.setCurrent(w, Option.none())
      yield* publish(notice(w, 2, undefined))
      deepStrictEqual(failureOf(yield* endsWithin1ms(fiber)), Option.some(new NoCurrentAgent({ workspaceId: w })))
      assert.strictEqual(yield* view.waiters, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("a notice that arrived between the turn's hint and its dial ends the delay at once too", () =>
    Effect.gen(function*() {
      const memory = yield* RebuildNotices.MemoryNotices
      const lazyDial = yield* LazyDial.LazyDial
      const view = yield* internalView.make(yield* RebuildNotices.RebuildNotices, 100)
      const { first, second, workspaceId: w } = yield* rebuilt
      yield* publish(notice(w, 1, first))
      const chatId = yield* boundChat(w, first)
      // the notice is published after the turn has read the view (its hint), before the dial asks for the signal
      const connector = yield* internalConnector.make({
        dialTimeout: ChatConnector.defaultDialTimeout,
        maxInFlight: ChatConnector.defaultMaxInFlight,
        store: yield* BindingStore.BindingStore,
        lazyDial: LazyDial.LazyDial.of({
          ...lazyDial,
          dial: (binding) => Effect.andThen(memory.publish(notice(w, 2, second)), lazyDial.dial(binding))
        }),
        lookup: yield* AgentLookup.AgentLookup,
        view
      })
      const fiber = yield* Effect.forkChild(Effect.scoped(connector.connect(chatId)))
      const exit = yield* pollAfterYields(fiber)
      assert.isTrue(Option.isSome(exit), "the turn waited for the validation delay")
      assert.strictEqual(
        Option.isSome(exit) && Exit.isSuccess(exit.value) ? exit.value.value.outcome : undefined,
        "switched"
      )
      assert.strictEqual(yield* view.waiters, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("a notice of another workspace does not wake the dial: it waits out the validation delay", () =>
    Effect.gen(function*() {
      const { fiber, second, view } = yield* pendingTurn
      const other = workspaceId()
      yield* publish(notice(other, 1, build()), notice(other, 2, build()), notice(other, 3, undefined))
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Option.isNone(yield* pollAfterYields(fiber)), "woken by another workspace's notice")
      assert.strictEqual(yield* view.waiters, 1)
      yield* TestClock.adjust("5 seconds")
      const connection = yield* Fiber.join(fiber)
      assert.strictEqual(connection.outcome, "switched")
      assert.strictEqual(connection.agentId, second.agentId)
      assert.strictEqual(yield* view.waiters, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("a listener drop and a new session forget the view but wake nobody; the dial waits out the delay", () =>
    Effect.gen(function*() {
      const memory = yield* RebuildNotices.MemoryNotices
      const { fiber, second, view, workspaceId: w } = yield* pendingTurn
      yield* memory.setListening(false)
      yield* memory.setListening(true)
      // in the new session the view never saw the bound build: this notice does not judge it
      yield* publish(notice(w, 2, second))
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Option.isNone(yield* pollAfterYields(fiber)), "woken by a forgotten view")
      assert.strictEqual(yield* view.waiters, 1)
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual((yield* Fiber.join(fiber)).outcome, "switched")
      assert.strictEqual(yield* view.waiters, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect(
    "waiters do not leak: after 1,000 settled turns (fast, woken, timed out by the delay, interrupted) none is left",
    () =>
      Effect.gen(function*() {
        const agents = yield* TestAgents
        const { connector, view } = yield* withView
        const w = workspaceId()
        let order = 0
        let current = build()
        yield* agents.setCurrent(w, Option.some(current))
        yield* agents.script(current.agentId, { result: "connect" })
        yield* publish(notice(w, ++order, current))
        const chatId = yield* boundChat(w, current)
        const settledWaiters = Effect.andThen(yieldUntil(Effect.map(view.waiters, (n) => n === 0)), view.waiters)
        for (let i = 0; i < 1_000; i++) {
          // 700 fast, 190 woken by a notice, 100 interrupted, 10 ended by the delay (TestClock.adjust is slow)
          const kind = i % 100 === 99 ? "delay" : i % 10 === 8 ? "interrupted" : i % 10 >= 7 ? "notice" : "fast"
          if (kind === "fast") {
            // the dial settles first: its signal is cancelled, registered or not
            assert.strictEqual((yield* Effect.scoped(connector.connect(chatId))).outcome, "fast")
          } else {
            // the bound agent hangs; a rebuild's notice, the delay, or the caller ends the turn
            const next = build()
            yield* agents.script(current.agentId, { result: "hang" })
            yield* agents.script(next.agentId, { result: "connect" })
            yield* agents.setCurrent(w, Option.some(next))
            const fiber = yield* Effect.forkChild(Effect.scoped(connector.connect(chatId)))
            yield* yieldUntil(Effect.map(view.waiters, (n) => n === 1))
            assert.strictEqual(yield* view.waiters, 1, `turn ${i} is not waiting`)
            if (kind === "notice") {
              yield* publish(notice(w, ++order, next))
              yield* yieldUntil(Effect.map(poll(fiber), Option.isSome))
              const exit = yield* poll(fiber)
              assert.isTrue(Option.isSome(exit) && Exit.isSuccess(exit.value), `turn ${i} was not woken`)
              current = next
            } else if (kind === "delay") {
              // the notice is lost: the delay ends the wait, and the view learns the
              // build from the lookup's answer, as the directory passes it on
              yield* TestClock.adjust("5 seconds")
              assert.strictEqual((yield* Fiber.join(fiber)).outcome, "switched")
              yield* publish(notice(w, ++order, next))
              current = next
            } else {
              yield* Fiber.interrupt(fiber)
              yield* agents.setCurrent(w, Option.some(current))
              yield* agents.script(current.agentId, { result: "connect" })
            }
          }
          // checked after every turn: a leftover waiter could be woken, and so
          // removed, by a later notice, and hide the leak by the end
          assert.strictEqual(yield* settledWaiters, 0, `turn ${i} (${kind}) left a waiter`)
        }
      }).pipe(Effect.provide(connectorLayer())),
    { timeout: 60_000 }
  )

  it.effect("layerNone: no signal is passed, and the same hanging dial waits out the whole delay (today's behaviour)", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const { first, second, workspaceId: w } = yield* rebuilt
      const chatId = yield* boundChat(w, first)
      const fiber = yield* Effect.forkChild(Effect.scoped(connector.connect(chatId)))
      yield* TestClock.adjust("4999 millis")
      assert.isTrue(Option.isNone(yield* pollAfterYields(fiber)), "the dial did not wait the delay")
      yield* TestClock.adjust("1 millis")
      const connection = yield* Fiber.join(fiber)
      assert.strictEqual(connection.outcome, "switched")
      assert.strictEqual(connection.agentId, second.agentId)
      deepStrictEqual(yield* signals, [false])
    }).pipe(Effect.provide(signalsLayer(RebuildNotices.layerNone))))

  it.effect("with a listening view, the dials of hot turns and lazy binds are given the signal", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const agents = yield* TestAgents
      const w = workspaceId()
      const current = build()
      yield* agents.script(current.agentId, { result: "connect" })
      yield* publish(notice(w, 1, current))
      assert.strictEqual((yield* turnNow(connector.connect(yield* boundChat(w, current)))).outcome, "fast")
      const lazy = (yield* BindingStore.BindingStore).createChat({ workspaceId: w })
      assert.strictEqual((yield* turnNow(connector.connect((yield* lazy).chatId))).outcome, "lazy_bind")
      deepStrictEqual(yield* signals, [true, true])
    }).pipe(Effect.provide(signalsLayer(RebuildNotices.layerMemory))))
})

/** The directory announces its writes, and a listener on the same database hears them. */
const noticesSuite = <E>(
  name: string,
  database: Layer.Layer<SqlClient.SqlClient | Database.Listener | Database.Migrated, E>
) =>
  layer(
    Layer.mergeAll(AgentDirectory.layerSql({ batchWindow: 0 }), BindingStore.layerSql()).pipe(
      Layer.provideMerge(Layer.merge(RebuildNotices.layerSql, layerTest)),
      Layer.provideMerge(countingStatements(database))
    ),
    { timeout: "60 seconds" }
  )(`RebuildNotices: ${name}`, (it) => {
    it.effect(
      "a build and a stop written by the directory notify their workspace alone; a tracked workspace is read back, with its order number; untracked ones and malformed payloads are counted, nothing read",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const directory = yield* AgentDirectory.AgentDirectory
          const notices = yield* RebuildNotices.RebuildNotices
          const sql = yield* SqlClient.SqlClient
          yield* until(Effect.map(notices.status, (status) => status.listening))
          const queue = yield* notices.subscribe
          const counted = Effect.all([
            Metric.value(RebuildNotices.receivedTotal),
            Metric.value(RebuildNotices.malformedTotal),
            Metric.value(RebuildNotices.untrackedTotal),
            Metric.value(RebuildNotices.readsTotal),
            Metric.value(RebuildNotices.listeningGauge)
          ]).pipe(
            Effect.map(([received, malformed, untracked, reads, listening]) => ({
              received: received.count,
              malformed: malformed.count,
              untracked: untracked.count,
              reads: reads.count,
              listening: listening.value
            }))
          )
          const before = yield* counted
          const w = workspaceId()
          const untracked = workspaceId()
          yield* notices.track((id) => id === w)
          const first = build()
          yield* sql`SELECT pg_notify(${RebuildNotices.channel}, 'not a notice')`
          yield* sql`SELECT pg_notify(${RebuildNotices.channel}, ${
            JSON.stringify({ workspaceId: w, order: 1, buildId: first.buildId, agentId: first.agentId })
          })`
          yield* directory.recordBuild(untracked, build())
          assert.strictEqual(yield* directory.recordBuild(w, first), 1)
          deepStrictEqual((yield* PubSub.take(queue)).notice, notice(w, 1, first))
          const stopped = build().buildId
          assert.strictEqual(yield* directory.stopWorkspace(w, { buildId: stopped }), 2)
          // the reader waits the read interval before its next read
          yield* TestClock.adjust(RebuildNotices.readInterval)
          // the answer names the build the stop superseded
          deepStrictEqual(
            (yield* PubSub.take(queue)).notice,
            RebuildNotices.noticeOf(w, 2, stopped, Option.none(), [first.buildId])
          )
          // the metrics an operator watches: three heard, one of them untracked, two reads, two malformed, listening
          // a read is counted once its answers are published, and a publish may
          // resume this fiber before the reader counts it
          yield* until(
            Effect.map(counted, (after) => after.received - before.received === 3 && after.reads - before.reads >= 2)
          )
          const after = yield* counted
          deepStrictEqual(
            [
              after.received - before.received,
              after.untracked - before.untracked,
              after.reads - before.reads,
              after.malformed - before.malformed,
              after.listening
            ],
            [3, 1, 2, 2, 1]
          )
          // a lookup answer is passed on too
          yield* directory.current(w)
          deepStrictEqual(
            (yield* PubSub.take(queue)).notice,
            RebuildNotices.noticeOf(w, 2, stopped, Option.none(), [first.buildId])
          )
        }))
    )

    it.effect("a rebuild written to the directory makes the next turn switch by notice, with 0 lookup queries", () =>
      Effect.scoped(Effect.gen(function*() {
        const directory = yield* AgentDirectory.AgentDirectory
        const notices = yield* RebuildNotices.RebuildNotices
        const agents = yield* TestAgents
        yield* until(Effect.map(notices.status, (status) => status.listening))
        const lookup = AgentLookup.AgentLookup.of({ current: directory.current })
        const lazyDial = yield* LazyDial.make({ delay: "5 seconds" }).pipe(
          Effect.provideService(AgentLookup.AgentLookup, lookup)
        )
        const connector = yield* ChatConnector.make().pipe(
          Effect.provideService(AgentLookup.AgentLookup, lookup),
          Effect.provideService(LazyDial.LazyDial, lazyDial)
        )
        const store = yield* BindingStore.BindingStore
        const w = workspaceId()
        const first = build()
        yield* directory.recordBuild(w, first)
        yield* agents.script(first.agentId, { result: "connect" })
        // the first turn of a new chat looks up: from then on the view tracks the workspace
        const chatId = (yield* store.createChat({ workspaceId: w })).chatId
        assert.strictEqual(
          (yield* drive(yield* Effect.forkChild(Effect.scoped(connector.connect(chatId))))).outcome,
          "lazy_bind"
        )
        const queue = yield* notices.subscribe
        const readsBefore = yield* noticeReads
        const second = build()
        yield* directory.recordBuild(w, second)
        // a read of the suite's earlier tests may still wait out its interval
        yield* TestClock.adjust(RebuildNotices.readInterval)
        // the notice travels through the database, and makes this process read
        // the directory: the connector's view has the answer once this
        // subscriber has it (one publish reaches both)
        deepStrictEqual((yield* PubSub.take(queue)).notice, notice(w, 2, second, second.buildId, [first.buildId]))
        // counted once published: this fiber may have been resumed by the publish itself
        yield* until(Effect.map(noticeReads, (reads) => reads > readsBefore))
        assert.strictEqual((yield* noticeReads) - readsBefore, 1)
        yield* agents.script(second.agentId, { result: "connect" })
        yield* agents.script(first.agentId, { result: "hang" })
        const queriesBefore = yield* directoryQueries
        const fiber = yield* Effect.forkChild(Effect.scoped(connector.connect(chatId)))
        const connection = yield* drive(fiber)
        assert.strictEqual(connection.outcome, "switched_by_notice")
        assert.strictEqual(connection.agentId, second.agentId)
        assert.strictEqual((yield* directoryQueries) - queriesBefore, 0)
      })))

    it.effect(
      "a stop fails fast on every replica: the one that did not bind the chat, having served its turns, reads the stop a notice names and answers NoCurrentAgent with no dial, no lookup and no delay",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const agents = yield* TestAgents
          const store = yield* BindingStore.BindingStore
          /** A replica: its own LISTEN session and notices, directory, view and connector, on the suite's database. */
          const replica = Effect.gen(function*() {
            const notices = Context.get(
              yield* Layer.build(Layer.fresh(RebuildNotices.layerSql)),
              RebuildNotices.RebuildNotices
            )
            yield* until(Effect.map(notices.status, (status) => status.listening))
            const directory = yield* AgentDirectory.makeSql({ batchWindow: 0 }).pipe(
              Effect.provideService(RebuildNotices.RebuildNotices, notices)
            )
            const lookup = AgentLookup.AgentLookup.of({ current: directory.current })
            const lazyDial = yield* LazyDial.make({ delay: "5 seconds" }).pipe(
              Effect.provideService(AgentLookup.AgentLookup, lookup)
            )
            const connector = yield* ChatConnector.make().pipe(
              Effect.provideService(AgentLookup.AgentLookup, lookup),
              Effect.provideService(LazyDial.LazyDial, lazyDial),
              Effect.provideService(RebuildNotices.RebuildNotices, notices)
            )
            return { notices, directory, connector }
          })
          const binder = yield* replica
          const other = yield* replica
          const w = workspaceId()
          const first = build()
          yield* binder.directory.recordBuild(w, first)
          yield* agents.script(first.agentId, { result: "connect" })
          const chatId = (yield* store.createChat({ workspaceId: w })).chatId
          const turn = (connector: ChatConnector.ChatConnector["Service"]) =>
            Effect.flatMap(Effect.forkChild(Effect.exit(Effect.scoped(connector.connect(chatId)))), drive)
          // one replica binds the chat; the other only ever dials the bound agent, and looks nothing up
          const bound = yield* turn(binder.connector)
          assert.isTrue(Exit.isSuccess(bound) && bound.value.outcome === "lazy_bind")
          const queriesBefore = yield* directoryQueries
          const served = yield* turn(other.connector)
          assert.isTrue(Exit.isSuccess(served) && served.value.outcome === "fast")
          assert.strictEqual((yield* directoryQueries) - queriesBefore, 0)
          // the workspace stops; its agent would now hang a dial for the whole validation delay
          const heard = yield* other.notices.subscribe
          const stop = build().buildId
          yield* binder.directory.stopWorkspace(w, { buildId: stop })
          yield* agents.setCurrent(w, Option.none())
          yield* agents.script(first.agentId, { result: "hang" })
          // the other replica's notice of the stop made it read the directory
          deepStrictEqual(
            (yield* PubSub.take(heard)).notice,
            RebuildNotices.noticeOf(w, 2, stop, Option.none(), [first.buildId])
          )
          const [dialsBefore, lookupsBefore, startedAt] = [
            yield* dialCount,
            yield* directoryQueries,
            yield* Clock.currentTimeMillis
          ]
          const stopped = yield* turn(other.connector)
          deepStrictEqual(failureOf(stopped), Option.some(new NoCurrentAgent({ workspaceId: w })))
          assert.strictEqual((yield* dialCount) - dialsBefore, 0)
          assert.strictEqual((yield* directoryQueries) - lookupsBefore, 0)
          assert.strictEqual((yield* Clock.currentTimeMillis) - startedAt, 0)
        }))
    )
  })

noticesSuite("PGlite", PgliteDatabase.layerPglite())
onPostgres("on PostgreSQL", (url) => {
  noticesSuite("PostgreSQL", PgDatabase.layerPg(url))

  layer(
    AgentDirectory.layerSql({ batchWindow: 0 }).pipe(
      Layer.provideMerge(RebuildNotices.layerSql),
      Layer.provideMerge(countingStatements(PgDatabase.layerPg(url)))
    ),
    { timeout: "60 seconds" }
  )("RebuildNotices: a lost LISTEN connection on PostgreSQL", (it) => {
    it.effect("a killed listener is reported (listening false), listens again after reconnectDelay in a new session, and hears new builds", () =>
      Effect.scoped(Effect.gen(function*() {
        const directory = yield* AgentDirectory.AgentDirectory
        const notices = yield* RebuildNotices.RebuildNotices
        const sql = yield* SqlClient.SqlClient
        yield* until(Effect.map(notices.status, (status) => status.listening))
        const before = (yield* notices.status).session
        const killed = yield* sql<{ readonly pid: number }>`SELECT pg_terminate_backend(pid) AS pid
FROM pg_stat_activity WHERE query = ${`LISTEN "${RebuildNotices.channel}"`} AND pid <> pg_backend_pid()`
        assert.isAtLeast(killed.length, 1)
        yield* until(Effect.map(notices.status, (status) => !status.listening))
        yield* TestClock.adjust(RebuildNotices.reconnectDelay)
        yield* until(Effect.map(notices.status, (status) => status.listening && status.session > before))
        const queue = yield* notices.subscribe
        const w = workspaceId()
        yield* notices.track((id) => id === w)
        const first = build()
        yield* directory.recordBuild(w, first)
        deepStrictEqual((yield* PubSub.take(queue)).notice, notice(w, 1, first))
      })))
  })
})
