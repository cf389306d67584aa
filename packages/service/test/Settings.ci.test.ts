/**
 * The settings of the PostgreSQL pool, on a real server (run by
 * scripts/test-replicas.sh): each variable, read as `serve` reads it, changes
 * the pool the service opens. Their refusals, and the other variables, are
 * tested in Settings.test.ts.
 */
import { expect, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { Database } from "@lazydial/binding"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import { describe } from "vitest"
import * as Cli from "../src/Cli.js"
import * as Service from "../src/Service.js"

const url = process.env["LAZYDIAL_TEST_DATABASE_URL"] ?? ""

const none = Option.none()
const noFlags: Parameters<typeof Cli.serveOptions>[0] = {
  port: none,
  host: none,
  databaseUrl: none,
  grace: none,
  tokenAuthFile: none,
  noAuth: none,
  headersTimeoutMs: none,
  requestTimeoutMs: none,
  strategy: none,
  validationDelayMs: none,
  delayMode: none,
  notices: none,
  dialTimeoutMs: none,
  sharedConnections: none,
  connectionIdleTtlMs: none,
  connectionProbeAfterIdleMs: none,
  connectionProbeTimeoutMs: none
}

/** The database `serve` opens with these variables set, for `use`. */
const onDatabase = <A, E>(
  env: Record<string, string>,
  use: Effect.Effect<A, E, Service.DatabaseServices>
) =>
  Effect.gen(function*() {
    const options = yield* Cli.serveOptions(noFlags).pipe(
      Effect.provideService(
        ConfigProvider.ConfigProvider,
        ConfigProvider.fromEnv({ env: { LAZYDIAL_NO_AUTH: "true", LAZYDIAL_DATABASE_URL: url, ...env } })
      )
    )
    const target = Option.map(options.databaseUrl, (target) => target.url)
    const context = yield* Layer.build(Service.layerDatabaseEither(target, options.database))
    return yield* Effect.provide(use, context)
  }).pipe(Effect.scoped)

describe.skipIf(url === "")("the PostgreSQL pool's settings (needs LAZYDIAL_TEST_DATABASE_URL)", () => {
  it.live(
    "LAZYDIAL_DB_POOL_SIZE: the pool's connections, the statements the process runs at once",
    () =>
      Effect.gen(function*() {
        const sessions = yield* onDatabase({ LAZYDIAL_DB_POOL_SIZE: "3" }, Effect.serviceOption(Database.Sessions))
        deepStrictEqual(Option.map(sessions, (s) => s.size), Option.some(3))
        // five statements that each hold a connection for 300 ms: with 3 connections, two wait for a free one
        const elapsed = yield* onDatabase(
          { LAZYDIAL_DB_POOL_SIZE: "3" },
          Effect.flatMap(SqlClient.SqlClient, (sql) =>
            Effect.map(
              Effect.timed(
                Effect.forEach([1, 2, 3, 4, 5], () => sql`SELECT pg_sleep(0.3)`, { concurrency: "unbounded" })
              ),
              ([took]) => Duration.toMillis(took)
            ))
        )
        expect(elapsed).toBeGreaterThanOrEqual(580)
      }),
    60_000
  )

  it.live(
    "LAZYDIAL_DB_STATEMENT_TIMEOUT: the server's statement_timeout of every connection",
    () =>
      Effect.gen(function*() {
        const rows = yield* onDatabase(
          { LAZYDIAL_DB_STATEMENT_TIMEOUT: "1.5 seconds" },
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql<{ statement_timeout: string }>`SHOW statement_timeout`)
        )
        expect(rows[0]?.statement_timeout).toBe("1500ms")
      }),
    60_000
  )

  it.live(
    "LAZYDIAL_DB_QUERY_DEADLINE: the client-side deadline every call of the service gets",
    () =>
      Effect.gen(function*() {
        const deadlines = yield* onDatabase({ LAZYDIAL_DB_QUERY_DEADLINE: "2500" }, Effect.service(Database.Deadlines))
        expect(Duration.toMillis(deadlines.query)).toBe(2500)
        // a statement slower than it fails at it, with binding's typed error
        const failed = yield* onDatabase(
          { LAZYDIAL_DB_QUERY_DEADLINE: "500" },
          Effect.flatMap(
            SqlClient.SqlClient,
            (sql) => Effect.flip(Effect.timed(Database.withDeadline("test")(sql`SELECT pg_sleep(3)`)))
          )
        )
        expect(failed._tag).toBe("BindingStoreError")
      }),
    60_000
  )
})
