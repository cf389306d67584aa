/**
 * Every database call of this package has a client-side deadline that holds
 * when the server is hung (issue 17: with PostgreSQL stopped, a request that
 * had an open pool connection waited for ever). On TestClock over a database
 * that stops answering; then, with scripts/test-postgres.sh, on a real
 * PostgreSQL whose backends and postmaster are stopped with SIGSTOP.
 */
import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { AgentDirectory, BindingStore, ChatConnector, Database, RebuildNotices } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import { type ChatId, type CurrentAgent, LazyDial } from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as SqlClient from "effect/sql/SqlClient"
import * as TestClock from "effect/testing/TestClock"
import * as fs from "node:fs"
import { build, failureOf, onPostgres, poll, workspaceId } from "./fixtures.js"

/** Whether the database of `hanging` answers. */
class Hung extends Context.Service<Hung, { value: boolean }>()("test/Hung") {}

/**
 * `database` with its `SqlClient`'s statements and transactions never
 * answering while `Hung` is set, as a server that stopped: nothing fails,
 * nothing comes back.
 */
const hanging = <A, E>(
  database: Layer.Layer<A | SqlClient.SqlClient, E>
): Layer.Layer<A | SqlClient.SqlClient | Hung, E> =>
  Layer.flatMap(database, (context) => {
    const hung = { value: false }
    const sql = Context.get(context, SqlClient.SqlClient)
    const stall = <A, X, R>(effect: Effect.Effect<A, X, R>) => Effect.suspend(() => hung.value ? Effect.never : effect)
    const client = new Proxy(sql, {
      apply(target, self, args) {
        const statement: unknown = Reflect.apply(target, self, args)
        return Effect.isEffect(statement) ? stall(statement) : statement
      },
      get(target, key, receiver) {
        if (key !== "withTransaction") return Reflect.get(target, key, receiver)
        return <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => stall(target.withTransaction(effect))
      }
    })
    return Layer.succeedContext(
      Context.add(context, SqlClient.SqlClient, client).pipe(Context.add(Hung, hung))
    )
  })

const deadline = Duration.seconds(2)

const services = Layer.mergeAll(
  BindingStore.layerSql({ readSlots: 1 }),
  AgentDirectory.layerSql({ batchWindow: 0 }),
  RebuildNotices.layerSql
).pipe(
  Layer.provideMerge(Layer.succeed(Database.Deadlines, { query: deadline, migration: Duration.seconds(40) })),
  Layer.provideMerge(hanging(PgliteDatabase.layerPglite()))
)

