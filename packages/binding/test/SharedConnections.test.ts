/**
 * The connector over core's `SharedConnections`, on TestClock with core's
 * scripted agents, the in-memory store and in-memory notices: a retired
 * agent's connection is dropped when the directory's answer arrives, and a
 * borrowed connection that turns out dead falls back to the lazy validation.
 */
import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { BindingStore, ChatConnector, RebuildNotices } from "@lazydial/binding"
import { type AgentConnection, type CurrentAgent, LazyDial, SharedConnections, type WorkspaceId } from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { boundChat, build, workspaceId } from "./fixtures.js"

const probe = (connection: AgentConnection) => connection.exchange("ping")

/**
 * The connector over `LazyDial` over `SharedConnections` over the kit, with
 * `notices`. `invalidate: false` hides `SharedConnections` from the connector
 * (LazyDial still dials through it, and the test still sees it), as a
 * connector that does not drop connections: for the test seen failing
 * without the drop.
 */
const connectorLayer = <N = RebuildNotices.RebuildNotices | RebuildNotices.MemoryNotices>(
  options: {
    readonly notices?: Layer.Layer<N> | undefined
    readonly invalidate?: boolean | undefined
  } = {}
) => {
  const sharing = SharedConnections.layer({ probe })
  const lazyDial = LazyDial.layer({ delay: "5 seconds" })
  const connector = options.invalidate === false
    ? Layer.merge(ChatConnector.layer().pipe(Layer.provideMerge(Layer.provide(lazyDial, sharing))), sharing)
    : ChatConnector.layer().pipe(Layer.provideMerge(lazyDial), Layer.provideMerge(sharing))
  const notices = options.notices ?? RebuildNotices.layerMemory
  return connector.pipe(
    Layer.provideMerge(Layer.mergeAll(BindingStore.layerMemory, notices)),
    Layer.provideMerge(layerTest)
  )
}

/** Runs `effect` to its end on the TestClock, moving it 10 ms at a time. */
const settle = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    while (fiber.pollUnsafe() === undefined) yield* TestClock.adjust(10)
    return yield* Fiber.join(fiber)
  })

/** A turn: connect, one exchange, give the connection back. */
const turn = (chatId: Parameters<ChatConnector.ChatConnector["Service"]["connect"]>[0]) =>
  Effect.flatMap(ChatConnector.ChatConnector, (connector) =>
    Effect.scoped(
      Effect.flatMap(
        connector.connect(chatId),
        (connection) => Effect.as(connection.connection.exchange("turn"), connection)
      )
    ))

/** The connection of `agent`'s first dial in the kit's ledger. */
const connectionOf = (agent: CurrentAgent) =>
  Effect.flatMap(
    TestAgents,
    (agents) => Effect.map(agents.ledger, (ledger) => ledger.find((entry) => entry.agentId === agent.agentId)!)
  )

/** The directory records `second` as `w`'s build after `first`, and announces it; the notice prompts a read. */
const rebuildAndNotify = (w: WorkspaceId, first: CurrentAgent, second: CurrentAgent) =>
  Effect.gen(function*() {
    const memory = yield* RebuildNotices.MemoryNotices
    yield* memory.record(
      RebuildNotices.noticeOf(w, 2, second.buildId, Option.some(second.agentId), [first.buildId])
    )
    yield* memory.notify(w)
  })

/** A workspace on `first` with two chats bound to it; the old agent stays alive after a rebuild to `second`. */
const setup = Effect.gen(function*() {
  const agents = yield* TestAgents
  const w = workspaceId()
  const first = build()
  const second = build()
  yield* agents.script(first.agentId, { latency: 10, result: "connect" })
  yield* agents.script(second.agentId, { latency: 10, result: "connect" })
  yield* agents.setCurrent(w, Option.some(first))
  const chats = [yield* boundChat(w, first), yield* boundChat(w, first)] as const
  return { agents, w, first, second, chats }
})

