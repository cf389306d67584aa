/**
 * The `Database` Layers: PGlite's session, the settings and URL checks, the
 * errors at start (a closed port, an unknown host, a schema from the future),
 * and, against the real server of scripts/test-postgres.sh, a wrong password
 * and a future schema on PostgreSQL.
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, expect, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { AgentDirectory, BindingStore, Database } from "@lazydial/binding"
import * as DatabaseConfig from "@lazydial/binding/DatabaseConfig"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import { Options } from "@lazydial/core"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { onPostgres, requireForPostgres, withEnv, workspaceId } from "./fixtures.js"

/** A port on 127.0.0.1 that nothing listens on: bound, then closed. */
const closedPort = Effect.callback<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** The failure of building `layer`, which must fail. */
const startFailure = <A, E>(layer: Layer.Layer<A, E>): Effect.Effect<E> =>
  Effect.scoped(Layer.build(layer)).pipe(
    Effect.flip,
    Effect.catch(() => Effect.die(new Error("the Layer started, but should have failed")))
  )

/**
 * The database's configuration as a program would read it, with names it
 * picks (binding reads no variable of its own), each range-checked as read.
 */
const databaseConfig = {
  url: Options.optional(Database.urlConfig("TEST_DATABASE_URL")),
  dataDir: Options.optional(Config.String("TEST_DATA_DIR")),
  poolSize: Options.optional(
    Options.numberConfig("TEST_DB_POOL_SIZE", { min: 1, max: Database.maxima.poolSize, integer: true })
  ),
  connectTimeout: Options.optional(
    Options.durationConfig("TEST_DB_CONNECT_TIMEOUT", { max: Database.maxima.connectTimeout, allowZero: false })
  ),
  statementTimeout: Options.optional(
    Options.durationConfig("TEST_DB_STATEMENT_TIMEOUT", { max: Database.maxima.statementTimeout, allowZero: false })
  )
}

/** A migration id from a newer version of the code. */
const futureMigration = 999

