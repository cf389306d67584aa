/**
 * Several service replicas on one database (PGlite here; PostgreSQL too when
 * LAZYDIAL_TEST_DATABASE_URL is set): the races of the turn path, and the
 * number of queries a burst of validations makes.
 */
import { assert, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import type { Database } from "@lazydial/binding"
import { AgentDirectory, BindingStore, ChatConnector } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import { AgentLookup, type ChatId, type CurrentAgent, LazyDial, type WorkspaceId } from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as SqlClient from "effect/sql/SqlClient"
import { boundChat, build, countingStatements, drive, onPostgres, until, workspaceId } from "./fixtures.js"

const queries = Effect.map(Metric.value(AgentDirectory.queriesTotal), (state) => state.count)

/**
 * One replica: its own directory (own batching) and its own connector, over
 * the shared database and binding store.
 */
const replica = Effect.gen(function*() {
  const directory = yield* AgentDirectory.makeSql()
  const lookup = AgentLookup.AgentLookup.of({ current: directory.current })
  const lazyDial = yield* LazyDial.make({ delay: "5 seconds" }).pipe(
    Effect.provideService(AgentLookup.AgentLookup, lookup)
  )
  return yield* ChatConnector.make().pipe(
    Effect.provideService(AgentLookup.AgentLookup, lookup),
    Effect.provideService(LazyDial.LazyDial, lazyDial)
  )
})

/** A running workspace, recorded in the directory, whose agent answers. */
const runningWorkspace = Effect.gen(function*() {
  const directory = yield* AgentDirectory.AgentDirectory
  const agents = yield* TestAgents
  const w = workspaceId()
  const current = build()
  yield* directory.recordBuild(w, current)
  yield* agents.script(current.agentId, { result: "connect" })
  return { workspaceId: w, current }
})

const rebuild = (w: WorkspaceId, old: CurrentAgent, oldAgent: "fail" | "hang") =>
  Effect.gen(function*() {
    const directory = yield* AgentDirectory.AgentDirectory
    const agents = yield* TestAgents
    const next = build()
    yield* directory.recordBuild(w, next)
    yield* agents.script(next.agentId, { result: "connect" })
    yield* agents.script(old.agentId, { result: oldAgent })
    return next
  })

const replicasSuite = <E>(name: string, database: Layer.Layer<SqlClient.SqlClient | Database.Migrated, E>) =>
  layer(
    Layer.mergeAll(BindingStore.layerSql(), AgentDirectory.layerSql(), layerTest).pipe(
      Layer.provideMerge(countingStatements(database))
    ),
    { timeout: "60 seconds" }
  )(`Replicas on one database: ${name}`, (it) => {
    it.effect("two replicas race to repair one chat: one write wins, the other is lost, the row is consistent", () =>
      Effect.gen(function*() {
        const store = yield* BindingStore.BindingStore
        const [first, second] = [yield* replica, yield* replica]
        for (let round = 0; round < 5; round++) {
          const { current, workspaceId: w } = yield* runningWorkspace
          const chatId = yield* boundChat(w, current)
          const next = yield* rebuild(w, current, "fail")
          const results = yield* drive(
            yield* Effect.forkChild(Effect.all(
              [Effect.scoped(first.connect(chatId)), Effect.scoped(second.connect(chatId))],
              { concurrency: "unbounded" }
            ))
          )
          for (const result of results) {
            assert.strictEqual(result.outcome, "switched")
            assert.strictEqual(result.agentId, next.agentId)
          }
          deepStrictEqual(results.map((result) => result.write).sort(), ["lost", "recorded"])
          const row = yield* store.get(chatId)
          deepStrictEqual(row.agentId, Option.some(next.agentId))
          deepStrictEqual(row.buildId, Option.some(next.buildId))
        }
        const agents = yield* TestAgents
        assert.strictEqual((yield* agents.unreleased).length, 0)
      }))

    it.effect("a workspace change races a repair: the row ends on the new workspace, never with an old agent", () =>
      Effect.gen(function*() {
        const store = yield* BindingStore.BindingStore
        const connector = yield* replica
        for (let round = 0; round < 10; round++) {
          const { current, workspaceId: w1 } = yield* runningWorkspace
          const chatId = yield* boundChat(w1, current)
          const next = yield* rebuild(w1, current, "fail")
          const second = yield* runningWorkspace
          const [turn] = yield* drive(
            yield* Effect.forkChild(Effect.all([
              Effect.scoped(connector.connect(chatId)),
              store.setWorkspace(chatId, Option.some(second.workspaceId))
            ], { concurrency: "unbounded" }))
          )
          // The turn dialed W1's new agent, or (if it read the row after the change) W2's.
          assert.include([next.agentId, second.current.agentId], turn.agentId)
          const row = yield* store.get(chatId)
          deepStrictEqual(row.workspaceId, Option.some(second.workspaceId))
          if (Option.isSome(row.agentId)) {
            assert.strictEqual(row.agentId.value, second.current.agentId)
            deepStrictEqual(row.buildId, Option.some(second.current.buildId))
          } else {
            assert.isTrue(Option.isNone(row.buildId))
          }
        }
      }))

    it.effect("steady state: 20 hot turns make 0 lookup queries", () =>
      Effect.gen(function*() {
        const connector = yield* replica
        const { current, workspaceId: w } = yield* runningWorkspace
        const chatId = yield* boundChat(w, current)
        const before = yield* queries
        for (let i = 0; i < 20; i++) {
          assert.strictEqual((yield* Effect.scoped(connector.connect(chatId))).outcome, "fast")
        }
        assert.strictEqual((yield* queries) - before, 0)
      }))

    it.effect("a burst: 50 chats of one workspace validating at once make 1 query, and all are repaired", () =>
      Effect.gen(function*() {
        const store = yield* BindingStore.BindingStore
        const connector = yield* replica
        const { current, workspaceId: w } = yield* runningWorkspace
        const chats: Array<ChatId> = []
        for (let i = 0; i < 50; i++) chats.push(yield* boundChat(w, current))
        // The old agent's address hangs: every turn validates at the delay.
        const next = yield* rebuild(w, current, "hang")
        const agents = yield* TestAgents
        const dialsBefore = (yield* agents.dials).length
        const before = yield* queries
        const fiber = yield* Effect.forkChild(
          Effect.forEach(chats, (chatId) => Effect.scoped(connector.connect(chatId)), { concurrency: "unbounded" })
        )
        // Every turn has read its binding and is dialing the old agent.
        yield* until(Effect.map(agents.dials, (dials) => dials.length - dialsBefore >= 50))
        const results = yield* drive(fiber)
        const made = (yield* queries) - before
        yield* Effect.log(`burst of 50 validations of one workspace: ${made} lookup queries`)
        assert.strictEqual(made, 1)
        assert.isTrue(results.every((result) => result.outcome === "switched" && result.agentId === next.agentId))
        for (const chatId of chats) {
          deepStrictEqual((yield* store.get(chatId)).agentId, Option.some(next.agentId))
        }
      }))

    it.effect("a burst after a rebuild whose old agent refuses at once: 50 fast failures make 1 query", () =>
      Effect.gen(function*() {
        const connector = yield* replica
        const { current, workspaceId: w } = yield* runningWorkspace
        const chats: Array<ChatId> = []
        for (let i = 0; i < 50; i++) chats.push(yield* boundChat(w, current))
        const next = yield* rebuild(w, current, "fail")
        const before = yield* queries
        const results = yield* drive(
          yield* Effect.forkChild(
            Effect.forEach(chats, (chatId) => Effect.scoped(connector.connect(chatId)), { concurrency: "unbounded" })
          )
        )
        const made = (yield* queries) - before
        yield* Effect.log(`burst of 50 fast failures of one workspace: ${made} lookup queries`)
        assert.strictEqual(made, 1)
        assert.isTrue(results.every((result) => result.agentId === next.agentId))
      }))
  })

replicasSuite("PGlite", PgliteDatabase.layerPglite())

onPostgres(
  "Replicas on one database: PostgreSQL",
  (databaseUrl) => replicasSuite("PostgreSQL", PgDatabase.layerPg(databaseUrl))
)
