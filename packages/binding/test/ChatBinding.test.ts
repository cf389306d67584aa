import { assert, describe, it, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { BindingStore, ChatBinding } from "@lazydial/binding"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import { agentId, build, buildId, chatId, unchecked, workspaceId } from "./fixtures.js"

const bound = () =>
  new ChatBinding.ChatBinding({
    chatId: chatId(),
    parentChatId: Option.some(chatId()),
    workspaceId: Option.some(workspaceId()),
    buildId: Option.some(buildId()),
    agentId: Option.some(agentId()),
    version: 3,
    updatedAt: DateTime.makeUnsafe("2026-11-23T12:00:00.000Z")
  })

const decodeJson = Schema.decodeUnknownResult(Schema.fromJsonString(ChatBinding.ChatBinding))

describe("ChatBinding", () => {
  it("round-trips through JSON, with unset fields as null", () => {
    const binding = new ChatBinding.ChatBinding({
      ...bound(),
      parentChatId: Option.none(),
      buildId: Option.none(),
      agentId: Option.none()
    })
    const json = JSON.stringify(Schema.encodeSync(ChatBinding.ChatBinding)(binding))
    const parsed = JSON.parse(json)
    assert.strictEqual(parsed.parentChatId, null)
    assert.strictEqual(parsed.agentId, null)
    assert.strictEqual(parsed.buildId, null)
    assert.strictEqual(parsed.updatedAt, "2026-11-23T12:00:00.000Z")
    deepStrictEqual(Result.getOrThrow(decodeJson(json)), binding)
    const full = bound()
    deepStrictEqual(
      Result.getOrThrow(decodeJson(JSON.stringify(Schema.encodeSync(ChatBinding.ChatBinding)(full)))),
      full
    )
  })

  it("rejects a malformed id with an error that names the field and the expected id", () => {
    const json = Schema.encodeSync(ChatBinding.ChatBinding)(bound())
    // Effect 4 shows the rejected value only when asked: an input may hold a secret
    const result = Schema.decodeUnknownResult(ChatBinding.ChatBinding, { reportInput: true })({
      ...json,
      agentId: "not-a-uuid"
    })
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) {
      const message = result.failure.message
      assert.include(message, "[\"agentId\"]")
      assert.include(message, "AgentId")
      assert.include(message, "not-a-uuid")
    }
  })

  it("tells an absent field from an unset one: a payload without a field is rejected", () => {
    const { workspaceId: _, ...withoutWorkspace } = Schema.encodeSync(ChatBinding.ChatBinding)(bound())
    const result = Schema.decodeUnknownResult(ChatBinding.ChatBinding)(withoutWorkspace)
    assert.isTrue(Result.isFailure(result))
    if (Result.isFailure(result)) {
      assert.include(result.failure.message, "[\"workspaceId\"]")
    }
  })
})

layer(Layer.provideMerge(BindingStore.layerSql(), PgliteDatabase.layerPglite()), { timeout: "60 seconds" })(
  "BindingStore on SQL: bad rows",
  (it) => {
    it.effect("a row that breaks the schema is a BindingStoreError naming the column, never a half-read binding", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* BindingStore.BindingStore
        const id = chatId()
        yield* unchecked(sql`INSERT INTO lazydial_chat_bindings
  (chat_id, parent_chat_id, workspace_id, build_id, agent_id, version, updated_at)
VALUES (${id}, NULL, ${workspaceId()}, ${buildId()}, ${"agent-7"}, 1, now())`)
        const error = yield* Effect.flip(store.get(id))
        assert.strictEqual(error._tag, "BindingStoreError")
        assert.include(error.message, "agent_id")
        assert.include(error.message, "agent-7")
      }))

    it.effect("the table refuses an agent without its build: build and agent are written together or not at all", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* BindingStore.BindingStore
        const chat = yield* store.createChat({ workspaceId: workspaceId() })
        const result = yield* Effect.result(
          sql`UPDATE lazydial_chat_bindings SET agent_id = ${build().agentId} WHERE chat_id = ${chat.chatId}`
        )
        assert.isTrue(Result.isFailure(result))
        deepStrictEqual(yield* store.get(chat.chatId), chat)
      }))

    it.effect("migrations run once: building the store again on a migrated database changes nothing", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* BindingStore.BindingStore
        const chat = yield* store.createChat()
        yield* Effect.scoped(BindingStore.makeSql())
        const applied = yield* sql<{ readonly migration_id: number }>`SELECT migration_id
FROM lazydial_binding_migrations ORDER BY migration_id`
        deepStrictEqual(applied.map((row) => row.migration_id), [1, 2, 3, 4])
        deepStrictEqual(yield* store.get(chat.chatId), chat)
      }))
  }
)
