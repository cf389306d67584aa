/**
 * The behaviour every BindingStore Layer must have. Written once, run against
 * memory, PGlite and PostgreSQL (see BindingStore.test.ts). A store over a
 * database (`directory: true`) binds a chat only to a pair the directory
 * holds for its workspace: there every pair is recorded in the directory's
 * table first (`held`), and the refusals are checked too.
 */
import { assert, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { BindingStore, ChatBinding } from "@lazydial/binding"
import { CurrentAgent, type WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as TestClock from "effect/testing/TestClock"
import { build, chatId, holdBuild, workspaceId } from "./fixtures.js"

const Store = BindingStore.BindingStore

/** A new build of `w`, which the directory holds when there is one (an `SqlClient` in the context). */
const held = (w: WorkspaceId): Effect.Effect<CurrentAgent> =>
  Effect.gen(function*() {
    const current = build()
    const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
    if (Option.isSome(sql)) {
      yield* Effect.orDie(Effect.provideService(holdBuild(w, current), SqlClient.SqlClient, sql.value))
    }
    return current
  })

/** A chat of workspace `w`, bound to `current`. */
const boundChat = (w = workspaceId(), given?: CurrentAgent) =>
  Effect.gen(function*() {
    const store = yield* Store
    const current = given ?? (yield* held(w))
    const chat = yield* store.createChat({ workspaceId: w })
    const result = yield* store.recordAgent(chat.chatId, {
      expected: { workspaceId: w, agentId: Option.none() },
      current
    })
    assert.strictEqual(result._tag, "Recorded")
    return { chat: result.binding, workspaceId: w, current }
  })

export const storeContract = <E>(
  name: string,
  storeLayer: Layer.Layer<BindingStore.BindingStore, E>,
  options: { readonly directory: boolean }
) =>
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
        deepStrictEqual(yield* store.get(chat.chatId), chat)
      }))

    it.effect("a chat created with a workspace keeps it; a taken id is ChatAlreadyExists and changes nothing", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const id = chatId()
        const w = workspaceId()
        const chat = yield* store.createChat({ chatId: id, workspaceId: w })
        assert.strictEqual(chat.chatId, id)
        deepStrictEqual(chat.workspaceId, Option.some(w))
        const again = yield* Effect.flip(store.createChat({ chatId: id }))
        assert.strictEqual(again._tag, "ChatAlreadyExists")
        deepStrictEqual(yield* store.get(id), chat)
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
        deepStrictEqual(chat.workspaceId, Option.some(w))
        deepStrictEqual(chat.agentId, Option.some(current.agentId))
        deepStrictEqual(chat.buildId, Option.some(current.buildId))
        assert.strictEqual(chat.version, 2)
      }))

    it.effect("repair: recordAgent with the agent the caller read replaces it", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat, current, workspaceId: w } = yield* boundChat()
        const rebuilt = yield* held(w)
        const result = yield* store.recordAgent(chat.chatId, {
          expected: { workspaceId: w, agentId: Option.some(current.agentId) },
          current: rebuilt
        })
        assert.strictEqual(result._tag, "Recorded")
        deepStrictEqual(result.binding.agentId, Option.some(rebuilt.agentId))
        deepStrictEqual(result.binding.buildId, Option.some(rebuilt.buildId))
        deepStrictEqual(yield* store.get(chat.chatId), result.binding)
      }))

    it.effect("repair lost: a writer that read an older agent writes nothing and gets the row as it is", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat, current, workspaceId: w } = yield* boundChat()
        const newer = yield* held(w)
        yield* store.recordAgent(chat.chatId, {
          expected: { workspaceId: w, agentId: Option.some(current.agentId) },
          current: newer
        })
        // A second replica still believes the chat has `current`; its answer is older.
        const stale = yield* store.recordAgent(chat.chatId, {
          expected: { workspaceId: w, agentId: Option.some(current.agentId) },
          current: yield* held(w)
        })
        assert.strictEqual(stale._tag, "Lost")
        deepStrictEqual(stale.binding.agentId, Option.some(newer.agentId))
        deepStrictEqual(yield* store.get(chat.chatId), stale.binding)
      }))

    it.effect("workspace change then a stale repair: the repair is lost, no agent of W1 lands under W2", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat, current, workspaceId: w1 } = yield* boundChat()
        const w2 = workspaceId()
        const changed = yield* store.setWorkspace(chat.chatId, Option.some(w2))
        deepStrictEqual(changed.workspaceId, Option.some(w2))
        assert.isTrue(Option.isNone(changed.agentId))
        assert.isTrue(Option.isNone(changed.buildId))
        const stale = yield* store.recordAgent(chat.chatId, {
          expected: { workspaceId: w1, agentId: Option.some(current.agentId) },
          current: yield* held(w1)
        })
        assert.strictEqual(stale._tag, "Lost")
        deepStrictEqual(yield* store.get(chat.chatId), changed)
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
          current: yield* held(w)
        })
        assert.strictEqual(stale._tag, "Lost")
        assert.isTrue(Option.isNone(stale.binding.agentId))
      }))

    it.effect("a child chat copies the parent's workspace, build and agent, then evolves on its own", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat: parent, current, workspaceId: w } = yield* boundChat()
        const child = yield* store.createChild(parent.chatId)
        deepStrictEqual(child.parentChatId, Option.some(parent.chatId))
        deepStrictEqual(child.workspaceId, Option.some(w))
        deepStrictEqual(child.agentId, Option.some(current.agentId))
        deepStrictEqual(child.buildId, Option.some(current.buildId))
        assert.strictEqual(child.version, 1)
        yield* store.setWorkspace(parent.chatId, Option.some(workspaceId()))
        deepStrictEqual(yield* store.get(child.chatId), child)
        const rebuilt = yield* held(w)
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
        const candidates = yield* Effect.forEach(Array.from({ length: 16 }), () => held(w))
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
        deepStrictEqual(row, recorded[0]!.binding)
        const winner = candidates[results.indexOf(recorded[0]!)]!
        deepStrictEqual(row.buildId, Option.some(winner.buildId))
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
              current: yield* held(w1)
            }),
            store.setWorkspace(chat.chatId, Option.some(w2))
          ], { concurrency: "unbounded" })
          const row = yield* store.get(chat.chatId)
          deepStrictEqual(row.workspaceId, Option.some(w2))
          assert.isTrue(Option.isNone(row.agentId))
          assert.isTrue(Option.isNone(row.buildId))
        }
      }))

    // Only a store over a database sees the directory; the memory store's
    // own test (BindingStore.test.ts) states that it records any pair.
    if (options.directory) {
      it.effect(
        "refused: a pair the directory does not hold for the chat's workspace is never written, lazy bind or repair",
        () =>
          Effect.gen(function*() {
            const store = yield* Store
            const w = workspaceId()
            const other = workspaceId()
            const mine = yield* held(w)
            const foreign = yield* held(other)
            const strangers = [
              // a build that exists in no table
              build(),
              // another workspace's live build and agent
              foreign,
              // this workspace's build with another workspace's agent, and the reverse
              new CurrentAgent({ agentId: foreign.agentId, buildId: mine.buildId }),
              new CurrentAgent({ agentId: mine.agentId, buildId: foreign.buildId })
            ]
            const lazy = yield* store.createChat({ workspaceId: w })
            const { chat: bound } = yield* boundChat(w, mine)
            for (const stranger of strangers) {
              const lazyBind = yield* store.recordAgent(lazy.chatId, {
                expected: { workspaceId: w, agentId: Option.none() },
                current: stranger
              })
              assert.strictEqual(lazyBind._tag, "Refused")
              deepStrictEqual(lazyBind.binding, lazy)
              const repair = yield* store.recordAgent(bound.chatId, {
                expected: { workspaceId: w, agentId: Option.some(mine.agentId) },
                current: stranger
              })
              assert.strictEqual(repair._tag, "Refused")
              deepStrictEqual(repair.binding, bound)
            }
            deepStrictEqual(yield* store.get(lazy.chatId), lazy)
            deepStrictEqual(yield* store.get(bound.chatId), bound)
          })
      )

      it.effect(
        "the database refuses a foreign pair written by hand (the foreign key), and the row keeps its pair",
        () =>
          Effect.gen(function*() {
            const store = yield* Store
            const w = workspaceId()
            const { chat } = yield* boundChat(w)
            const foreign = yield* held(workspaceId())
            const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
            const write = Effect.flatMap(Effect.fromOption(sql), (sql) =>
              sql`UPDATE lazydial_chat_bindings SET build_id = ${foreign.buildId}, agent_id = ${foreign.agentId}
  WHERE chat_id = ${chat.chatId}`)
            const result = yield* Effect.result(write)
            assert.isTrue(Result.isFailure(result), "the foreign pair was written")
            if (Result.isFailure(result)) {
              const cause = result.failure._tag === "SqlError" ? result.failure.reason.cause : result.failure
              assert.include(cause instanceof Error ? cause.message : String(cause), "foreign key")
            }
            deepStrictEqual(yield* store.get(chat.chatId), chat)
          })
      )
    }

    it.effect("a stored binding survives a JSON round trip", () =>
      Effect.gen(function*() {
        const store = yield* Store
        const { chat } = yield* boundChat()
        const child = yield* store.createChild(chat.chatId)
        const json = JSON.parse(JSON.stringify(Schema.encodeSync(ChatBinding.ChatBinding)(child)))
        deepStrictEqual(Schema.decodeUnknownSync(ChatBinding.ChatBinding)(json), child)
      }))
  })