describe("Deadlines", () => {
  it.effect(
    "a database that stops answering: every store and directory call fails at the query deadline with a typed error naming the call, none before; the same Layers work once it answers again",
    () =>
      Effect.gen(function*() {
        const store = yield* BindingStore.BindingStore
        const directory = yield* AgentDirectory.AgentDirectory
        const hung = yield* Hung
        const w = workspaceId()
        const current = build()
        yield* directory.recordBuild(w, current)
        const chat = yield* store.createChat({ workspaceId: w })
        const bound = yield* store.createChat({ workspaceId: w })
        yield* store.recordAgent(bound.chatId, { expected: { workspaceId: w, agentId: Option.none() }, current })

        hung.value = true
        const calls: ReadonlyArray<
          readonly [string, Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>]
        > = [
          ["BindingStore.get", store.get(chat.chatId)],
          // with one read slot, a second read waits for it: the wait counts too
          ["BindingStore.get", store.get(bound.chatId)],
          ["BindingStore.createChat", store.createChat({ workspaceId: w })],
          ["BindingStore.createChild", store.createChild(bound.chatId)],
          ["BindingStore.setWorkspace", store.setWorkspace(chat.chatId, Option.some(w))],
          [
            "BindingStore.recordAgent",
            store.recordAgent(chat.chatId, { expected: { workspaceId: w, agentId: Option.none() }, current })
          ],
          ["AgentDirectory.recordBuild", directory.recordBuild(w, build())],
          ["AgentDirectory.stopWorkspace", directory.stopWorkspace(w)],
          ["AgentDirectory.current", directory.current(w)]
        ]
        const fibers = yield* Effect.forEach(calls, ([, call]) => Effect.forkChild(call))
        // every call has started, and its deadline runs from the same instant
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow
        yield* TestClock.adjust(Duration.subtract(deadline, Duration.millis(1)))
        for (const [i, fiber] of fibers.entries()) {
          assert.isTrue(Option.isNone(yield* poll(fiber)), `${calls[i]![0]} ended before the deadline`)
        }
        yield* TestClock.adjust(Duration.millis(1))
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow
        for (const [i, fiber] of fibers.entries()) {
          const [operation] = calls[i]!
          const exit = yield* Fiber.await(fiber)
          const error = Option.getOrUndefined(failureOf(exit))
          assert.isDefined(error, `${operation}: ${String(exit)}`)
          // a lookup's fault is core's AgentLookupError, as every other lookup fault
          assert.strictEqual(
            error!._tag,
            operation === "AgentDirectory.current" ? "AgentLookupError" : "BindingStoreError"
          )
          if (operation !== "AgentDirectory.current") assert.include(error!.message, `${operation} failed`)
          assert.include(error!.message, "no answer from the database within 2s")
        }

        // A read that was waiting for the read slot went out when the slot
        // freed, into the hung database: it holds the slot until its own
        // deadline. Then the same Layers serve again.
        hung.value = false
        yield* TestClock.adjust(deadline)
        deepStrictEqual((yield* store.get(bound.chatId)).agentId, Option.some(current.agentId))
        deepStrictEqual(yield* directory.current(w), Option.some(current))
      }).pipe(Effect.provide(services))
  )

  it.effect(
    "a turn on a database that stops answering fails with BindingStoreError at the query deadline, long before its dial timeout",
    () =>
      Effect.gen(function*() {
        const store = yield* BindingStore.BindingStore
        const connector = yield* ChatConnector.ChatConnector
        const agents = yield* TestAgents
        const hung = yield* Hung
        const w = workspaceId()
        const current = build()
        yield* agents.setCurrent(w, Option.some(current))
        yield* agents.script(current.agentId, { result: "connect" })
        yield* (yield* AgentDirectory.AgentDirectory).recordBuild(w, current)
        const chat = yield* store.createChat({ workspaceId: w })
        assert.strictEqual((yield* Effect.scoped(connector.connect(chat.chatId))).outcome, "lazy_bind")
        hung.value = true
        const fiber = yield* Effect.forkChild(Effect.scoped(connector.connect(chat.chatId)))
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow
        yield* TestClock.adjust(deadline)
        const exit = yield* poll(fiber)
        assert.isTrue(Option.isSome(exit), "the turn outlived the query deadline")
        const error = Option.flatMap(exit, failureOf)
        assert.strictEqual(Option.getOrUndefined(error)?._tag, "BindingStoreError")
        hung.value = false
      }).pipe(
        Effect.provide(
          ChatConnector.layer({ dialTimeout: "30 seconds" }).pipe(
            Layer.provideMerge(LazyDial.layer({ delay: "5 seconds" })),
            Layer.provideMerge(services),
            Layer.provideMerge(layerTest)
          )
        )
      )
  )

  it.effect("Database.withDeadline bounds a call of one's own by the same deadline, with a BindingStoreError naming it", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(Database.withDeadline("Service.ready")(Effect.never))
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      yield* TestClock.adjust(Duration.subtract(deadline, Duration.millis(1)))
      assert.isTrue(Option.isNone(yield* poll(fiber)))
      yield* TestClock.adjust(Duration.millis(1))
      const error = Option.getOrUndefined(failureOf(yield* Fiber.await(fiber)))
      assert.strictEqual(error?._tag, "BindingStoreError")
      assert.include(error?.message, "Service.ready failed: no answer from the database within 2s")
      // a call that answers in time is untouched
      assert.strictEqual(yield* Database.withDeadline("Service.ready")(Effect.succeed(7)), 7)
    }).pipe(Effect.provideService(Database.Deadlines, { query: deadline, migration: deadline })))

  it.effect("without a driver Layer's settings, a call's deadline is 10 s, the migrations' 40 s", () =>
    Effect.gen(function*() {
      const deadlines = yield* Database.Deadlines
      deepStrictEqual([Duration.toMillis(deadlines.query), Duration.toMillis(deadlines.migration)], [10_000, 40_000])
      deepStrictEqual(Duration.toMillis(Database.defaults.queryDeadline), 10_000)
    }))
})

// ---- a real PostgreSQL, hung with SIGSTOP -------------------------------------------

/** Signals a backend; one that exited since it was listed needs no signal (ESRCH), and a CI run met that. */
const signal = (pid: number, name: "SIGSTOP" | "SIGCONT") => {
  try {
    process.kill(pid, name)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error
  }
}

const application = "lazydial-deadline"

/** The parent of a process: for a backend, the postmaster. */
const parentOf = (pid: number): number =>
  Number(/^PPid:\s+(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1])

