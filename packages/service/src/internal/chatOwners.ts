import { Database } from "@lazydial/binding"
import type { ChatId } from "@lazydial/core"
import * as Cache from "effect/Cache"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import type { ChatOwners } from "../ChatOwners.js"
import { DatabaseUnavailable, databaseUnavailable } from "../Chats.js"

export const table = "lazydial_service_chat_owners"

export const cacheCapacity = 10_000

type Owners = typeof ChatOwners.Service

// An arbitrary constant, distinct from binding's migration lock and AgentAddresses' (7_263_101).
const lockKey = 7_263_102

// binding's query deadline (LAZYDIAL_DB_QUERY_DEADLINE), which holds when the server hangs, and its one database
// error, as the service's DatabaseUnavailable
const bounded = (operation: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.mapError((cause) => new DatabaseUnavailable({ operation, cause })),
    Database.withDeadline(operation),
    databaseUnavailable(operation)
  )

export const makeSql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const migrate = Effect.gen(function*() {
    // Any role that can connect can take any advisory lock, and hold it: once the table is there (every start but
    // the first), the lock is not taken, so such a role cannot keep a replica from starting.
    const [state] = yield* sql<{ readonly ready: boolean }>`SELECT to_regclass(${table}) IS NOT NULL AS ready`
    if (state?.ready !== true) {
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`SELECT pg_advisory_xact_lock(${lockKey})`
        yield* sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  chat_id text PRIMARY KEY,
  owner text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`
      }))
    }
    // `CREATE TABLE IF NOT EXISTS` keeps a table that someone else made first: where PUBLIC may create tables in
    // the schema (PostgreSQL 14 and older by default), another role could make this one, own it, and give itself
    // any chat. The table must be this role's (or a role's it belongs to).
    const [foreign] = yield* sql<{ readonly owner: string }>`SELECT pg_get_userbyid(c.relowner) AS owner
FROM pg_class c WHERE c.oid = to_regclass(${table}) AND NOT pg_has_role(c.relowner, 'USAGE')`
    if (foreign !== undefined) {
      return yield* Effect.fail(
        new Error(
          `table ${table} is owned by role ${foreign.owner}, not by this service's role: drop it (its contents ` +
            "cannot be trusted), or start as its owner"
        )
      )
    }
  })
  yield* migrate.pipe(bounded("ChatOwners.migrate"))

  const read = (chatId: ChatId) =>
    sql<{ readonly owner: string }>`SELECT owner FROM ${sql(table)} WHERE chat_id = ${chatId}`.pipe(
      Effect.map((rows) => Option.map(Option.fromNullishOr(rows[0]), (row) => row.owner)),
      bounded("ChatOwners.ownerOf")
    )
  // an owner never changes: keep what was found; a miss or a failure is asked again next time
  const cache = yield* Cache.makeWith(read, {
    capacity: cacheCapacity,
    timeToLive: (exit) => Exit.isSuccess(exit) && Option.isSome(exit.value) ? Duration.infinity : Duration.zero
  })
  const owners: Owners = {
    record: (chatId, owner) =>
      sql`INSERT INTO ${sql(table)} (chat_id, owner) VALUES (${chatId}, ${owner})
ON CONFLICT (chat_id) DO NOTHING`.pipe(bounded("ChatOwners.record"), Effect.asVoid),
    ownerOf: (chatId) => Cache.get(cache, chatId)
  }
  return owners
})

export const makeMemory = (): Owners => {
  const owners = new Map<ChatId, string>()
  return {
    record: (chatId, owner) =>
      Effect.sync(() => {
        if (!owners.has(chatId)) owners.set(chatId, owner)
      }),
    ownerOf: (chatId) => Effect.sync(() => Option.fromNullishOr(owners.get(chatId)))
  }
}
