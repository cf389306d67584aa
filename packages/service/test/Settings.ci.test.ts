/**
 * Settings that only a real server shows (run by scripts/test-replicas.sh),
 * each read as `serve` reads it: the PostgreSQL pool's, which change the pool
 * the service opens, and the HTTP deadlines, which are Node's server timers
 * (real time: no test clock drives them). Their refusals, and the other
 * variables, are tested in Settings.test.ts.
 */
import { expect, it, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { Database } from "@lazydial/binding"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import { describe } from "vitest"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"
import { portOf, raw } from "./rawHttp.js"
import { onServer, serveWith } from "./serveOptions.js"

const url = process.env["LAZYDIAL_TEST_DATABASE_URL"] ?? ""

/** The database `serve` opens with these variables set, for `use`. */
const onDatabase = <A, E>(
  env: Record<string, string>,
  use: Effect.Effect<A, E, Service.DatabaseServices>
) =>
  Effect.gen(function*() {
    const options = yield* serveWith({ LAZYDIAL_DATABASE_URL: url, ...env })
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

layer(Service.layerDatabase(undefined), { timeout: 60_000, excludeTestServices: true })(
  "the HTTP deadlines, on a real server",
  (it) => {
    const port = Effect.map(Server.baseUrl, portOf)

    it.effect(
      "LAZYDIAL_HTTP_HEADERS_TIMEOUT: headers that never end: 408 and closed at its deadline",
      () =>
        Effect.gen(function*() {
          const options = yield* serveWith({ LAZYDIAL_HTTP_HEADERS_TIMEOUT: "400", LAZYDIAL_PORT: "0" })
          const answer = yield* onServer(
            options,
            Effect.flatMap(port, (port) => raw(port, ["GET /health HTTP/1.1\r\n", "x-a: 1\r\n", "x-b: 1\r\n"], 100))
          )
          expect(answer.text).toMatch(/^HTTP\/1\.1 408/)
          expect(answer.closedAfterMs).toBeGreaterThanOrEqual(350)
          expect(answer.closedAfterMs).toBeLessThan(2000)
        }),
      30_000
    )

    it.effect(
      "LAZYDIAL_HTTP_REQUEST_TIMEOUT: a body that trickles: 408 and closed at its deadline",
      () =>
        Effect.gen(function*() {
          const options = yield* serveWith({
            LAZYDIAL_HTTP_HEADERS_TIMEOUT: "300",
            LAZYDIAL_HTTP_REQUEST_TIMEOUT: "700",
            LAZYDIAL_PORT: "0"
          })
          const head = "POST /chats HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n"
          const answer = yield* onServer(
            options,
            Effect.flatMap(port, (port) => raw(port, [head, ..."{".repeat(40).split("")], 100))
          )
          expect(answer.text).toMatch(/^HTTP\/1\.1 408/)
          expect(answer.closedAfterMs).toBeGreaterThanOrEqual(650)
          expect(answer.closedAfterMs).toBeLessThan(2500)
        }),
      30_000
    )
  }
)
