/**
 * The behaviour every BindingStore Layer must have. Written once, run against
 * memory, PGlite and PostgreSQL (see BindingStore.test.ts).
 */
import { assert, layer } from "@effect/vitest"
import { BindingStore, ChatBinding } from "@lazydial/binding"
import { assertEqual } from "@lazydial/core/testing"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/testing/TestClock"
import { build, chatId, workspaceId } from "./fixtures.js"

const Store = BindingStore.BindingStore

/** A chat of workspace `w`, bound to `current`. */
const boundChat = (w = workspaceId(), current = build()) =>
  Effect.gen(function*() {
    const store = yield* Store
    const chat = yield* store.createChat({ workspaceId: w })
    const result = yield* store.recordAgent(chat.chatId, {
      expected: { workspaceId: w, agentId: Option.none() },
      current
    })
    assert.strictEqual(result._tag, "Recorded")
    return { chat: result.binding, workspaceId: w, current }
  })

export const storeContract = <E>(name: string, storeLayer: Layer.Layer<BindingStore.BindingStore, E>) =>
  layer(storeLayer, { timeout: "60 seconds" })(`BindingStore contract: ${name}`, (it) => {
    it.effect("a new chat has no workspace, build or agent, and reads back equal", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const chat = yield* store.createChat()
        assert.isTrue(Option.isNone(chat.workspaceId))
        assert.isTrue(Option.isNone(chat.buildId))
        assert.isTrue(Option.isNone(chat.agentId))
        assert.isTrue(Option.isNone(chat.parentChatId))
        assert.strictEqual(chat.version, 1)
        assertEqual(yield* store.get(chat.chatId), chat)
      }))

    it.effect("a chat created with a workspace keeps it; a taken id is ChatAlreadyExists and changes nothing", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const id = chatId()
        const w = workspaceId()
        const chat = yield* store.createChat({ chatId: id, workspaceId: w })
        assert.strictEqual(chat.chatId, id)
        assertEqual(chat.workspaceId, Option.some(w))
        const again = yield* Effect.flip(store.createChat({ chatId: id }))
        assert.strictEqual(again._tag, "ChatAlreadyExists")
        assertEqual(yield* store.get(id), chat)
      }))

    it.effect("an unknown chat is ChatNotFound for every operation, and nothing is written", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const id = chatId()
        const w = workspaceId()
        const errors = yield* Effect.all([
          Effect.flip(store.get(id)),
          Effect.flip(store.setWorkspace(id, Option.some(w))),
          Effect.flip(
            store.recordAgent(id, { expected: { workspaceId: w, agentId: Option.none() }, current: build() })
          ),
          Effect.flip(store.createChild(id))
        ])
        for (const error of errors) {
          assert.strictEqual(error._tag, "ChatNotFound")
          assert.include(error.message, id)
        }
        assert.strictEqual((yield* Effect.flip(store.get(id)))._tag, "ChatNotFound")
      }))

    it.effect("a child of an unknown parent is ChatNotFound, and no child row is left behind", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const child = chatId()
        const error = yield* Effect.flip(store.createChild(chatId(), { chatId: child }))
        assert.strictEqual(error._tag, "ChatNotFound")
        assert.strictEqual((yield* Effect.flip(store.get(child)))._tag, "ChatNotFound")
      }))

    it.effect("lazy bind: recordAgent with no previous agent records build and agent together", () =>
      Effect.gen(function*() {
        const { chat, current, workspaceId: w } = yield* boundChat()
        assertEqual(chat.workspaceId, Option.some(w))
        assertEqual(chat.agentId, Option.some(current.agentId))
        assertEqual(chat.buildId, Option.some(current.buildId))
        assert.strictEqual(chat.version, 2)
      }))

    it.effect("repair: recordAgent with the agent the caller read replaces it", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat, current, workspaceId: w } = yield* boundChat()
        const rebuilt = build()
        const result = yield* store.recordAgent(chat.chatId, {
          expected: { workspaceId: w, agentId: Option.some(current.agentId) },
          current: rebuilt
        })
        assert.strictEqual(result._tag, "Recorded")
        assertEqual(result.binding.agentId, Option.some(rebuilt.agentId))
        assertEqual(result.binding.buildId, Option.some(rebuilt.buildId))
        assertEqual(yield* store.get(chat.chatId), result.binding)
      }))

    it.effect("repair lost: a writer that read an older agent writes nothing and gets the row as it is", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat, current, workspaceId: w } = yield* boundChat()
        const newer = build()
        yield* store.recordAgent(chat.chatId, {
          expected: { workspaceId: w, agentId: Option.some(current.agentId) },
          current: newer
        })
        // A second replica still believes the chat has `current`; its answer is older.
        const stale = yield* store.recordAgent(chat.chatId, {
          expected: { workspaceId: w, agentId: Option.some(current.agentId) },
          current: build()
        })
        assert.strictEqual(stale._tag, "Lost")
        assertEqual(stale.binding.agentId, Option.some(newer.agentId))
        assertEqual(yield* store.get(chat.chatId), stale.binding)
      }))

    it.effect("workspace change then a stale repair: the repair is lost, no agent of W1 lands under W2", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat, current, workspaceId: w1 } = yield* boundChat()
        const w2 = workspaceId()
        const changed = yield* store.setWorkspace(chat.chatId, Option.some(w2))
        assertEqual(changed.workspaceId, Option.some(w2))
        assert.isTrue(Option.isNone(changed.agentId))
        assert.isTrue(Option.isNone(changed.buildId))
        const stale = yield* store.recordAgent(chat.chatId, {
          expected: { workspaceId: w1, agentId: Option.some(current.agentId) },
          current: build()
        })
        assert.strictEqual(stale._tag, "Lost")
        assertEqual(yield* store.get(chat.chatId), changed)
      }))

    it.effect("setWorkspace(None) leaves the chat without workspace, and a lazy bind to the old one is lost", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const w = workspaceId()
        const chat = yield* store.createChat({ workspaceId: w })
        const cleared = yield* store.setWorkspace(chat.chatId, Option.none())
        assert.isTrue(Option.isNone(cleared.workspaceId))
        const stale = yield* store.recordAgent(chat.chatId, {
          expected: { workspaceId: w, agentId: Option.none() },
          current: build()
        })
        assert.strictEqual(stale._tag, "Lost")
        assert.isTrue(Option.isNone(stale.binding.agentId))
      }))

    it.effect("a child chat copies the parent's workspace, build and agent, then evolves on its own", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat: parent, current, workspaceId: w } = yield* boundChat()
        const child = yield* store.createChild(parent.chatId)
        assertEqual(child.parentChatId, Option.some(parent.chatId))
        assertEqual(child.workspaceId, Option.some(w))
        assertEqual(child.agentId, Option.some(current.agentId))
        assertEqual(child.buildId, Option.some(current.buildId))
        assert.strictEqual(child.version, 1)
        yield* store.setWorkspace(parent.chatId, Option.some(workspaceId()))
        assertEqual(yield* store.get(child.chatId), child)
        const rebuilt = build()
        const repaired = yield* store.recordAgent(child.chatId, {
          expected: { workspaceId: w, agentId: Option.some(current.agentId) },
          current: rebuilt
        })
        assert.strictEqual(repaired._tag, "Recorded")
        assert.isTrue(Option.isNone((yield* store.get(parent.chatId)).agentId))
      }))

    it.effect("every write stamps the Effect clock's time and bumps the version", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const chat = yield* store.createChat()
        yield* TestClock.adjust("1 minute")
        const changed = yield* store.setWorkspace(chat.chatId, Option.some(workspaceId()))
        assert.strictEqual(changed.version, chat.version + 1)
        assert.strictEqual(changed.updatedAt.epochMilliseconds - chat.updatedAt.epochMilliseconds, 60_000)
      }))

    it.effect("racing repairs with one expectation: exactly one is recorded, and it is what the row holds", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat, current, workspaceId: w } = yield* boundChat()
        const candidates = Array.from({ length: 16 }, build)
        const results = yield* Effect.forEach(
          candidates,
          (candidate) =>
            store.recordAgent(chat.chatId, {
              expected: { workspaceId: w, agentId: Option.some(current.agentId) },
              current: candidate
            }),
          { concurrency: "unbounded" }
        )
        const recorded = results.filter((result) => result._tag === "Recorded")
        assert.strictEqual(recorded.length, 1)
        const row = yield* store.get(chat.chatId)
        assertEqual(row, recorded[0]!.binding)
        const winner = candidates[results.indexOf(recorded[0]!)]!
        assertEqual(row.buildId, Option.some(winner.buildId))
      }))

    it.effect("a workspace change racing a repair: the row always ends on W2 with no agent", () =>
      Effect.gen(function*() {
        const store = yield* Store
        for (let round = 0; round < 10; round++) {
          const { chat, current, workspaceId: w1 } = yield* boundChat()
          const w2 = workspaceId()
          yield* Effect.all([
            store.recordAgent(chat.chatId, {
              expected: { workspaceId: w1, agentId: Option.some(current.agentId) },
              current: build()
            }),
            store.setWorkspace(chat.chatId, Option.some(w2))
          ], { concurrency: "unbounded" })
          const row = yield* store.get(chat.chatId)
          assertEqual(row.workspaceId, Option.some(w2))
          assert.isTrue(Option.isNone(row.agentId))
          assert.isTrue(Option.isNone(row.buildId))
        }
      }))

    it.effect("a stored binding survives a JSON round trip", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat } = yield* boundChat()
        const child = yield* store.createChild(chat.chatId)
        const json = JSON.parse(JSON.stringify(Schema.encodeSync(ChatBinding.ChatBinding)(child)))
        assertEqual(Schema.decodeUnknownSync(ChatBinding.ChatBinding)(json), child)
      }))
  })
