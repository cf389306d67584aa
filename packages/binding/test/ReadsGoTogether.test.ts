/**
 * Reads go together: `get`s that find every read slot busy are answered by
 * one query sent when a slot frees, and never by a query that started before
 * they were called.
 *
 * A gate in front of the SqlClient holds or fails the store's read queries
 * (the `WHERE chat_id IN (…)` of `get`), so each interleaving is built, not
 * hoped for: a held query has read the table and waits before it answers.
 */
import { assert, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import type { Database } from "@lazydial/binding"
import { BindingStore } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import type { ChatId } from "@lazydial/core"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import { SqlError, UnknownError } from "effect/sql/SqlError"
import { chatId, ioTurn, onPostgres, workspaceId } from "./fixtures.js"

/** What the gate does to the next read query. */
type Step =
  | { readonly _tag: "Hold"; readonly read: Deferred.Deferred<void>; readonly release: Deferred.Deferred<void> }
  | { readonly _tag: "Fail" }

const makeGate = () => {
  const steps: Array<Step> = []
  const hold = Effect.gen(function*() {
    const step = { _tag: "Hold", read: yield* Deferred.make<void>(), release: yield* Deferred.make<void>() } as const
    steps.push(step)
    return step
  })
  const fail = Effect.sync(() => {
    steps.push({ _tag: "Fail" })
  })
  // The store's read query is the only statement on the chat table that
  // selects with IN; createChild's and recordAgent's re-reads use `=`.
  const isRead = (strings: unknown) =>
    Array.isArray(strings) && strings.join("?").includes("FROM lazydial_chat_bindings WHERE ?")
  const wrap = (sql: SqlClient.SqlClient): SqlClient.SqlClient =>
    new Proxy(sql, {
      apply(target, self, args) {
        const statement = Reflect.apply(target, self, args) as Effect.Effect<unknown, SqlError>
        if (!isRead(args[0])) return statement
        return Effect.suspend(() => {
          const step = steps.shift()
          if (step === undefined) return statement
          if (step._tag === "Fail") {
            return Effect.fail(
              new SqlError({
                reason: new UnknownError({ cause: new Error("injected"), message: "injected: the server went away" })
              })
            )
          }
          return statement.pipe(
            Effect.tap(Deferred.succeed(step.read, undefined)),
            Effect.tap(Deferred.await(step.release))
          )
        })
      }
    })
  /** Forks `get` of `id`; returns once its query has read the table, while it is held until `release`. */
  const heldGet = (store: BindingStore.BindingStore["Service"], id: ChatId) =>
    Effect.gen(function*() {
      const step = yield* hold
      const fiber = yield* Effect.forkChild(store.get(id))
      yield* Deferred.await(step.read)
      return { fiber, release: Deferred.succeed(step.release, undefined) }
    })
  return { heldGet, fail, wrap }
}

const readQueries = Effect.map(Metric.value(BindingStore.readQueriesTotal), (state) => state.count)

/** A store over the gated SqlClient, in the test's Scope. */
const gatedStore = (options?: BindingStore.SqlOptions) =>
  Effect.gen(function*() {
    const gate = makeGate()
    const sql = yield* SqlClient.SqlClient
    const store = yield* BindingStore.makeSql(options).pipe(
      Effect.provideService(SqlClient.SqlClient, gate.wrap(sql))
    )
    return { gate, store }
  })

/**
 * Lets `fibers` run until each waits for its batch. Effect 4 has no
 * `Fiber.status`: these gets do no I/O before they wait (every read slot is
 * held), so a few turns of the event loop bring each to its wait; a get that
 * ended instead fails the test here.
 */
const suspended = (fibers: ReadonlyArray<Fiber.Fiber<unknown, unknown>>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 5; i++) yield* ioTurn
    assert.isTrue(fibers.every((fiber) => fiber.pollUnsafe() === undefined), "a get ended before the held query")
  })

