/**
 * Thousands of waiters for a full pool, interrupted (turns that timed out
 * while the pool was full), must not take the process down. On Effect 3,
 * `pg-pool` handed a freed client to its next waiter synchronously and
 * `@effect/sql-pg` released it at once when that waiter was interrupted, so
 * one release recursed through every interrupted waiter and overflowed the
 * stack, until our pool handed clients over on the next tick. Effect 4's
 * `@effect/sql-pg` has a pool of its own (Effect's `Pool`) and needs no such
 * workaround; this test holds it to the same behaviour.
 */
import { describe, expect, it } from "@effect/vitest"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as SqlClient from "effect/sql/SqlClient"
import { onPostgres } from "./fixtures.js"

onPostgres("PgDatabase.layerPg: the pool", (databaseUrl) => {
  describe("PgDatabase.layerPg: the pool", () => {
    it.live(
      "a client freed before 20,000 interrupted waiters goes on to the next live query, without recursion",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const holder = yield* Effect.forkChild(sql`SELECT pg_sleep(0.5)`)
          // live time on a real server: the holder must own the only client first
          yield* Effect.sleep("100 millis")
          const waiters = yield* Effect.forEach(
            Array.from({ length: 20_000 }),
            () => Effect.forkChild(sql`SELECT 1`)
          )
          yield* Effect.sleep("100 millis")
          yield* Fiber.interruptAll(waiters)
          yield* Fiber.join(holder)
          const rows = yield* sql<{ readonly two: number }>`SELECT 2 AS two`
          expect(rows).toEqual([{ two: 2 }])
        }).pipe(Effect.provide(PgDatabase.layerPg(databaseUrl, { poolSize: 1 }))),
      { timeout: 60_000 }
    )
  })
})
