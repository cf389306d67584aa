/**
 * An agent belongs to its workspace (issue 17, the database's part): the SQL
 * store writes a chat's (build, agent) pair only when the directory holds it
 * for the chat's workspace. Here, how the turn path treats a refused write:
 * when the agent lookup names a pair the directory does not hold (a lookup
 * that does not read the directory the store checks), the turn fails once
 * with `AgentLookupError`, does not use that agent, writes nothing and does
 * not loop. On PGlite and, with scripts/test-postgres.sh, on PostgreSQL.
 */
import { assert, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import type { Database } from "@lazydial/binding"
import { BindingStore, ChatConnector } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import { LazyDial } from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as SqlClient from "effect/sql/SqlClient"
import { build, failureOf, holdBuild, onPostgres, workspaceId } from "./fixtures.js"

const suite = <E>(name: string, database: Layer.Layer<SqlClient.SqlClient | Database.Migrated, E>) =>
  layer(
    ChatConnector.layer().pipe(
      Layer.provideMerge(LazyDial.layer({ delay: "5 seconds" })),
      Layer.provideMerge(BindingStore.layerSql()),
      Layer.provideMerge(layerTest),
      Layer.provideMerge(database)
    ),
    { timeout: "60 seconds" }
  )(`An agent belongs to its workspace: ${name}`, (it) => {
    it.effect(
      "a lazy bind to a pair the directory does not hold: AgentLookupError once, 0 dials, nothing written, no second lookup",
      () =>
        Effect.gen(function*() {
          const connector = yield* ChatConnector.ChatConnector
          const store = yield* BindingStore.BindingStore
          const agents = yield* TestAgents
          const w = workspaceId()
          const other = workspaceId()
          // the directory holds the other workspace's build; the lookup names it for `w`
          const foreign = build()
          yield* holdBuild(other, foreign)
          yield* agents.setCurrent(w, Option.some(foreign))
          yield* agents.script(foreign.agentId, { result: "connect" })
          const chat = yield* store.createChat({ workspaceId: w })
          const lookups = (yield* agents.lookups).length
          const dials = (yield* agents.dials).length
          const exit = yield* Effect.exit(Effect.scoped(connector.connect(chat.chatId)))
          const error = Option.getOrUndefined(failureOf(exit))
          assert.strictEqual(error?._tag, "AgentLookupError")
          assert.include(error?.message, "the directory holds no build")
          deepStrictEqual([(yield* agents.lookups).length - lookups, (yield* agents.dials).length - dials], [1, 0])
          deepStrictEqual(yield* store.get(chat.chatId), chat)
        })
    )

    it.effect(
      "a repair to a pair the directory does not hold: the dialed agent's connection is released unused, AgentLookupError, the row keeps its agent",
      () =>
        Effect.gen(function*() {
          const connector = yield* ChatConnector.ChatConnector
          const store = yield* BindingStore.BindingStore
          const agents = yield* TestAgents
          const w = workspaceId()
          const mine = build()
          yield* holdBuild(w, mine)
          yield* agents.setCurrent(w, Option.some(mine))
          yield* agents.script(mine.agentId, { result: "connect" })
          const chat = (yield* store.createChat({ workspaceId: w })).chatId
          assert.strictEqual((yield* Effect.scoped(connector.connect(chat))).outcome, "lazy_bind")
          const row = yield* store.get(chat)
          // the bound agent refuses; the lookup names an impostor the directory never held
          const impostor = build()
          yield* agents.script(mine.agentId, { result: "fail" })
          yield* agents.script(impostor.agentId, { result: "connect" })
          yield* agents.setCurrent(w, Option.some(impostor))
          const exit = yield* Effect.exit(Effect.scoped(connector.connect(chat)))
          assert.strictEqual(Option.getOrUndefined(failureOf(exit))?._tag, "AgentLookupError")
          deepStrictEqual(yield* store.get(chat), row)
          assert.strictEqual((yield* agents.unreleased).length, 0)
        })
    )
  })

suite("PGlite", PgliteDatabase.layerPglite())
onPostgres("An agent belongs to its workspace: PostgreSQL", (url) => suite("PostgreSQL", PgDatabase.layerPg(url)))