describe("ChatConnector over SharedConnections", () => {
  it.effect("steady state: the second turn borrows the first turn's connection, with no dial and no lookup", () =>
    Effect.gen(function*() {
      const { agents, chats } = yield* setup
      const first = yield* settle(turn(chats[0]))
      const second = yield* turn(chats[1])
      assert.strictEqual(second.outcome, "fast")
      assert.strictEqual(second.connection.connectionId, first.connection.connectionId)
      assert.strictEqual((yield* agents.dials).length, 1)
      assert.strictEqual((yield* agents.lookups).length, 0)
    }).pipe(Effect.provide(connectorLayer())))

  const dropsOnRead = Effect.gen(function*() {
    const { agents, chats, first, second, w } = yield* setup
    const control = yield* SharedConnections.SharedConnections
    const memory = yield* RebuildNotices.MemoryNotices
    yield* settle(turn(chats[0]))
    assert.strictEqual(yield* control.open, 1, "the first agent's connection stays open between turns")
    yield* agents.setCurrent(w, Option.some(second))
    yield* rebuildAndNotify(w, first, second)
    // no turn: the read answers, and the view takes the answer in on its own
    yield* TestClock.adjust(1)
    const readAt = (yield* memory.readTimes)[0]
    assert.isDefined(readAt, "the notice prompted a read")
    const old = yield* connectionOf(first)
    return { agents, chats, first, second, old, readAt: readAt!, control }
  })

  it.effect("a rebuild drops the old agent's connection when the read its notice prompted answers, with no turn; no later turn uses it", () =>
    Effect.gen(function*() {
      const { agents, chats, control, old, readAt, second } = yield* dropsOnRead
      deepStrictEqual(old.releasedAt, [readAt], "closed when the read answered, once")
      assert.strictEqual(yield* control.open, 0)
      for (const chatId of chats) {
        const connection = yield* settle(turn(chatId))
        assert.strictEqual(connection.outcome, "switched_by_notice")
        assert.notStrictEqual(connection.connection.connectionId, old.connectionId)
        assert.strictEqual(connection.connection.agentId, second.agentId)
      }
      assert.strictEqual((yield* agents.lookups).length, 0)
      assert.strictEqual((yield* agents.releasedTwice).length, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("without the drop, the old agent's connection stays open after the read (the test above can fail)", () =>
    Effect.gen(function*() {
      const { old } = yield* dropsOnRead
      deepStrictEqual(old.releasedAt, [], "open: only its idle time would close it")
    }).pipe(Effect.provide(connectorLayer({ invalidate: false }))))

  it.effect("a connection borrowed when the read answers closes when its turn gives it back, once", () =>
    Effect.gen(function*() {
      const { agents, chats, first, second, w } = yield* setup
      const connector = yield* ChatConnector.ChatConnector
      yield* settle(turn(chats[0]))
      const scope = yield* Scope.make()
      const inFlight = yield* Scope.provide(connector.connect(chats[1]), scope)
      assert.strictEqual(inFlight.outcome, "fast")
      yield* agents.setCurrent(w, Option.some(second))
      yield* rebuildAndNotify(w, first, second)
      yield* TestClock.adjust(1)
      const old = yield* connectionOf(first)
      deepStrictEqual(old.releasedAt, [], "its borrower still uses it")
      yield* TestClock.adjust(100)
      const closedAt = yield* Clock.currentTimeMillis
      yield* Scope.close(scope, Exit.void)
      deepStrictEqual((yield* connectionOf(first)).releasedAt, [closedAt], "closed with its last borrower")
      const next = yield* settle(turn(chats[0]))
      assert.strictEqual(next.connection.agentId, second.agentId)
      assert.strictEqual((yield* agents.releasedTwice).length, 0)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("a stop drops the stopped agent's connection when the read answers", () =>
    Effect.gen(function*() {
      const { agents, chats, first, w } = yield* setup
      const memory = yield* RebuildNotices.MemoryNotices
      const control = yield* SharedConnections.SharedConnections
      yield* settle(turn(chats[0]))
      yield* agents.setCurrent(w, Option.none())
      yield* memory.record(RebuildNotices.noticeOf(w, 2, build().buildId, Option.none(), [first.buildId]))
      yield* memory.notify(w)
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* control.open, 0)
      assert.strictEqual((yield* connectionOf(first)).releasedAt.length, 1)
      const exit = yield* Effect.exit(turn(chats[1]))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual((yield* agents.dials).length, 1, "the stop's turn dialed nothing")
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("an answer heard while not listening still drops the agent it retires (the view itself is forgotten)", () =>
    Effect.gen(function*() {
      const { chats, first, second, w } = yield* setup
      const memory = yield* RebuildNotices.MemoryNotices
      const control = yield* SharedConnections.SharedConnections
      yield* settle(turn(chats[0]))
      yield* memory.setListening(false)
      // an observed lookup answer reaches the views whether or not LISTEN is up
      yield* memory.publish(RebuildNotices.noticeOf(w, 2, second.buildId, Option.some(second.agentId), [first.buildId]))
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* control.open, 0)
      assert.strictEqual((yield* connectionOf(first)).releasedAt.length, 1)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("an answer that arrives while a turn dials the agent it retires: the turn switches, and the old agent's connection, opened after, is not kept", () =>
    Effect.gen(function*() {
      const { agents, chats, first, second, w } = yield* setup
      const control = yield* SharedConnections.SharedConnections
      yield* agents.script(first.agentId, { latency: 100, result: "connect", interruptible: false })
      const connector = yield* ChatConnector.ChatConnector
      const dialing = yield* Effect.forkChild(Effect.scoped(connector.connect(chats[0])))
      yield* TestClock.adjust(50)
      yield* agents.setCurrent(w, Option.some(second))
      yield* rebuildAndNotify(w, first, second)
      const connection = yield* settle(Fiber.join(dialing))
      assert.strictEqual(connection.outcome, "switched", "the answer ended the validation delay")
      assert.strictEqual(connection.connection.agentId, second.agentId)
      yield* TestClock.adjust(200)
      const old = (yield* agents.ledger).filter((entry) => entry.agentId === first.agentId)
      assert.strictEqual(old.length, 1, "the old agent's dial went on, and connected")
      deepStrictEqual(old[0]!.releasedAt.length, 1, "and its connection was closed, not kept for later turns")
      assert.strictEqual(yield* control.open, 1)
    }).pipe(Effect.provide(connectorLayer())))

  it.effect("a notice alone drops nothing: the read answers that the agent is still current", () =>
    Effect.gen(function*() {
      const { chats, first, w } = yield* setup
      const memory = yield* RebuildNotices.MemoryNotices
      const control = yield* SharedConnections.SharedConnections
      yield* settle(turn(chats[0]))
      yield* memory.record(RebuildNotices.noticeOf(w, 1, first.buildId, Option.some(first.agentId), []))
      yield* memory.notify(w)
      yield* TestClock.adjust(1)
      assert.isAbove(yield* memory.reads, 0, "the notice was read")
      assert.strictEqual(yield* control.open, 1)
      const next = yield* turn(chats[1])
      assert.strictEqual(next.outcome, "fast")
    }).pipe(Effect.provide(connectorLayer())))

  describe("a borrowed connection that turns out dead falls back to the lazy validation", () => {
    it.effect("switched: the probe fails, the fresh dial hangs, the lookup names the new agent, the write is conditional", () =>
      Effect.gen(function*() {
        const { agents, chats, second, w } = yield* setup
        const store = yield* BindingStore.BindingStore
        const steady = yield* settle(turn(chats[0]))
        // the workspace was rebuilt with no notice; the old agent died while its connection sat idle
        yield* agents.setCurrent(w, Option.some(second))
        yield* TestClock.adjust("11 seconds")
        yield* agents.breakConnection(steady.connection.connectionId)
        yield* agents.script(steady.agentId, { result: "hang" })
        const before = yield* store.get(chats[1])
        const connection = yield* settle(turn(chats[1]))
        assert.strictEqual(connection.outcome, "switched")
        assert.strictEqual(connection.write, "recorded")
        assert.strictEqual(connection.connection.agentId, second.agentId)
        const after = yield* store.get(chats[1])
        deepStrictEqual(after.agentId, Option.some(second.agentId))
        assert.strictEqual(after.version, before.version + 1)
        assert.strictEqual((yield* agents.lookups).length, 1, "one lookup, after the validation delay")
        assert.strictEqual((yield* connectionOf(steady)).releasedAt.length, 1, "the dead connection was closed")
      }).pipe(Effect.provide(connectorLayer())))

    it.effect("fast: the probe fails, the fresh dial answers before the delay, nothing is written", () =>
      Effect.gen(function*() {
        const { agents, chats } = yield* setup
        const store = yield* BindingStore.BindingStore
        const steady = yield* settle(turn(chats[0]))
        yield* TestClock.adjust("11 seconds")
        yield* agents.breakConnection(steady.connection.connectionId)
        const before = yield* store.get(chats[1])
        const connection = yield* settle(turn(chats[1]))
        assert.strictEqual(connection.outcome, "fast")
        assert.strictEqual(connection.write, "none")
        assert.notStrictEqual(connection.connection.connectionId, steady.connection.connectionId)
        assert.strictEqual((yield* store.get(chats[1])).version, before.version)
        assert.strictEqual((yield* agents.dials).length, 2)
        assert.strictEqual((yield* agents.lookups).length, 0)
      }).pipe(Effect.provide(connectorLayer())))

    it.effect("a switch drops the bound agent's connection, with no view", () =>
      Effect.gen(function*() {
        const { agents, chats, first, second, w } = yield* setup
        const control = yield* SharedConnections.SharedConnections
        // the bound agent answers late: its connection opens after the turn switched away from it
        yield* agents.script(first.agentId, { latency: "6 seconds", result: "connect" })
        yield* agents.setCurrent(w, Option.some(second))
        const connection = yield* settle(turn(chats[0]))
        assert.strictEqual(connection.outcome, "switched")
        yield* TestClock.adjust("2 seconds")
        const next = yield* settle(turn(chats[1]))
        assert.strictEqual(next.connection.agentId, second.agentId)
        const old = (yield* agents.ledger).filter((entry) => entry.agentId === first.agentId)
        assert.isTrue(old.every((entry) => entry.releasedAt.length === 1), "no connection of the old agent kept")
        assert.strictEqual(yield* control.open, 1)
      }).pipe(Effect.provide(connectorLayer({ notices: Layer.empty }))))
  })
})
