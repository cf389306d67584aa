/**
 * Real faults on a real PostgreSQL, run by scripts/test-postgres.sh (they need
 * LAZYDIAL_TEST_DATABASE_URL, and the stop/start/restart commands the script
 * exports). These run on the live clock: the faults are real processes.
 *
 * - `createChild`, whose backend is terminated inside its transaction: the
 *   failed ROLLBACK is a BindingStoreError, not a defect, and no row is left.
 * - A repair write whose backend is terminated (`pg_terminate_backend`) while
 *   it waits on a row lock: the turn fails with a BindingStoreError, the row
 *   keeps its previous build and agent, and the next turn repairs it.
 * - PostgreSQL stopped for a while, and restarted, under a running workload:
 *   turns fail with a BindingStoreError that says what failed during the
 *   outage, and succeed again afterwards on the same Layers: no restart of
 *   the process, no reconnect by hand.
 */
import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { BindingStore, ChatConnector } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import { type ChatId, LazyDial } from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { exec } from "node:child_process"
import { build, chatId, holdBuild, onPostgres, requireForPostgres, workspaceId } from "./fixtures.js"

const stopCommand = process.env["LAZYDIAL_TEST_PG_STOP_COMMAND"]
const startCommand = process.env["LAZYDIAL_TEST_PG_START_COMMAND"]
const restartCommand = process.env["LAZYDIAL_TEST_PG_RESTART_COMMAND"]
const outageCommands = Boolean(stopCommand && startCommand && restartCommand)
requireForPostgres("LAZYDIAL_TEST_PG_STOP/START/RESTART_COMMAND", outageCommands)

const writerApp = "lazydial-faults-writer"

const turnPath = (url: string) =>
  ChatConnector.layer({ dialTimeout: "10 seconds" }).pipe(
    Layer.provideMerge(LazyDial.layer({ delay: "5 seconds" })),
    Layer.provideMerge(
      BindingStore.layerSql().pipe(
        Layer.provideMerge(PgDatabase.layerPg(url, { applicationName: writerApp, connectTimeout: "2 seconds" }))
      )
    ),
    Layer.provideMerge(layerTest)
  )

/** A second client, for the fault's side of the test: locks, pg_stat_activity, pg_terminate_backend. */
const operator = (url: string) =>
  Effect.map(
    Layer.build(PgDatabase.layerPg(url, { applicationName: "lazydial-faults-operator" })),
    (context) => Context.get(context, SqlClient.SqlClient)
  )

/** The backend of the writer's pool that waits on a lock, running a statement like `query`. */
const waitingBackend = (sql: SqlClient.SqlClient, query: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200; i++) {
      const waiting = yield* sql<{ readonly pid: number }>`SELECT pid FROM pg_stat_activity
WHERE application_name = ${writerApp} AND wait_event_type = 'Lock' AND query LIKE ${query}`
      if (waiting[0] !== undefined) return waiting[0].pid
      yield* Effect.sleep("25 millis")
    }
    return yield* Effect.die(new Error(`no statement like ${query} ever waited on a lock`))
  })

/**
 * Runs `victim` while another session holds a lock it needs (`hold`, run in
 * an open transaction of `admin`), terminates the victim's backend
 * (`pg_terminate_backend`) once it waits on that lock, then rolls the holder
 * back. Answers how the victim ended.
 */
const terminatedWhileWaiting = <A, E>(
  admin: SqlClient.SqlClient,
  hold: Effect.Effect<unknown, SqlError>,
  victim: Effect.Effect<A, E>,
  query: string
) =>
  Effect.gen(function*() {
    const held = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const holder = yield* Effect.forkChild(
      admin.withTransaction(Effect.gen(function*() {
        yield* hold
        yield* Deferred.succeed(held, undefined)
        yield* Deferred.await(release)
        return yield* Effect.fail("roll the holder back")
      })).pipe(Effect.ignore)
    )
    yield* Deferred.await(held)
    const running = yield* Effect.forkChild(victim)
    const pid = yield* waitingBackend(admin, query)
    yield* admin`SELECT pg_terminate_backend(${pid})`
    const exit = yield* Fiber.await(running)
    yield* Deferred.succeed(release, undefined)
    yield* Fiber.join(holder)
    return exit
  })

/** Asserts that `exit` failed with a BindingStoreError of `operation`, not a defect; answers its message. */
const storeErrorOf = (
  exit: Exit.Exit<unknown, { readonly _tag: string; readonly message: string }>,
  operation: string
) => {
  assert.isTrue(Exit.isFailure(exit), "the operation succeeded")
  const failure = Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()
  assert.isTrue(Option.isSome(failure), `not a typed failure: ${Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""}`)
  const error = Option.getOrThrow(failure)
  assert.strictEqual(error._tag, "BindingStoreError")
  assert.include(error.message, operation)
  return error.message
}

const shell = (command: string) =>
  Effect.callback<string, Error>((resume) => {
    exec(command, { timeout: 60_000 }, (error, stdout, stderr) => {
      resume(
        error === null ? Effect.succeed(stdout) : Effect.fail(new Error(`${command}: ${error.message}\n${stderr}`))
      )
    })
  })

