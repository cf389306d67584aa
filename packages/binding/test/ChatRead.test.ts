/**
 * `ChatConnector.read`: the stored binding and what this replica's view says
 * of it, one case per state, on TestClock with the in-memory store and
 * notices. Every read is checked to make one store read and nothing else: no
 * write, no lookup, no dial.
 */
import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { BindingStore, ChatConnector, RebuildNotices } from "@lazydial/binding"
import { type BuildId, type ChatId, type CurrentAgent, LazyDial, type WorkspaceId } from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/testing/TestClock"
import { boundChat, build, chatId as newChatId, workspaceId } from "./fixtures.js"

/** The store's calls, by operation name, in order. */
const storeCalls: Array<string> = []

/** The in-memory store, recording every call. */
const countingStore = Layer.effect(
  BindingStore.BindingStore,
  Effect.map(BindingStore.BindingStore, (store) =>
    new Proxy(store, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver)
        if (typeof value !== "function") return value
        return (...args: ReadonlyArray<unknown>) => {
          storeCalls.push(String(key))
          return Reflect.apply(value, target, args)
        }
      }
    }))
).pipe(Layer.provide(BindingStore.layerMemory))

const connectorLayer = <N>(notices: Layer.Layer<N>) =>
  ChatConnector.layer().pipe(
    Layer.provideMerge(LazyDial.layer({ delay: "5 seconds" })),
    Layer.provideMerge(Layer.mergeAll(countingStore, notices)),
    Layer.provideMerge(layerTest)
  )

const withView = connectorLayer(RebuildNotices.layerMemory)

/** A directory answer, straight to the views. */
const answer = (w: WorkspaceId, order: number, current: CurrentAgent | undefined, superseded: Array<BuildId> = []) =>
  Effect.flatMap(RebuildNotices.MemoryNotices, (memory) =>
    memory.publish(
      RebuildNotices.noticeOf(
        w,
        order,
        current?.buildId ?? build().buildId,
        Option.fromNullishOr(current?.agentId),
        superseded
      )
    ))

/** `read`, checked to make exactly one store read, no lookup, no dial, and to leave the row as it was. */
const readOnly = (chat: ChatId) =>
  Effect.gen(function*() {
    const connector = yield* ChatConnector.ChatConnector
    const store = yield* BindingStore.BindingStore
    const agents = yield* TestAgents
    const before = yield* store.get(chat)
    const lookups = (yield* agents.lookups).length
    const dials = (yield* agents.dials).length
    storeCalls.length = 0
    const read = yield* connector.read(chat)
    deepStrictEqual(storeCalls, ["get"], "one read of the row, no write")
    assert.strictEqual((yield* agents.lookups).length, lookups, "no lookup")
    assert.strictEqual((yield* agents.dials).length, dials, "no dial")
    deepStrictEqual(read.binding, before, "the stored row, as it was")
    deepStrictEqual(yield* store.get(chat), before, "unchanged")
    return read
  })

describe("ChatConnector.read", () => {
  it.effect("current: the view's latest build is the bound one", () =>
    Effect.gen(function*() {
      const w = workspaceId()
      const first = build()
      const chatId = yield* boundChat(w, first)
      yield* answer(w, 1, first)
      const read = yield* readOnly(chatId)
      assert.strictEqual(read.state, "current")
      deepStrictEqual(read.current, Option.some(first))
    }).pipe(Effect.provide(withView)))

  it.effect("stale: the view knows the bound build superseded; the newer pair is answered, the row is not repaired", () =>
    Effect.gen(function*() {
      const w = workspaceId()
      const first = build()
      const second = build()
      const chatId = yield* boundChat(w, first)
      yield* answer(w, 2, second, [first.buildId])
      const read = yield* readOnly(chatId)
      assert.strictEqual(read.state, "stale")
      deepStrictEqual(read.current, Option.some(second))
      deepStrictEqual(read.binding.agentId, Option.some(first.agentId), "the stored agent stays in the row")
    }).pipe(Effect.provide(withView)))

  it.effect("stopped: the view knows the workspace stopped after the bound build, within the stop's trust", () =>
    Effect.gen(function*() {
      const w = workspaceId()
      const first = build()
      const chatId = yield* boundChat(w, first)
      yield* answer(w, 2, undefined, [first.buildId])
      const read = yield* readOnly(chatId)
      assert.strictEqual(read.state, "stopped")
      deepStrictEqual(read.current, Option.none())
      yield* TestClock.adjust(ChatConnector.stoppedTrust)
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* readOnly(chatId)).state, "unknown", "a stop heard too long ago is not trusted")
    }).pipe(Effect.provide(withView)))

  it.effect("unknown: the workspace is not in the view, or the bound build is one the view does not know", () =>
    Effect.gen(function*() {
      const w = workspaceId()
      const first = build()
      const chatId = yield* boundChat(w, first)
      const notInView = yield* readOnly(chatId)
      assert.strictEqual(notInView.state, "unknown")
      deepStrictEqual(notInView.current, Option.none())
      // a build the view never saw superseded may be newer than the view
      yield* answer(w, 1, build())
      const notJudged = yield* readOnly(chatId)
      assert.strictEqual(notJudged.state, "unknown")
      deepStrictEqual(notJudged.current, Option.none())
    }).pipe(Effect.provide(withView)))

  it.effect("unknown: with no view at all (no RebuildNotices)", () =>
    Effect.gen(function*() {
      const chatId = yield* boundChat(workspaceId(), build())
      const read = yield* readOnly(chatId)
      assert.strictEqual(read.state, "unknown")
      deepStrictEqual(read.current, Option.none())
    }).pipe(Effect.provide(connectorLayer(Layer.empty))))

  it.effect("unknown: the view does not listen", () =>
    Effect.gen(function*() {
      const w = workspaceId()
      const first = build()
      const chatId = yield* boundChat(w, first)
      yield* answer(w, 2, build(), [first.buildId])
      yield* (yield* RebuildNotices.MemoryNotices).setListening(false)
      assert.strictEqual((yield* readOnly(chatId)).state, "unknown")
    }).pipe(Effect.provide(withView)))

  it.effect("unbound: no agent; the view's current pair when it knows one", () =>
    Effect.gen(function*() {
      const store = yield* BindingStore.BindingStore
      const w = workspaceId()
      const chat = yield* store.createChat({ workspaceId: w })
      const unknown = yield* readOnly(chat.chatId)
      assert.strictEqual(unknown.state, "unbound")
      deepStrictEqual(unknown.current, Option.none())
      const second = build()
      yield* answer(w, 2, second)
      const known = yield* readOnly(chat.chatId)
      assert.strictEqual(known.state, "unbound")
      deepStrictEqual(known.current, Option.some(second))
      const noWorkspace = yield* store.createChat({})
      const none = yield* readOnly(noWorkspace.chatId)
      assert.strictEqual(none.state, "unbound")
      deepStrictEqual(none.current, Option.none())
    }).pipe(Effect.provide(withView)))

  it.effect("an unknown chat fails with ChatNotFound", () =>
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const error = yield* Effect.flip(connector.read(newChatId()))
      assert.strictEqual(error._tag, "ChatNotFound")
    }).pipe(Effect.provide(withView)))
})