describe("Database", () => {
  it.effect(
    "PGlite in a dataDir keeps bindings across restarts; layerConfig picks it without a database URL",
    () =>
      Effect.gen(function*() {
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lazydial-pglite-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
        const created = yield* Effect.flatMap(
          BindingStore.BindingStore,
          (store) => store.createChat({ workspaceId: workspaceId() })
        ).pipe(
          Effect.provide(BindingStore.layerSql().pipe(Layer.provide(PgliteDatabase.layerPglite({ dataDir }))))
        )
        const reread = yield* Effect.flatMap(BindingStore.BindingStore, (store) => store.get(created.chatId)).pipe(
          Effect.provide(BindingStore.layerSql().pipe(Layer.provide(DatabaseConfig.layerConfig(databaseConfig)))),
          withEnv({ TEST_DATA_DIR: dataDir })
        )
        deepStrictEqual(reread, created)
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "PGlite keeps a transaction's statements apart from other fibers' statements",
    () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE counter (n integer NOT NULL)`
        yield* sql`INSERT INTO counter VALUES (0)`
        // Each transaction reads, then writes read+1: interleaved statements would lose increments.
        const increment = sql.withTransaction(
          Effect.gen(function*() {
            const rows = yield* sql<{ readonly n: number }>`SELECT n FROM counter`
            yield* Effect.yieldNow
            yield* sql`UPDATE counter SET n = ${rows[0]!.n + 1}`
          })
        )
        yield* Effect.all(Array.from({ length: 20 }, () => increment), { concurrency: "unbounded" })
        const rows = yield* sql<{ readonly n: number }>`SELECT n FROM counter`
        assert.strictEqual(rows[0]!.n, 20)
        const failed = yield* Effect.result(
          sql.withTransaction(Effect.andThen(sql`UPDATE counter SET n = 100`, Effect.fail("rolled back")))
        )
        assert.isTrue(failed._tag === "Failure")
        assert.strictEqual((yield* sql<{ readonly n: number }>`SELECT n FROM counter`)[0]!.n, 20)
      }).pipe(Effect.provide(PgliteDatabase.layerPglite())),
    120_000
  )

  it.effect(
    "the migrations run once per process, from the Database Layer, for the store and the directory together",
    () =>
      Effect.gen(function*() {
        const migrated = yield* Database.Migrated
        deepStrictEqual(migrated.applied, [1, 2, 3, 4])
        assert.strictEqual(migrated.version, 4)
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM lazydial_binding_migrations`
        assert.strictEqual(rows[0]!.n, 4)
      }).pipe(
        Effect.provide(
          Layer.mergeAll(BindingStore.layerSql(), AgentDirectory.layerSql()).pipe(
            Layer.provideMerge(PgliteDatabase.layerPglite())
          )
        )
      ),
    120_000
  )

  it.effect(
    "a schema from the future: a migration id this code does not know fails the start with DatabaseSchemaTooNew naming both versions",
    () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO lazydial_binding_migrations (migration_id, name) VALUES (${futureMigration}, 'from_the_future')`
        const error = yield* startFailure(
          Database.layerMigrated.pipe(Layer.provide(Layer.succeed(SqlClient.SqlClient, sql)))
        )
        assert.strictEqual(error._tag, "DatabaseSchemaTooNew")
        if (error._tag === "DatabaseSchemaTooNew") {
          assert.strictEqual(error.databaseVersion, futureMigration)
          assert.strictEqual(error.codeVersion, 4)
        }
        assert.include(error.message, `migration ${futureMigration}`)
        assert.include(error.message, "up to 4")
      }).pipe(Effect.provide(PgliteDatabase.layerPglite())),
    120_000
  )
})

describe("Database settings", () => {
  const target = "postgres://lazydial:s3cret-pw@127.0.0.1:1/lazydial"

  it.effect("decodeUrl accepts postgres:// and postgresql://", () =>
    Effect.gen(function*() {
      for (const url of [target, "postgresql://lazydial@db.example:6543/x", "postgres://[::1]/x"]) {
        const decoded = yield* Database.decodeUrl("--database-url", url)
        assert.strictEqual(Redacted.value(decoded), url)
      }
    }))

  it.effect("decodeUrl refuses an empty URL, another scheme, and a non-URL with InvalidOption, never showing the password", () =>
    Effect.gen(function*() {
      const cases = [
        ["", "an empty string"],
        ["   ", "an empty string"],
        ["mysql://root:s3cret-pw@127.0.0.1:3306/db", "mysql://root:***@127.0.0.1:3306/db"],
        ["http://127.0.0.1:5432/db", "http://127.0.0.1:5432/db"],
        ["root:s3cret-pw@localhost", "a string that starts with \"root:\""],
        ["postgres://", "a string that starts with \"postgres:\""]
      ] as const
      for (const [input, shown] of cases) {
        const error = yield* Effect.flip(Database.decodeUrl("--database-url", input))
        assert.strictEqual(error._tag, "InvalidOption")
        assert.strictEqual(error.option, "--database-url")
        assert.include(error.value, shown)
        assert.include(error.message, "postgres:// or postgresql://")
        assert.notInclude(error.message, "s3cret-pw")
      }
    }))

  it.effect("a database URL set but empty is refused, not taken as unset (no quiet PGlite, no 127.0.0.1:5432)", () =>
    Effect.gen(function*() {
      const error = yield* startFailure(DatabaseConfig.layerConfig(databaseConfig)).pipe(
        withEnv({ TEST_DATABASE_URL: "" }, { preserveEmptyStrings: true })
      )
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(String(error), "TEST_DATABASE_URL")
      const mysql = yield* startFailure(DatabaseConfig.layerConfig(databaseConfig)).pipe(
        withEnv({ TEST_DATABASE_URL: "mysql://root:s3cret-pw@127.0.0.1/db" })
      )
      assert.strictEqual(mysql._tag, "ConfigError")
      assert.include(String(mysql), "TEST_DATABASE_URL")
      assert.include(String(mysql), "postgres:// or postgresql://")
      assert.notInclude(String(mysql), "s3cret-pw")
    }))

  it.effect("each setting out of its range fails the start, naming the option, or the variable it was read from", () =>
    Effect.gen(function*() {
      const fromOptions = [
        [{ poolSize: 0 }, "poolSize"],
        [{ poolSize: 501 }, "poolSize"],
        [{ poolSize: 2.5 }, "poolSize"],
        [{ connectTimeout: 0 }, "connectTimeout"],
        [{ connectTimeout: "2 minutes" }, "connectTimeout"],
        [{ statementTimeout: -1 }, "statementTimeout"],
        [{ statementTimeout: "2 hours" }, "statementTimeout"]
      ] as const
      for (const [options, option] of fromOptions) {
        const error = yield* startFailure(PgDatabase.layerPg(target, options))
        assert.strictEqual(error._tag, "InvalidOption", `${JSON.stringify(options)}: ${error.message}`)
        if (error._tag === "InvalidOption") assert.strictEqual(error.option, option)
      }
      const fromConfig = [
        ["TEST_DB_POOL_SIZE", "0"],
        ["TEST_DB_POOL_SIZE", "1000"],
        ["TEST_DB_POOL_SIZE", "ten"],
        ["TEST_DB_CONNECT_TIMEOUT", "0 seconds"],
        ["TEST_DB_CONNECT_TIMEOUT", "soon"],
        ["TEST_DB_STATEMENT_TIMEOUT", "3 hours"],
        ["TEST_DB_CONNECT_TIMEOUT", "-5 seconds"]
      ] as const
      for (const [name, value] of fromConfig) {
        const error = yield* startFailure(DatabaseConfig.layerConfig(databaseConfig)).pipe(
          withEnv({ TEST_DATABASE_URL: target, [name]: value })
        )
        assert.strictEqual(error._tag, "ConfigError", `${name}=${value}: ${error.message}`)
        assert.include(String(error), name)
      }
      // read by a Config that checks no range, a value is refused by the Layer, under its option's name
      const unchecked = yield* startFailure(
        PgDatabase.layerConfig({ url: Config.succeed(target), poolSize: Config.Int("TEST_DB_POOL_SIZE") })
      ).pipe(withEnv({ TEST_DB_POOL_SIZE: "1000" }))
      assert.strictEqual(unchecked._tag, "InvalidOption")
      if (unchecked._tag === "InvalidOption") assert.strictEqual(unchecked.option, "poolSize")
    }))

  it.effect("the settings from configuration: durations in words or in milliseconds; unset is the default", () =>
    Effect.gen(function*() {
      const settings = yield* Config.unwrap(databaseConfig).pipe(
        Effect.flatMap((config) => Effect.succeed(config)),
        withEnv({ TEST_DB_POOL_SIZE: "25", TEST_DB_CONNECT_TIMEOUT: "2500", TEST_DB_STATEMENT_TIMEOUT: "10 seconds" })
      )
      deepStrictEqual(settings.poolSize, 25)
      deepStrictEqual(settings.connectTimeout, Duration.millis(2500))
      deepStrictEqual(settings.statementTimeout, Duration.seconds(10))
      const unset = yield* Config.unwrap(databaseConfig).pipe(
        Effect.flatMap((config) => Effect.succeed(config)),
        withEnv({})
      )
      deepStrictEqual(unset.poolSize, undefined)
      deepStrictEqual(unset.url, undefined)
      deepStrictEqual(Database.defaults.poolSize, 10)
    }))

  it.live(
    "a closed port fails the start at once with DatabaseConnectError naming host and port, never the password",
    () =>
      Effect.gen(function*() {
        const port = yield* closedPort
        const startedAt = Date.now()
        const error = yield* startFailure(
          PgDatabase.layerPg(`postgres://lazydial:s3cret-pw@127.0.0.1:${port}/lazydial`, {
            connectTimeout: "5 seconds"
          })
        )
        assert.isBelow(Date.now() - startedAt, 5_000)
        assert.strictEqual(error._tag, "DatabaseConnectError")
        if (error._tag === "DatabaseConnectError") {
          assert.strictEqual(error.reason, "refused")
          assert.strictEqual(error.host, "127.0.0.1")
          assert.strictEqual(error.port, port)
        }
        assert.include(error.message, `127.0.0.1:${port}`)
        assert.include(error.message, "check that PostgreSQL runs")
        assert.notInclude(error.message, "s3cret-pw")
        assert.notInclude(JSON.stringify(error), "s3cret-pw")
      }),
    30_000
  )

  it.live("an unknown host fails the start within the connect timeout, naming the host", () =>
    Effect.gen(function*() {
      const startedAt = Date.now()
      const error = yield* startFailure(
        PgDatabase.layerPg("postgres://lazydial:s3cret-pw@no-such-host.invalid:5432/lazydial", {
          connectTimeout: "3 seconds"
        })
      )
      // within the connect timeout, plus the pool's 1 s to close
      assert.isBelow(Date.now() - startedAt, 3_000 + 1_500)
      assert.strictEqual(error._tag, "DatabaseConnectError")
      if (error._tag === "DatabaseConnectError") expect(["unknown_host", "timeout"]).toContain(error.reason)
      assert.include(error.message, "no-such-host.invalid:5432")
      assert.notInclude(error.message, "s3cret-pw")
    }), 30_000)
})

