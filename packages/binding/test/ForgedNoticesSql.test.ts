/**
 * The attack through a real database, on PGlite and, with
 * scripts/test-postgres.sh, on PostgreSQL (there from a role that may only
 * connect, as in the issue): forged payloads sent with `pg_notify`, 50,000
 * junk payloads in one statement while the event loop is watched, and the
 * migration that makes a chat's agent belong to its workspace, run on a
 * database that the attack already touched.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import type { Database } from "@lazydial/binding"
import { AgentDirectory, BindingStore, ChatConnector, RebuildNotices } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import { AgentLookup, type ChatId, type CurrentAgent, LazyDial, type WorkspaceId } from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import * as TestClock from "effect/testing/TestClock"
import * as migrations from "../src/internal/migrations.js"
import * as internalPglite from "../src/internal/pglite.js"
import { build, buildId, chatId, countingStatements, drive, onPostgres, until, workspaceId } from "./fixtures.js"

/**
 * How late a 5 ms timer fires, at worst, from now until `stop`: what a request
 * such as `/health` would wait for the event loop. The gap up to `stop` itself
 * counts too, so a block that no tick has followed yet is not missed.
 */
const loopProbe = () => {
  const every = 5
  let last = performance.now()
  let max = 0
  let ticks = 0
  const timer = setInterval(() => {
    const now = performance.now()
    max = Math.max(max, now - last - every)
    last = now
    ticks++
  }, every)
  return {
    stop: () => {
      clearInterval(timer)
      return { maxDelayMillis: Math.max(max, performance.now() - last - every), ticks }
    }
  }
}

const count = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)

/** The payloads of the attack, in the earlier JSON form and others, aimed at `v`. */
const forged = (v: WorkspaceId, theirs: CurrentAgent, retired: CurrentAgent): ReadonlyArray<string> => [
  JSON.stringify({ workspaceId: v, order: 900_000_000, buildId: theirs.buildId, agentId: theirs.agentId }),
  JSON.stringify({ workspaceId: v, order: 900_000_001, buildId: buildId(), agentId: theirs.agentId }),
  JSON.stringify({ workspaceId: v, order: 900_000_002, buildId: buildId(), agentId: null }),
  JSON.stringify({ workspaceId: v, order: 900_000_003, buildId: retired.buildId, agentId: retired.agentId }),
  `{"__proto__":{"workspaceId":"${v}"},"workspaceId":"${v}","order":900000004,"buildId":"${theirs.buildId}","agentId":"${theirs.agentId}"}`,
  "[".repeat(3_900) + "]".repeat(3_900)
]

/**
 * Who sends the forged notices: on PostgreSQL a role with no privilege but
 * the default right to connect (the attacker); on PGlite, which has
 * one role, the same session.
 */
class Attacker extends Context.Service<Attacker, SqlClient.SqlClient>()("test/Attacker") {}

const attackerOnPostgres = (url: string) =>
  Layer.effect(
    Attacker,
    Effect.gen(function*() {
      const admin = yield* SqlClient.SqlClient
      const role = `lazydial_attacker_${Math.random().toString(36).slice(2, 10)}`
      yield* admin.unsafe(`CREATE ROLE ${role} LOGIN`)
      yield* Effect.addFinalizer(() => Effect.ignore(admin.unsafe(`DROP ROLE IF EXISTS ${role}`)))
      const attackerUrl = new URL(url)
      attackerUrl.username = role
      const client = yield* PgClient.make({ url: Redacted.make(attackerUrl.href), maxConnections: 1 })
      // the role can read no table of ours, and could never write one
      const denied = yield* Effect.result(client`SELECT count(*) FROM lazydial_chat_bindings`)
      assert.isTrue(Result.isFailure(denied), "the attacker's role could read the bindings")
      return client
    })
  ).pipe(Layer.provide(Reactivity.layer))

const attackerIsSelf = Layer.effect(Attacker, SqlClient.SqlClient)

/**
 * Notifies `payloads` on the channel, the last `junk` of them generated in
 * one statement; answers once this process has counted them all.
 */
const attack = (payloads: ReadonlyArray<string>, junk: number) =>
  Effect.gen(function*() {
    const attacker = yield* Attacker
    for (const payload of payloads) yield* attacker`SELECT pg_notify(${RebuildNotices.channel}, ${payload})`
    if (junk > 0) {
      yield* attacker`SELECT pg_notify(${RebuildNotices.channel}, 'junk ' || g || repeat('x', g % 100))
FROM generate_series(1, ${junk}) AS g`
    }
  })