/** A running workspace with `n` chats bound to its agent by a first turn. */
const boundChats = (n: number) =>
  Effect.gen(function*() {
    const agents = yield* TestAgents
    const store = yield* BindingStore.BindingStore
    const connector = yield* ChatConnector.ChatConnector
    const w = workspaceId()
    const current = build()
    yield* agents.setCurrent(w, Option.some(current))
    yield* holdBuild(w, current)
    yield* agents.script(current.agentId, { result: "connect" })
    const chats: Array<ChatId> = []
    for (let i = 0; i < n; i++) {
      const chat = yield* store.createChat({ workspaceId: w })
      yield* Effect.scoped(connector.connect(chat.chatId))
      chats.push(chat.chatId)
    }
    return { workspaceId: w, current, chats }
  })

interface TurnRecord {
  readonly chatId: ChatId
  readonly startedAt: number
  readonly endedAt: number
  readonly exit: Exit.Exit<unknown, { readonly _tag: string; readonly message: string }>
}

/**
 * Turns of every chat, back to back, while `fault` runs; then until every chat
 * has succeeded again after the fault (at most `recoverWithin` ms).
 */
const workloadAround = <E>(chats: ReadonlyArray<ChatId>, fault: Effect.Effect<unknown, E>, recoverWithin: number) =>
  Effect.gen(function*() {
    const connector = yield* ChatConnector.ChatConnector
    const records: Array<TurnRecord> = []
    let stopping = false
    const loop = (chatId: ChatId) =>
      Effect.gen(function*() {
        while (!stopping) {
          const startedAt = Date.now()
          const exit = yield* Effect.exit(Effect.scoped(connector.connect(chatId)))
          records.push({ chatId, startedAt, endedAt: Date.now(), exit })
          yield* Effect.sleep("20 millis")
        }
      })
    const workers = yield* Effect.forEach(chats, (chatId) => Effect.forkChild(loop(chatId)))
    yield* Effect.sleep("300 millis")
    const faultStartedAt = Date.now()
    yield* fault
    const faultEndedAt = Date.now()
    const recovered = (chatId: ChatId) =>
      records.some((r) => r.chatId === chatId && r.startedAt >= faultEndedAt && Exit.isSuccess(r.exit))
    while (!chats.every(recovered) && Date.now() - faultEndedAt < recoverWithin) yield* Effect.sleep("50 millis")
    stopping = true
    yield* Effect.forEach(workers, Fiber.join)
    return { records, faultStartedAt, faultEndedAt, recovered: chats.every(recovered) }
  })

const checkWorkload = (
  result: Effect.Success<ReturnType<typeof workloadAround>>,
  options: { readonly expectFailures: boolean }
) => {
  const failures = result.records.filter((r) => Exit.isFailure(r.exit))
  if (options.expectFailures) assert.isAbove(failures.length, 0, "no turn ran into the outage")
  for (const record of failures) {
    if (Exit.isSuccess(record.exit)) continue
    const failure = Cause.findErrorOption(record.exit.cause)
    assert.isTrue(Option.isSome(failure), `a turn died: ${Cause.pretty(record.exit.cause)}`)
    if (Option.isSome(failure)) {
      assert.strictEqual(failure.value._tag, "BindingStoreError", failure.value.message)
      assert.include(failure.value.message, "BindingStore.")
    }
  }
  for (const record of result.records) {
    assert.isAtMost(record.endedAt - record.startedAt, 10_000 + 1_000, "a turn outlived the dial timeout")
  }
  assert.isTrue(result.recovered, "some chats never succeeded again after the fault")
  const messages = new Set(
    failures.flatMap((r) =>
      Exit.isFailure(r.exit) ? Option.toArray(Option.map(Cause.findErrorOption(r.exit.cause), (e) => e.message)) : []
    )
  )
  console.log(`errors seen: ${[...messages].slice(0, 4).join(" | ")}`)
  return failures.length
}