const readsSuite = (name: string, database: Layer.Layer<SqlClient.SqlClient | Database.Migrated, unknown>) =>
  layer(database, { timeout: "60 seconds" })(`Reads go together: ${name}`, (it) => {
    it.effect("a get after a write reads the write, even while an older read of that chat is in flight", () =>
      Effect.gen(function*() {
        const { gate, store } = yield* gatedStore({ readSlots: 1 })
        const before = workspaceId()
        const after = workspaceId()
        const chat = yield* store.createChat({ workspaceId: before })
        // the older read's query has read the row, and has not answered yet
        const { fiber: older, release } = yield* gate.heldGet(store, chat.chatId)
        yield* store.setWorkspace(chat.chatId, Option.some(after))
        const queriesBefore = yield* readQueries
        const newer = yield* Effect.forkChild(store.get(chat.chatId))
        yield* suspended([newer])
        yield* release
        deepStrictEqual((yield* Fiber.join(older)).workspaceId, Option.some(before))
        deepStrictEqual((yield* Fiber.join(newer)).workspaceId, Option.some(after))
        assert.strictEqual((yield* readQueries) - queriesBefore, 1)
      }))

    it.effect("gets that wait go together: each gets its own row, a missing chat is ChatNotFound", () =>
      Effect.gen(function*() {
        const { gate, store } = yield* gatedStore({ readSlots: 1 })
        const a = yield* store.createChat({ workspaceId: workspaceId() })
        const b = yield* store.createChat({ workspaceId: workspaceId() })
        const missing = chatId()
        const { fiber: first, release } = yield* gate.heldGet(store, a.chatId)
        const queriesBefore = yield* readQueries
        const waiting = yield* Effect.forEach(
          [a.chatId, b.chatId, missing, a.chatId],
          (id) => Effect.forkChild(Effect.result(store.get(id)))
        )
        yield* suspended(waiting)
        yield* release
        deepStrictEqual(yield* Fiber.join(first), a)
        const [gotA, gotB, notFound, gotAAgain] = yield* Effect.forEach(waiting, Fiber.join)
        deepStrictEqual(gotA, Result.succeed(a))
        deepStrictEqual(gotB, Result.succeed(b))
        deepStrictEqual(gotAAgain, Result.succeed(a))
        assert.isTrue(notFound !== undefined && notFound._tag === "Failure" && notFound.failure._tag === "ChatNotFound")
        // the four waiting gets (three chats) made one query
        assert.strictEqual((yield* readQueries) - queriesBefore, 1)
      }))

    it.effect("a failed query fails every get of its batch with BindingStoreError; the next get succeeds", () =>
      Effect.gen(function*() {
        const { gate, store } = yield* gatedStore({ readSlots: 1 })
        const a = yield* store.createChat()
        const b = yield* store.createChat()
        const { fiber: first, release } = yield* gate.heldGet(store, a.chatId)
        yield* gate.fail
        const waiting = yield* Effect.forEach(
          [a.chatId, b.chatId],
          (id) => Effect.forkChild(Effect.exit(store.get(id)))
        )
        yield* suspended(waiting)
        yield* release
        deepStrictEqual(yield* Fiber.join(first), a)
        for (const exit of yield* Effect.forEach(waiting, Fiber.join)) {
          const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined
          assert.strictEqual(error?._tag, "BindingStoreError", String(exit))
          assert.include(error?.message, "injected")
        }
        deepStrictEqual(yield* store.get(b.chatId), b)
      }))

    it.effect("an interrupted get leaves the others of its batch unaffected, a reader of the same chat too", () =>
      Effect.gen(function*() {
        const { gate, store } = yield* gatedStore({ readSlots: 1 })
        const a = yield* store.createChat()
        const b = yield* store.createChat()
        const { fiber: first, release } = yield* gate.heldGet(store, b.chatId)
        const [quitter, sameChat, other] = yield* Effect.forEach(
          [a.chatId, a.chatId, b.chatId],
          (id) => Effect.forkChild(store.get(id))
        )
        yield* suspended([quitter!, sameChat!, other!])
        yield* Fiber.interrupt(quitter!)
        yield* release
        deepStrictEqual(yield* Fiber.join(first), b)
        deepStrictEqual(yield* Fiber.join(sameChat!), a)
        deepStrictEqual(yield* Fiber.join(other!), b)
      }))

    it.effect("a lone get does not wait for a busy slot when another is free", () =>
      Effect.gen(function*() {
        const { gate, store } = yield* gatedStore({ readSlots: 2 })
        const a = yield* store.createChat()
        const b = yield* store.createChat()
        const { fiber: first, release } = yield* gate.heldGet(store, a.chatId)
        // the first query is still held: the second answers on a slot of its own
        deepStrictEqual(yield* store.get(b.chatId), b)
        yield* release
        deepStrictEqual(yield* Fiber.join(first), a)
      }))

    it.effect("closing the store's Scope ends its reads: a waiting get is interrupted, never left hanging", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const { gate, store } = yield* Scope.provide(gatedStore({ readSlots: 1 }), scope)
        const a = yield* store.createChat()
        const { fiber: first, release } = yield* gate.heldGet(store, a.chatId)
        const waiting = yield* Effect.forkChild(store.get(a.chatId))
        yield* suspended([waiting])
        yield* Scope.close(scope, Exit.void)
        // every query runs in a fiber of the store's Scope: the held one is
        // ended with it, and the waiting get's batch is never sent
        yield* release
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(first)))
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(waiting)))
      }))

    it.effect("an interrupted lone get frees its read slot", () =>
      Effect.gen(function*() {
        const { gate, store } = yield* gatedStore({ readSlots: 1 })
        const a = yield* store.createChat()
        const b = yield* store.createChat()
        const { fiber: lone } = yield* gate.heldGet(store, a.chatId)
        yield* Fiber.interrupt(lone)
        deepStrictEqual(yield* store.get(b.chatId), b)
      }))
  })

readsSuite("PGlite", PgliteDatabase.layerPglite())

onPostgres("Reads go together: PostgreSQL", (databaseUrl) => readsSuite("PostgreSQL", PgDatabase.layerPg(databaseUrl)))

layer(PgliteDatabase.layerPglite(), { timeout: "60 seconds" })("Reads go together: PGlite's default", (it) => {
  it.effect("50 concurrent gets of 50 chats make at most 2 read queries (one slot), each gets its own row", () =>
    Effect.gen(function*() {
      const store = yield* BindingStore.makeSql()
      const chats = yield* Effect.forEach(
        Array.from({ length: 50 }),
        () => store.createChat({ workspaceId: workspaceId() })
      )
      const queriesBefore = yield* readQueries
      const rows = yield* Effect.forEach(chats, (chat) => store.get(chat.chatId), { concurrency: "unbounded" })
      assert.isAtMost((yield* readQueries) - queriesBefore, 2)
      deepStrictEqual(rows, chats)
    }))
})