const suite = <E>(
  name: string,
  database: Layer.Layer<SqlClient.SqlClient | Database.Listener | Database.Migrated, E>,
  attacker: Layer.Layer<Attacker, unknown, SqlClient.SqlClient>,
  watch: "statement" | "delivery"
) =>
  layer(
    Layer.mergeAll(AgentDirectory.layerSql({ batchWindow: 0 }), BindingStore.layerSql(), attacker).pipe(
      Layer.provideMerge(Layer.merge(RebuildNotices.layerSql, layerTest)),
      Layer.provideMerge(countingStatements(database))
    ),
    { timeout: "120 seconds" }
  )(`Forged notices through the database: ${name}`, (it) => {
    it.effect(
      "a foreign agent, a stop, a retired agent, __proto__, deep nesting and 50,000 junk payloads in one statement: the victim's turns stay hot on its own agent, the event loop stays free, and the listener keeps listening",
      () =>
        Effect.scoped(Effect.gen(function*() {
          const directory = yield* AgentDirectory.AgentDirectory
          const notices = yield* RebuildNotices.RebuildNotices
          const store = yield* BindingStore.BindingStore
          const agents = yield* TestAgents
          yield* until(Effect.map(notices.status, (status) => status.listening))
          const session = (yield* notices.status).session
          const lookup = AgentLookup.AgentLookup.of({ current: directory.current })
          const lazyDial = yield* LazyDial.make({ delay: "5 seconds" }).pipe(
            Effect.provideService(AgentLookup.AgentLookup, lookup)
          )
          const connector = yield* ChatConnector.make().pipe(
            Effect.provideService(AgentLookup.AgentLookup, lookup),
            Effect.provideService(LazyDial.LazyDial, lazyDial)
          )
          const turn = (id: ChatId) => Effect.flatMap(Effect.forkChild(Effect.scoped(connector.connect(id))), drive)
          // V (the victim) and T (the attacker's pick) run, as the fleet recorded them
          const v = workspaceId()
          const t = workspaceId()
          const mine = build()
          const theirs = build()
          const retired = build()
          yield* directory.recordBuild(v, retired)
          yield* directory.recordBuild(v, mine)
          yield* directory.recordBuild(t, theirs)
          yield* agents.script(mine.agentId, { result: "connect" })
          yield* agents.script(theirs.agentId, { result: "connect" })
          yield* agents.script(retired.agentId, { result: "hang" })
          const chat = (yield* store.createChat({ workspaceId: v })).chatId
          assert.strictEqual((yield* turn(chat)).outcome, "lazy_bind")
          const row = yield* store.get(chat)
          // a read of an earlier test may still wait out its interval
          yield* TestClock.adjust(RebuildNotices.readInterval)

          const before = yield* Effect.all({
            malformed: count(RebuildNotices.malformedTotal),
            received: count(RebuildNotices.receivedTotal),
            reads: count(RebuildNotices.readsTotal)
          })
          const payloads = [...forged(v, theirs, retired), v, t]
          const junk = 50_000
          // On PostgreSQL the statement runs in the server: the event loop is
          // watched from the moment it is sent. PGlite runs it in this process,
          // and 50,000 NOTIFYs hold the event loop for about 330 ms whoever
          // listens (measured with PGlite alone), so there the watch starts once
          // they are delivered. No other process can reach PGlite anyway.
          const startedAt = performance.now()
          let loop = loopProbe()
          yield* attack(payloads, junk)
          if (watch === "delivery") {
            loop.stop()
            loop = loopProbe()
          }
          yield* until(Effect.map(
            count(RebuildNotices.malformedTotal),
            (malformed) => malformed - before.malformed === payloads.length - 2 + junk
          ))
          const tookMillis = performance.now() - startedAt
          const { maxDelayMillis, ticks } = loop.stop()
          console.log(
            `${name}: ${payloads.length + junk} forged payloads sent and handled in ${tookMillis.toFixed(0)} ms; ` +
              `a 5 ms timer fired ${ticks} times from the ${watch === "statement" ? "statement" : "delivery"} on, ` +
              `at worst ${maxDelayMillis.toFixed(1)} ms late`
          )
          assert.isBelow(maxDelayMillis, 100, "the burst held the event loop")
          yield* until(Effect.map(
            count(RebuildNotices.receivedTotal),
            (received) => received - before.received === 2
          ))
          // V's own id made (at most) one read, T's none; nothing else was read
          yield* TestClock.adjust(RebuildNotices.readInterval)
          assert.isAtMost((yield* count(RebuildNotices.readsTotal)) - before.reads, 1)

          // every turn of the victim's chat answers from its own agent, at once
          for (let i = 0; i < 8; i++) {
            const connection = yield* turn(chat)
            deepStrictEqual([connection.outcome, connection.agentId], ["fast", mine.agentId])
          }
          deepStrictEqual(yield* store.get(chat), row)
          // a new chat of V binds to V's own agent
          const fresh = (yield* store.createChat({ workspaceId: v })).chatId
          assert.strictEqual((yield* turn(fresh)).agentId, mine.agentId)
          // still listening, in the same session: nothing made the listener stop
          deepStrictEqual(yield* notices.status, { listening: true, session })
        }))
    )
  })

suite("PGlite", PgliteDatabase.layerPglite(), attackerIsSelf, "delivery")
onPostgres("Forged notices through the database: PostgreSQL", (url) => {
  suite("PostgreSQL", PgDatabase.layerPg(url), attackerOnPostgres(url), "statement")
})

