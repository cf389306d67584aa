import { assert, layer } from "@effect/vitest"
import { assertSome, deepStrictEqual } from "@effect/vitest/utils"
import type { Database } from "@lazydial/binding"
import { AgentDirectory } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import { AgentLookup, type AgentLookupError, type CurrentAgent } from "@lazydial/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as SqlClient from "effect/sql/SqlClient"
import * as TestClock from "effect/testing/TestClock"
import { build, countingStatements, drive, onPostgres, workspaceId } from "./fixtures.js"

const queries = Metric.value(AgentDirectory.queriesTotal).pipe(Effect.map((state) => state.count))

/** Runs `effect`, and answers how many lookup queries it made. */
const countQueries = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const before = yield* queries
    const result = yield* effect
    return { result, queries: (yield* queries) - before }
  })

const directoryContract = <E>(name: string, database: Layer.Layer<SqlClient.SqlClient | Database.Migrated, E>) =>
  layer(
    AgentDirectory.layerSql({ batchWindow: 0 }).pipe(Layer.provideMerge(countingStatements(database))),
    { timeout: "60 seconds" }
  )(
    `AgentDirectory: ${name}`,
    (it) => {
      it.effect("the current agent is the agent of the latest build, with that build", () =>
        Effect.gen(function*() {
          const directory = yield* AgentDirectory.AgentDirectory
          const w = workspaceId()
          const first = build()
          const second = build()
          assert.strictEqual(yield* directory.recordBuild(w, first), 1)
          assert.strictEqual(yield* directory.recordBuild(w, second), 2)
          assertSome(yield* directory.current(w), second)
          const lookup = yield* AgentLookup.AgentLookup
          assertSome(yield* lookup.current(w), second)
        }))

      it.effect("a stopped workspace, and an unknown one, have no current agent", () =>
        Effect.gen(function*() {
          const directory = yield* AgentDirectory.AgentDirectory
          const w = workspaceId()
          yield* directory.recordBuild(w, build())
          assert.strictEqual(yield* directory.stopWorkspace(w), 2)
          assert.isTrue(Option.isNone(yield* directory.current(w)))
          assert.isTrue(Option.isNone(yield* directory.current(workspaceId())))
          const restarted = build()
          yield* directory.recordBuild(w, restarted)
          assertSome(yield* directory.current(w), restarted)
        }))

      it.effect("100 concurrent lookups of one workspace make 1 query", () =>
        Effect.gen(function*() {
          const directory = yield* AgentDirectory.AgentDirectory
          const w = workspaceId()
          const latest = build()
          yield* directory.recordBuild(w, latest)
          const { queries: made, result } = yield* countQueries(
            Effect.forEach(Array.from({ length: 100 }), () => directory.current(w), { concurrency: "unbounded" })
          )
          assert.strictEqual(made, 1)
          assert.isTrue(result.every((answer) => Option.getOrThrow(answer).agentId === latest.agentId))
        }))

      it.effect("concurrent lookups of 20 workspaces are batched into 1 query, each with its own answer", () =>
        Effect.gen(function*() {
          const directory = yield* AgentDirectory.AgentDirectory
          const fleet = Array.from({ length: 20 }, () => ({ w: workspaceId(), latest: build() }))
          yield* Effect.forEach(fleet, ({ latest, w }) => directory.recordBuild(w, latest))
          const { queries: made, result } = yield* countQueries(
            Effect.forEach(fleet, ({ w }) => directory.current(w), { concurrency: "unbounded" })
          )
          assert.strictEqual(made, 1)
          assert.strictEqual(result.length, fleet.length)
          result.forEach((answer, i) => assertSome(answer, fleet[i]!.latest))
        }))

      it.effect("the default 5 ms window batches lookups that arrive within it into 1 query", () =>
        Effect.gen(function*() {
          const directory = yield* AgentDirectory.makeSql()
          const fleet = Array.from({ length: 10 }, () => ({ w: workspaceId(), latest: build() }))
          yield* Effect.forEach(fleet, ({ latest, w }) => directory.recordBuild(w, latest))
          const before = yield* queries
          const fibers: Array<Fiber.Fiber<Option.Option<CurrentAgent>, AgentLookupError>> = []
          for (const { w } of fleet) {
            fibers.push(yield* Effect.forkChild(directory.current(w)))
            fibers.push(yield* Effect.forkChild(directory.current(w)))
            yield* TestClock.adjust("400 micros")
          }
          yield* TestClock.adjust("1 millis")
          const answers = yield* Effect.forEach(fibers, (fiber) => drive(fiber))
          assert.strictEqual((yield* queries) - before, 1)
          const firsts = answers.filter((_, i) => i % 2 === 0)
          assert.strictEqual(firsts.length, fleet.length)
          firsts.forEach((answer, i) => assertSome(answer, fleet[i]!.latest))
        }))

      it.effect("a batch window out of range fails the directory with InvalidOption", () =>
        Effect.gen(function*() {
          for (const bad of ["-1 millis", "2 seconds", "soon"]) {
            const error = yield* Effect.flip(AgentDirectory.makeSql({ batchWindow: bad as Duration.Input }))
            assert.strictEqual(error._tag, "InvalidOption")
            assert.include(error.message, "batchWindow")
          }
        }))

      it.effect("answers are never cached: a lookup after a rebuild sees the new agent", () =>
        Effect.gen(function*() {
          const directory = yield* AgentDirectory.AgentDirectory
          const w = workspaceId()
          yield* directory.recordBuild(w, build())
          const { queries: made } = yield* countQueries(Effect.all([directory.current(w), directory.current(w)]))
          assert.strictEqual(made, 2)
          const rebuilt = build()
          yield* directory.recordBuild(w, rebuilt)
          deepStrictEqual(yield* directory.current(w), Option.some(rebuilt))
        }))
    }
  )

directoryContract("PGlite", PgliteDatabase.layerPglite())

onPostgres(
  "AgentDirectory: PostgreSQL",
  (databaseUrl) => directoryContract("PostgreSQL", PgDatabase.layerPg(databaseUrl))
)
