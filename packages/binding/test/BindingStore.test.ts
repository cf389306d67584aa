import { assert, it } from "@effect/vitest"
import { BindingStore } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { build, onPostgres, workspaceId } from "./fixtures.js"
import { storeContract } from "./storeContract.js"

storeContract("memory", BindingStore.layerMemory, { directory: false })

storeContract("PGlite", BindingStore.layerSql().pipe(Layer.provideMerge(PgliteDatabase.layerPglite())), {
  directory: true
})

onPostgres(
  "BindingStore contract: PostgreSQL",
  (databaseUrl) =>
    storeContract(
      "PostgreSQL",
      BindingStore.layerSql().pipe(Layer.provideMerge(PgDatabase.layerPg(databaseUrl))),
      { directory: true }
    )
)

it.effect("the memory store sees no directory: it records any pair its caller gives (tests and examples only)", () =>
  Effect.gen(function*() {
    const store = yield* BindingStore.BindingStore
    const chat = yield* store.createChat({ workspaceId: workspaceId() })
    const stranger = build()
    const result = yield* store.recordAgent(chat.chatId, {
      expected: { workspaceId: Option.getOrThrow(chat.workspaceId), agentId: Option.none() },
      current: stranger
    })
    assert.strictEqual(result._tag, "Recorded")
  }).pipe(Effect.provide(BindingStore.layerMemory)))