onPostgres("PostgreSQL faults", (url) => {
  describe("PostgreSQL faults", () => {
    it.live(
      "pg_terminate_backend during a repair write: the turn fails with BindingStoreError, the row keeps its agent, the next turn repairs it",
      () =>
        Effect.gen(function*() {
          const admin = yield* operator(url)
          const agents = yield* TestAgents
          const store = yield* BindingStore.BindingStore
          const connector = yield* ChatConnector.ChatConnector
          const { chats, current, workspaceId: w } = yield* boundChats(1)
          const chatId = chats[0]!
          const before = yield* store.get(chatId)

          // A rebuild: the old agent refuses, so the next turn switches and writes a repair.
          const next = build()
          yield* agents.setCurrent(w, Option.some(next))
          yield* holdBuild(w, next)
          yield* agents.script(next.agentId, { result: "connect" })
          yield* agents.script(current.agentId, { result: "fail" })

          // Another session holds the row, so the repair write waits on its lock.
          const exit = yield* terminatedWhileWaiting(
            admin,
            admin`SELECT chat_id FROM lazydial_chat_bindings WHERE chat_id = ${chatId} FOR UPDATE`,
            Effect.scoped(connector.connect(chatId)),
            "UPDATE lazydial_chat_bindings%"
          )
          console.log(`terminated repair write: ${storeErrorOf(exit, "BindingStore.recordAgent")}`)
          // The pool may hand the killed connection out once more before it
          // notices the socket closed: that statement fails with a
          // BindingStoreError ("Connection terminated unexpectedly"), and the
          // pool drops the connection. So each check below is allowed a retry.
          let retries = 0
          const afterTheKill = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
            Effect.retry(Effect.tapError(effect, () => Effect.sync(() => retries++)), {
              times: 3,
              while: (error) => error._tag === "BindingStoreError"
            })

          // The row is as it was: the terminated write wrote nothing.
          deepStrictEqual(yield* afterTheKill(store.get(chatId)), before)
          assert.strictEqual((yield* agents.unreleased).length, 0)

          // The next turn repairs the binding, on the same pool.
          const repaired = yield* afterTheKill(Effect.scoped(connector.connect(chatId)))
          console.log(
            `after the kill: ${retries} statement(s) failed on the dead connection before the pool dropped it`
          )
          assert.strictEqual(repaired.outcome, "switched")
          assert.strictEqual(repaired.write, "recorded")
          const row = yield* store.get(chatId)
          deepStrictEqual(row.agentId, Option.some(next.agentId))
          deepStrictEqual(row.buildId, Option.some(next.buildId))
          assert.strictEqual(row.version, before.version + 1)
        }).pipe(Effect.provide(turnPath(url)), Effect.scoped),
      60_000
    )

    it.live(
      "pg_terminate_backend during createChild's transaction: a BindingStoreError (not a defect from the failed ROLLBACK), and no row",
      () =>
        Effect.gen(function*() {
          const admin = yield* operator(url)
          const store = yield* BindingStore.BindingStore
          const parent = yield* store.createChat({ workspaceId: workspaceId() })
          const child = chatId()

          // Another session inserts the child's id and keeps its transaction
          // open, so createChild's INSERT waits on it, inside its transaction.
          const exit = yield* terminatedWhileWaiting(
            admin,
            admin`INSERT INTO lazydial_chat_bindings (chat_id, updated_at) VALUES (${child}, now())`,
            store.createChild(parent.chatId, { chatId: child }),
            "INSERT INTO lazydial_chat_bindings%"
          )
          console.log(`terminated createChild: ${storeErrorOf(exit, "BindingStore.createChild")}`)
          const rows = yield* admin<{ readonly n: number }>`SELECT count(*)::int AS n FROM lazydial_chat_bindings
WHERE chat_id = ${child}`
          assert.strictEqual(rows[0]!.n, 0, "the child was written")
        }).pipe(Effect.provide(turnPath(url)), Effect.scoped),
      60_000
    )

    describe.skipIf(!outageCommands)(
      outageCommands
        ? "outages"
        : "outages (skipped: no LAZYDIAL_TEST_PG_STOP/START/RESTART_COMMAND; scripts/test-postgres.sh sets them)",
      () => {
        const stop = stopCommand ?? ""
        const start = startCommand ?? ""
        const restart = restartCommand ?? ""
        it.live(
          "PostgreSQL stopped for 2 s under load: turns fail with BindingStoreError during the outage, and recover on the same Layers",
          () =>
            Effect.gen(function*() {
              const agents = yield* TestAgents
              const { chats } = yield* boundChats(8)
              const result = yield* workloadAround(
                chats,
                Effect.andThen(shell(stop), Effect.andThen(Effect.sleep("2 seconds"), shell(start))),
                30_000
              )
              const failures = checkWorkload(result, { expectFailures: true })
              console.log(
                `PostgreSQL outage: ${result.records.length} turns, ${failures} failed during the ` +
                  `${result.faultEndedAt - result.faultStartedAt} ms outage, all ${chats.length} chats recovered`
              )
              assert.strictEqual((yield* agents.unreleased).length, 0)
            }).pipe(Effect.provide(turnPath(url))),
          90_000
        )

        it.live(
          "PostgreSQL restarted under load: every chat recovers on the same Layers",
          () =>
            Effect.gen(function*() {
              const agents = yield* TestAgents
              const { chats } = yield* boundChats(8)
              const result = yield* workloadAround(chats, shell(restart), 30_000)
              const failures = checkWorkload(result, { expectFailures: false })
              console.log(
                `PostgreSQL restart: ${result.records.length} turns, ${failures} failed during the ` +
                  `${result.faultEndedAt - result.faultStartedAt} ms restart, all ${chats.length} chats recovered`
              )
              assert.strictEqual((yield* agents.unreleased).length, 0)
            }).pipe(Effect.provide(turnPath(url))),
          90_000
        )
      }
    )
  })
})
