import type { ChatId } from "@lazydial/core"
import * as Cache from "effect/Cache"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import type { ChatOwners } from "../ChatOwners.js"
import { DatabaseUnavailable } from "../Chats.js"
import { withDeadline } from "./deadline.js"

export const table = "lazydial_service_chat_owners"

export const queryTimeout: Duration.Duration = Duration.seconds(5)

export const cacheCapacity = 10_000

type Owners = typeof ChatOwners.Service

// An arbitrary constant, distinct from binding's migration lock and AgentAddresses' (7_263_101).
const lockKey = 7_263_102

const failed = (operation: string) => (cause: unknown) => new DatabaseUnavailable({ operation, cause })

export const makeSql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const scope = yield* Effect.scope
  const bounded = (operation: string, timeout: Duration.Duration) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    effect.pipe(
      Effect.mapError(failed(operation)),
      withDeadline(
        scope,
        timeout,
        () => failed(operation)(new Error(`no answer within ${Duration.format(timeout)}`))
      )
    )
  yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${lockKey})`
    yield* sql`CREATE TABLE IF NOT EXISTS ${sql(table)} (
  chat_id text PRIMARY KEY,
  owner text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`
  })).pipe(bounded("ChatOwners.migrate", Duration.times(queryTimeout, 2)))

  const read = (chatId: ChatId) =>
    sql<{ readonly owner: string }>`SELECT owner FROM ${sql(table)} WHERE chat_id = ${chatId}`.pipe(
      Effect.map((rows) => Option.map(Option.fromNullishOr(rows[0]), (row) => row.owner)),
      bounded("ChatOwners.ownerOf", queryTimeout)
    )
  // an owner never changes: keep what was found; a miss or a failure is asked again next time
  const cache = yield* Cache.makeWith(read, {
    capacity: cacheCapacity,
    timeToLive: (exit) => Exit.isSuccess(exit) && Option.isSome(exit.value) ? Duration.infinity : Duration.zero
  })
  const owners: Owners = {
    record: (chatId, owner) =>
      sql`INSERT INTO ${sql(table)} (chat_id, owner) VALUES (${chatId}, ${owner})
ON CONFLICT (chat_id) DO NOTHING`.pipe(bounded("ChatOwners.record", queryTimeout), Effect.asVoid),
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