onPostgres("Deadlines on PostgreSQL", (url) => {
  describe("Deadlines on PostgreSQL", () => {
    it.live(
      "backends and postmaster stopped (SIGSTOP): every call with an open pool connection, or waiting for one, fails within the deadline; after SIGCONT the same Layers work again",
      () =>
        Effect.gen(function*() {
          const store = yield* BindingStore.BindingStore
          const directory = yield* AgentDirectory.AgentDirectory
          const operator = yield* Effect.map(
            Layer.build(PgDatabase.layerPg(url, { applicationName: "lazydial-deadline-operator" })),
            (context) => Context.get(context, SqlClient.SqlClient)
          )
          // open a few pool connections, and leave rows to read and write
          const w = workspaceId()
          const current = build()
          yield* directory.recordBuild(w, current)
          const chats: Array<ChatId> = []
          yield* Effect.forEach(Array.from({ length: 6 }), () =>
            Effect.flatMap(store.createChat({ workspaceId: w }), (chat) =>
              Effect.sync(() => chats.push(chat.chatId))), {
            concurrency: "unbounded"
          })
          const backends = (yield* operator<{ readonly pid: number }>`SELECT pid FROM pg_stat_activity
WHERE application_name = ${application}`).map((row) =>
            row.pid
          )
          assert.isAbove(backends.length, 0)
          const stopped = [...backends, parentOf(backends[0]!)]
          const builds = [current]
          const attempted = (next: CurrentAgent) => {
            builds.push(next)
            return next
          }
          // SIGCONT whatever happens: a server left stopped would hang the rest of the run
          yield* Effect.acquireRelease(
            Effect.sync(() => stopped.forEach((pid) => signal(pid, "SIGSTOP"))),
            () => Effect.sync(() => stopped.forEach((pid) => signal(pid, "SIGCONT")))
          )
          // The pool may have been opening one more connection as the backends were listed: list them again
          // (the operator's own backend still runs) until none is left running.
          for (let round = 0; round < 5; round++) {
            const late = (yield* operator<{ readonly pid: number }>`SELECT pid FROM pg_stat_activity
WHERE application_name = ${application}`).map((row) => row.pid).filter((pid) => !stopped.includes(pid))
            if (late.length === 0) break
            for (const pid of late) {
              stopped.push(pid)
              signal(pid, "SIGSTOP")
            }
          }

          const calls: ReadonlyArray<readonly [string, Effect.Effect<unknown, { readonly _tag: string }>]> = [
            ["BindingStore.get", store.get(chats[0]!)],
            ["BindingStore.createChat", store.createChat({ workspaceId: w })],
            [
              "BindingStore.recordAgent",
              store.recordAgent(chats[1]!, { expected: { workspaceId: w, agentId: Option.none() }, current })
            ],
            ["AgentDirectory.current", directory.current(w)],
            ["AgentDirectory.recordBuild", Effect.suspend(() => directory.recordBuild(w, attempted(build())))]
          ]
          // more calls than connections: some have an open connection, the rest wait for one
          const timed = yield* Effect.forEach([...calls, ...calls, ...calls], ([operation, call]) =>
            Effect.gen(function*() {
              const started = performance.now()
              const exit = yield* Effect.exit(call)
              return { operation, exit, millis: performance.now() - started }
            }), { concurrency: "unbounded" })
          for (const { exit, millis, operation } of timed) {
            assert.isTrue(Exit.isFailure(exit), `${operation} succeeded on a stopped server`)
            const tag = Option.getOrUndefined(failureOf(exit))?._tag
            assert.strictEqual(tag, operation === "AgentDirectory.current" ? "AgentLookupError" : "BindingStoreError")
            assert.isAtLeast(millis, 950, operation)
            assert.isAtMost(millis, 2_500, `${operation} took ${millis.toFixed(0)} ms against a 1 s deadline`)
          }
          console.log(
            `stopped server: ${timed.length} calls failed after ${
              Math.min(...timed.map((t) => t.millis)).toFixed(0)
            } to ${
              Math.max(...timed.map((t) => t.millis)).toFixed(0)
            } ms (deadline 1 s), ${backends.length} backends`
          )

          // SIGCONT, then the same Layers serve again: no connection is left busy or broken
          yield* Effect.sync(() =>
            stopped.forEach((pid) =>
              signal(pid, "SIGCONT")
            )
          )
          const resumed = performance.now()
          const eventually = <A, E>(effect: Effect.Effect<A, E>) =>
            Effect.retry(effect, { schedule: Schedule.spaced("100 millis"), times: 100 })
          for (const chatId of chats) yield* eventually(store.get(chatId))
          // A write that failed at its deadline had been sent: the server may
          // still run it once it resumes. Its outcome is unknown, as with any
          // timeout; the directory names one of the builds it was given.
          const latest = yield* eventually(directory.current(w))
          assert.isTrue(
            Option.isSome(latest) && builds.some((b) => b.buildId === latest.value.buildId),
            "the directory names a build nobody recorded"
          )
          const committed = yield* operator<{ readonly n: number }>`SELECT count(*)::int AS n
FROM lazydial_workspace_builds WHERE workspace_id = ${w}`
          console.log(
            `after SIGCONT: every call answered again within ${(performance.now() - resumed).toFixed(0)} ms; ` +
              `${committed[0]!.n - 1} of the ${builds.length - 1} builds whose recordBuild failed at its deadline ` +
              "were committed by the resumed server"
          )
        }).pipe(
          Effect.scoped,
          Effect.provide(
            Layer.mergeAll(BindingStore.layerSql(), AgentDirectory.layerSql({ batchWindow: 0 })).pipe(
              Layer.provideMerge(PgDatabase.layerPg(url, { applicationName: application, queryDeadline: "1 second" }))
            )
          )
        ),
      60_000
    )
  })
})