onPostgres("Database on PostgreSQL: errors at start", (databaseUrl) => {
  describe("Database on PostgreSQL: errors at start", () => {
    const passwordUrl = process.env["LAZYDIAL_TEST_PASSWORD_DATABASE_URL"] ?? ""
    requireForPostgres("LAZYDIAL_TEST_PASSWORD_DATABASE_URL", passwordUrl !== "")

    it.live.skipIf(passwordUrl === "")(
      (passwordUrl === ""
        ? "(skipped: no LAZYDIAL_TEST_PASSWORD_DATABASE_URL, which scripts/test-postgres.sh sets) "
        : "") +
        "a wrong password fails the start with DatabaseConnectError (authentication), naming host and port, never the password",
      () =>
        Effect.gen(function*() {
          // the right password starts, so the failure below is the password's
          yield* Effect.scoped(Layer.build(PgDatabase.layerPg(passwordUrl)))
          const url = new URL(passwordUrl)
          url.password = "wrong-pw-42"
          const error = yield* startFailure(PgDatabase.layerPg(url.href, { connectTimeout: "5 seconds" }))
          assert.strictEqual(error._tag, "DatabaseConnectError")
          if (error._tag === "DatabaseConnectError") {
            assert.strictEqual(error.reason, "authentication")
            assert.strictEqual(error.user, decodeURIComponent(url.username))
          }
          assert.include(error.message, `${url.hostname}:${url.port}`)
          assert.include(error.message, "check the user and password")
          assert.notInclude(error.message, "wrong-pw-42")
          assert.notInclude(JSON.stringify(error), "wrong-pw-42")
        }),
      30_000
    )

    it.live(
      "a schema from the future on PostgreSQL fails the start with DatabaseSchemaTooNew, and a current one starts",
      () =>
        Effect.gen(function*() {
          // a database of its own: the other suites share lazydial_test
          const name = `lazydial_future_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`
          const admin = yield* Effect.map(Layer.build(PgDatabase.layerPg(databaseUrl)), (context) =>
            Context.get(context, SqlClient.SqlClient))
          yield* admin.unsafe(`CREATE DATABASE ${name}`)
          yield* Effect.addFinalizer(() =>
            admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.ignore)
          )
          const url = new URL(databaseUrl)
          url.pathname = `/${name}`
          const first = yield* Effect.scoped(
            Effect.flatMap(Layer.build(PgDatabase.layerPg(url.href)), (context) =>
              Effect.gen(function*() {
                const sql = Context.get(context, SqlClient.SqlClient)
                yield* sql`INSERT INTO lazydial_binding_migrations (migration_id, name) VALUES (${futureMigration}, 'from_the_future')`
                return Context.get(context, Database.Migrated)
              }))
          )
          deepStrictEqual(first.applied, [1, 2, 3, 4])
          const error = yield* startFailure(PgDatabase.layerPg(url.href))
          assert.strictEqual(error._tag, "DatabaseSchemaTooNew", error.message)
          assert.include(error.message, `migration ${futureMigration}`)
          assert.include(error.message, "up to 4")
        }).pipe(Effect.scoped),
      60_000
    )

    /** A fresh database, and a role that may only connect to it (and, when `create`, create tables in it). */
    const freshDatabase = (create: boolean) =>
      Effect.gen(function*() {
        const suffix = crypto.randomUUID().replace(/-/g, "").slice(0, 12)
        const [name, role, service] = [
          `lazydial_owned_${suffix}`,
          `lazydial_intruder_${suffix}`,
          `lazydial_service_${suffix}`
        ]
        const admin = yield* Effect.map(Layer.build(PgDatabase.layerPg(databaseUrl)), (context) =>
          Context.get(context, SqlClient.SqlClient))
        yield* admin.unsafe(`CREATE DATABASE ${name}`)
        yield* admin.unsafe(`CREATE ROLE ${role} LOGIN`)
        yield* admin.unsafe(`CREATE ROLE ${service} LOGIN`)
        yield* Effect.addFinalizer(() =>
          Effect.ignore(Effect.andThen(
            admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
            admin.unsafe(`DROP ROLE IF EXISTS ${role}, ${service}`)
          ))
        )
        const url = new URL(databaseUrl)
        url.pathname = `/${name}`
        const intruderUrl = new URL(url.href)
        intruderUrl.username = role
        if (create) {
          // a plain client: the Database Layer would migrate, and make the tables first
          const owner = yield* PgClient.make({ url: Redacted.make(url.href), maxConnections: 1 }).pipe(
            Effect.provide(Reactivity.layer)
          )
          yield* owner.unsafe(`GRANT CREATE ON SCHEMA public TO ${role}, ${service}`)
        }
        const intruder = yield* PgClient.make({ url: Redacted.make(intruderUrl.href), maxConnections: 1 }).pipe(
          Effect.provide(Reactivity.layer)
        )
        return { url: url.href, intruder, service }
      })

    it.live(
      "an up-to-date database starts while another role holds the migration lock: the lock is taken only to migrate",
      () =>
        Effect.gen(function*() {
          const { intruder, url } = yield* freshDatabase(false)
          yield* Effect.scoped(Layer.build(PgDatabase.layerPg(url)))
          // any role that may connect may take any advisory lock, and keep it
          yield* intruder`SELECT pg_advisory_lock(7263001)`
          const started = Date.now()
          const migrated = yield* Effect.scoped(
            Effect.map(Layer.build(PgDatabase.layerPg(url)), (context) => Context.get(context, Database.Migrated))
          ).pipe(Effect.timeoutOption("10 seconds"))
          assert.isTrue(Option.isSome(migrated), "the start waited for the intruder's lock")
          deepStrictEqual(Option.map(migrated, (m) => m.applied), Option.some([]))
          assert.isBelow(Date.now() - started, 10_000)
        }).pipe(Effect.scoped),
      60_000
    )

    it.live(
      "a table of ours that another role made first is refused at start, naming the table and its owner",
      () =>
        Effect.gen(function*() {
          const { intruder, service, url } = yield* freshDatabase(true)
          yield* intruder.unsafe(`CREATE TABLE lazydial_chat_bindings (chat_id text PRIMARY KEY)`)
          // the service as a role of its own: a superuser is a member of every role, and trusts any table
          const serviceUrl = new URL(url)
          serviceUrl.username = service
          const error = yield* startFailure(PgDatabase.layerPg(serviceUrl.href))
          assert.strictEqual(error._tag, "BindingStoreError", error.message)
          assert.include(error.message, "table lazydial_chat_bindings is owned by role lazydial_intruder_")
        }).pipe(Effect.scoped),
      60_000
    )
  })
})