// ---- the migration on a database the attack touched -------------------------------

/**
 * A database migrated by the previous version (migrations 1 to 3), whose rows
 * the attack left naming foreign agents and builds that exist nowhere; then
 * migrated by this one.
 */
const migrationOnForgedRows = (sql: SqlClient.SqlClient) =>
  Effect.gen(function*() {
    deepStrictEqual(yield* migrations.runUpTo(sql, 3), [1, 2, 3])
    const v = workspaceId()
    const t = workspaceId()
    const mine = build()
    const theirs = build()
    for (const [w, current] of [[v, mine], [t, theirs]] as const) {
      yield* sql`INSERT INTO lazydial_workspace_builds (workspace_id, build_number, build_id, agent_id, created_at)
VALUES (${w}, 1, ${current.buildId}, ${current.agentId}, now())`
    }
    const rows = {
      // intact: V's own pair, a lazy bind, a chat of no workspace
      own: [v, mine.buildId, mine.agentId],
      lazy: [v, null, null],
      none: [null, null, null],
      // forged: T's live agent with a build that exists nowhere; T's whole pair; V's build with T's agent
      nowhere: [v, buildId(), theirs.agentId],
      foreign: [v, theirs.buildId, theirs.agentId],
      mixed: [v, mine.buildId, theirs.agentId]
    } as const
    const keys = ["own", "lazy", "none", "nowhere", "foreign", "mixed"] as const
    const ids = { own: chatId(), lazy: chatId(), none: chatId(), nowhere: chatId(), foreign: chatId(), mixed: chatId() }
    for (const key of keys) {
      const [w, b, a] = rows[key]
      yield* sql`INSERT INTO lazydial_chat_bindings
  (chat_id, parent_chat_id, workspace_id, build_id, agent_id, version, updated_at)
VALUES (${ids[key]}, NULL, ${w}, ${b}, ${a}, 5, now())`
    }
    deepStrictEqual(yield* migrations.runUpTo(sql, migrations.latest), [4])
    const after = yield* sql<{ chat_id: string; build_id: string | null; agent_id: string | null; version: number }>`
SELECT chat_id, build_id, agent_id, version FROM lazydial_chat_bindings WHERE ${sql.in("chat_id", Object.values(ids))}`
    const byKey = (key: keyof typeof rows) => after.find((row) => row.chat_id === ids[key])!
    for (const key of ["own", "lazy", "none"] as const) {
      deepStrictEqual([byKey(key).build_id, byKey(key).agent_id, byKey(key).version], [rows[key][1], rows[key][2], 5])
    }
    // the forged rows are lazy binds now: their next turn looks the agent up
    for (const key of ["nowhere", "foreign", "mixed"] as const) {
      deepStrictEqual([byKey(key).build_id, byKey(key).agent_id, byKey(key).version], [null, null, 6])
    }
    // and the database refuses the attack's pair from now on
    const again = yield* Effect.result(
      sql`UPDATE lazydial_chat_bindings SET build_id = ${theirs.buildId}, agent_id = ${theirs.agentId}
WHERE chat_id = ${ids.own}`
    )
    assert.isTrue(Result.isFailure(again), "the foreign key let a foreign pair in")
  })

/** A raw PGlite, migrated by nobody. */
const bareSqlClient: Effect.Effect<SqlClient.SqlClient, unknown, Scope.Scope> = Effect.map(
  internalPglite.make(),
  ({ sql }) => sql
).pipe(Effect.provide(Reactivity.layer))

layer(Layer.empty, { timeout: "120 seconds" })("Migration 4 on a database the attack touched", (it) => {
  it.effect("PGlite: the forged rows become lazy binds, the rest is kept, and the foreign key holds", () =>
    Effect.scoped(Effect.flatMap(bareSqlClient, migrationOnForgedRows)))
})

onPostgres("Migration 4 on a database the attack touched: PostgreSQL", (url) => {
  layer(PgDatabase.layerPg(url), { timeout: "120 seconds" })(
    "Migration 4 on a database the attack touched: PostgreSQL",
    (it) => {
      it.effect("PostgreSQL: the forged rows become lazy binds, the rest is kept, and the foreign key holds", () =>
        Effect.gen(function*() {
          const admin = yield* SqlClient.SqlClient
          const name = `lazydial_forged_${Math.random().toString(36).slice(2, 10)}`
          yield* admin.unsafe(`CREATE DATABASE ${name}`)
          yield* Effect.addFinalizer(() => Effect.ignore(admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)))
          const target = new URL(url)
          target.pathname = `/${name}`
          yield* Effect.scoped(
            Effect.flatMap(
              PgClient.make({ url: Redacted.make(target.href), maxConnections: 2 }).pipe(
                Effect.provide(Reactivity.layer)
              ),
              migrationOnForgedRows
            )
          )
        }).pipe(Effect.scoped))
    }
  )
})
