import type { InvalidOption } from "@lazydial/core"
import { AgentId, BuildId, ChatId, Options as CoreOptions, WorkspaceId } from "@lazydial/core"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Request from "effect/Request"
import * as RequestResolver from "effect/RequestResolver"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as SqlClient from "effect/sql/SqlClient"
import type { BindingStore, RecordResult, SqlOptions } from "../BindingStore.js"
import { ChatBinding } from "../ChatBinding.js"
import { Sessions } from "../Database.js"
import type { Migrated } from "../Database.js"
import { BindingStoreError, ChatAlreadyExists, ChatNotFound } from "../Errors.js"
import { databaseError, Deadlines, transaction } from "./database.js"
import { deadlineError, queryDeadlineSetting, timeoutDetached, withDeadline } from "./deadline.js"

type Service = BindingStore["Service"]

const freshChatId = Effect.sync(() => ChatId.make(crypto.randomUUID()))

/** @internal */
export const makeMemory: Effect.Effect<Service> = Effect.sync(() => {
  const rows = new Map<ChatId, ChatBinding>()

  // Each write reads the clock, then checks and writes in one synchronous
  // step, so no other fiber can run between the check and the write.
  const write = <A, E>(f: (now: DateTime.Utc) => Effect.Effect<A, E>) => Effect.flatMap(DateTime.now, f)

  const existing = (chatId: ChatId) =>
    Effect.suspend(() => {
      const row = rows.get(chatId)
      return row === undefined ? Effect.fail(new ChatNotFound({ chatId })) : Effect.succeed(row)
    })

  const insert = (binding: ChatBinding) =>
    Effect.suspend(() => {
      if (rows.has(binding.chatId)) return Effect.fail(new ChatAlreadyExists({ chatId: binding.chatId }))
      rows.set(binding.chatId, binding)
      return Effect.succeed(binding)
    })

  const service: Service = {
    createChat: Effect.fn("BindingStore.createChat")(function*(options) {
      const chatId = options?.chatId ?? (yield* freshChatId)
      return yield* write((updatedAt) =>
        insert(
          new ChatBinding({
            chatId,
            parentChatId: Option.none(),
            workspaceId: Option.fromNullishOr(options?.workspaceId),
            buildId: Option.none(),
            agentId: Option.none(),
            version: 1,
            updatedAt
          })
        )
      )
    }),
    createChild: Effect.fn("BindingStore.createChild")(function*(parentChatId, options) {
      const chatId = options?.chatId ?? (yield* freshChatId)
      return yield* write((updatedAt) =>
        Effect.flatMap(existing(parentChatId), (parent) =>
          insert(
            new ChatBinding({
              chatId,
              parentChatId: Option.some(parent.chatId),
              workspaceId: parent.workspaceId,
              buildId: parent.buildId,
              agentId: parent.agentId,
              version: 1,
              updatedAt
            })
          ))
      )
    }),
    get: Effect.fn("BindingStore.get")((chatId) => existing(chatId)),
    setWorkspace: Effect.fn("BindingStore.setWorkspace")((chatId, workspaceId) =>
      write((updatedAt) =>
        Effect.map(existing(chatId), (row) => {
          const next = new ChatBinding({
            ...row,
            workspaceId,
            buildId: Option.none(),
            agentId: Option.none(),
            version: row.version + 1,
            updatedAt
          })
          rows.set(chatId, next)
          return next
        })
      )
    ),
    recordAgent: Effect.fn("BindingStore.recordAgent")((chatId, { current, expected }) =>
      write((updatedAt) =>
        Effect.map(existing(chatId), (row): RecordResult => {
          const matches = Option.makeEquivalence(Schema.toEquivalence(WorkspaceId))(
            row.workspaceId,
            Option.some(expected.workspaceId)
          ) &&
            Option.makeEquivalence(Schema.toEquivalence(AgentId))(row.agentId, expected.agentId)
          if (!matches) return { _tag: "Lost", binding: row }
          const next = new ChatBinding({
            ...row,
            buildId: Option.some(current.buildId),
            agentId: Option.some(current.agentId),
            version: row.version + 1,
            updatedAt
          })
          rows.set(chatId, next)
          return { _tag: "Recorded", binding: next }
        })
      )
    )
  }
  return service
})

// Rows as the database returns them. PostgreSQL and PGlite both return
// timestamptz as a Date; a string is accepted too, for drivers that don't.
const Row = Schema.Struct({
  chat_id: ChatId,
  parent_chat_id: Schema.NullOr(ChatId),
  workspace_id: Schema.NullOr(WorkspaceId),
  build_id: Schema.NullOr(BuildId),
  agent_id: Schema.NullOr(AgentId),
  version: Schema.Int.check(Schema.isGreaterThan(0)),
  updated_at: Schema.Union([Schema.Date, Schema.DateFromString])
})

// the rejected value is shown: ids are no secret, and the column alone does not say what is wrong
const decodeRow = Schema.decodeUnknownEffect(Row, { errors: "all", reportInput: true })

const columns = "chat_id, parent_chat_id, workspace_id, build_id, agent_id, version, updated_at"

/** @internal */
export const readQueriesTotal = Metric.counter("lazydial_store_read_queries_total", {
  description: "SQL queries made by BindingStore.get: fewer than the gets when reads go together",
  incremental: true
})

/** @internal */
export const maxReadSlots = 100

/**
 * The most chats one read query asks for: a burst of thousands of turns makes
 * several bounded queries rather than one unbounded `IN` list.
 *
 * @internal
 */
export const maxReadBatch = 500

/**
 * More read queries at once than the database runs statements would only
 * queue them in the driver; on PostgreSQL a few are kept, not the whole
 * pool, so that writes and lookups still find a connection under a burst of
 * reads.
 */
const defaultReadSlots = (sessions: Option.Option<Sessions["Service"]>): number =>
  Option.match(sessions, { onNone: () => 4, onSome: ({ size }) => Math.max(1, Math.min(4, size)) })

/** @internal */
export const checkReadSlots = (option: string, input: unknown): Effect.Effect<number, InvalidOption> =>
  CoreOptions.boundedNumber(option, input, 1, maxReadSlots, { integer: true })

type RawRow = { readonly chat_id: string }

class GetRow extends Request.TaggedClass("GetRow")<
  { readonly chatId: ChatId },
  Option.Option<RawRow>,
  BindingStoreError
> {}

/**
 * The row reads of `get`, batched by Effect's `RequestResolver`: the reads of
 * one scheduler tick are one query (`WHERE chat_id IN (…)`, at most
 * `maxReadBatch` chats), and at most `slots` queries run at once. A read
 * never joins a query already sent (that query may have looked at the table
 * before this turn's own write, and a turn must read what it wrote): Effect's
 * resolver starts a new batch for it.
 *
 * What Effect's resolver does not do is added here: each query runs in a
 * fiber of the store's Scope, so closing the store ends it and answers its
 * readers; it has the query deadline from the start of its batch, the wait
 * for a slot included; and a query whose readers were all interrupted is
 * interrupted too, so that its slot comes back (the resolver tells a running
 * batch nothing of a reader that left).
 */
const makeReads = (sql: SqlClient.SqlClient, slots: number, deadline: Duration.Duration) =>
  Effect.gen(function*() {
    const runFork = yield* FiberSet.makeRuntime<never, ReadonlyArray<RawRow>, BindingStoreError>()
    const permits = Semaphore.makeUnsafe(slots)
    // the readers still waiting on each batch, and the fiber that runs it
    const batches = new Map<GetRow, { readers: number; readonly fiber: Fiber.Fiber<unknown, unknown> }>()

    const resolver = RequestResolver.make<GetRow>((entries) =>
      Effect.withFiber((fiber) => {
        const batch = { readers: entries.length, fiber }
        for (const entry of entries) batches.set(entry.request, batch)
        const ids = [...new Set(entries.map((entry) => entry.request.chatId))]
        // counted when sent, failed or not: the figure is statements per turn
        const query = Metric.update(readQueriesTotal, 1).pipe(
          Effect.andThen(
            sql<RawRow>`SELECT ${sql.literal(columns)} FROM lazydial_chat_bindings WHERE ${sql.in("chat_id", ids)}`
          ),
          Effect.mapError(databaseError("BindingStore.get"))
        )
        return timeoutDetached(
          permits.withPermit(query),
          Duration.toMillis(deadline),
          () => deadlineError("BindingStore.get", deadline, queryDeadlineSetting),
          (self) => Effect.sync(() => runFork(self))
        ).pipe(
          Effect.exit,
          Effect.flatMap((answer) => {
            const rows = Exit.map(answer, (found) => new Map(found.map((row) => [row.chat_id, row])))
            return Effect.forEach(
              entries,
              (entry) =>
                Request.complete(entry, Exit.map(rows, (byId) => Option.fromNullishOr(byId.get(entry.request.chatId)))),
              { discard: true }
            )
          }),
          Effect.ensuring(Effect.sync(() => {
            for (const entry of entries) batches.delete(entry.request)
          }))
        )
      })
    ).pipe(RequestResolver.batchN(maxReadBatch))

    return (chatId: ChatId): Effect.Effect<Option.Option<RawRow>, BindingStoreError> =>
      Effect.suspend(() => {
        const request = new GetRow({ chatId })
        return Effect.onInterrupt(Effect.request(request, resolver), () =>
          Effect.sync(() => {
            const batch = batches.get(request)
            if (batch === undefined || !batches.delete(request)) return
            if (--batch.readers === 0) batch.fiber.interruptUnsafe()
          }))
      })
  })

/**
 * Needs `Migrated`: the schema is brought up to date once per process, by the
 * `Database` Layer, not here. `readSlots` is checked by the caller.
 *
 * @internal
 */
export const makeSql = (
  options?: SqlOptions
): Effect.Effect<Service, InvalidOption, SqlClient.SqlClient | Migrated | Scope.Scope> =>
  Effect.gen(function*() {
    const slots = options?.readSlots === undefined
      ? defaultReadSlots(yield* Effect.serviceOption(Sessions))
      : yield* checkReadSlots("readSlots", options.readSlots)
    return yield* makeSqlWith(slots)
  })

const makeSqlWith = (
  readSlots: number
): Effect.Effect<Service, never, SqlClient.SqlClient | Migrated | Scope.Scope> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { query: deadline } = yield* Deadlines
    const read = yield* makeReads(sql, readSlots, deadline)
    // every operation, whatever statements it makes, ends within the deadline
    const bounded = (operation: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      withDeadline(operation, deadline)(effect)

    // A row that breaks the schema (written by hand, or by a newer version) is
    // reported with the column that is wrong, and never half-read.
    const toBinding = (operation: string) => (raw: unknown) =>
      decodeRow(raw).pipe(
        Effect.mapError(databaseError(operation)),
        Effect.flatMap((row) =>
          Effect.try({
            try: () =>
              new ChatBinding({
                chatId: row.chat_id,
                parentChatId: Option.fromNullishOr(row.parent_chat_id),
                workspaceId: Option.fromNullishOr(row.workspace_id),
                buildId: Option.fromNullishOr(row.build_id),
                agentId: Option.fromNullishOr(row.agent_id),
                version: row.version,
                updatedAt: DateTime.fromDateUnsafe(row.updated_at)
              }),
            catch: (cause) =>
              new BindingStoreError({
                operation,
                detail: `a row does not match the schema: ${
                  cause instanceof Error && SchemaIssue.isIssue(cause.cause)
                    ? SchemaIssue.makeFormatterDefault()(cause.cause)
                    : String(cause)
                }`,
                cause
              })
          })
        )
      )

    const one = (operation: string) => (rows: ReadonlyArray<unknown>) =>
      rows.length === 0 ? Effect.succeed(Option.none<ChatBinding>()) : Effect.asSome(toBinding(operation)(rows[0]))

    const select = (operation: string, chatId: ChatId) =>
      sql`SELECT ${sql.literal(columns)} FROM lazydial_chat_bindings WHERE chat_id = ${chatId}`.pipe(
        Effect.mapError(databaseError(operation)),
        Effect.flatMap(one(operation))
      )

    const now = Effect.map(DateTime.now, DateTime.toDate)

    const service: Service = {
      createChat: Effect.fn("BindingStore.createChat")(function*(options) {
        const operation = "BindingStore.createChat"
        const chatId = options?.chatId ?? (yield* freshChatId)
        const updatedAt = yield* now
        const rows = yield* sql`INSERT INTO lazydial_chat_bindings
  (chat_id, parent_chat_id, workspace_id, build_id, agent_id, version, updated_at)
VALUES (${chatId}, NULL, ${options?.workspaceId ?? null}, NULL, NULL, 1, ${updatedAt})
ON CONFLICT (chat_id) DO NOTHING
RETURNING ${sql.literal(columns)}`.pipe(Effect.mapError(databaseError(operation)))
        const created = yield* one(operation)(rows)
        if (Option.isNone(created)) return yield* new ChatAlreadyExists({ chatId })
        return created.value
      }, bounded("BindingStore.createChat")),
      createChild: Effect.fn("BindingStore.createChild")(function*(parentChatId, options) {
        const operation = "BindingStore.createChild"
        const chatId = options?.chatId ?? (yield* freshChatId)
        const updatedAt = yield* now
        // One statement: the child copies the parent's row as it is at this
        // instant, never a mix of two versions of it. The copy is read back in
        // the same transaction, so a parent row that breaks the schema fails
        // the call and leaves no broken copy behind.
        const created = yield* sql`INSERT INTO lazydial_chat_bindings
  (chat_id, parent_chat_id, workspace_id, build_id, agent_id, version, updated_at)
SELECT ${chatId}::text, parent.chat_id, parent.workspace_id, parent.build_id, parent.agent_id, 1,
  ${updatedAt}::timestamptz
FROM lazydial_chat_bindings AS parent
WHERE parent.chat_id = ${parentChatId}
ON CONFLICT (chat_id) DO NOTHING
RETURNING ${sql.literal(columns)}`.pipe(
          Effect.mapError(databaseError(operation)),
          Effect.flatMap(one(operation)),
          // a killed connection may fail the COMMIT or ROLLBACK too: still a BindingStoreError
          transaction(sql, operation)
        )
        if (Option.isSome(created)) return created.value
        const parent = yield* select(operation, parentChatId)
        if (Option.isNone(parent)) return yield* new ChatNotFound({ chatId: parentChatId })
        return yield* new ChatAlreadyExists({ chatId })
      }, bounded("BindingStore.createChild")),
      get: Effect.fn("BindingStore.get")(function*(chatId) {
        const row = yield* read(chatId)
        if (Option.isNone(row)) return yield* new ChatNotFound({ chatId })
        // decoded by each reader: a row that breaks the schema fails its own chat's reads only
        return yield* toBinding("BindingStore.get")(row.value)
      }),
      setWorkspace: Effect.fn("BindingStore.setWorkspace")(function*(chatId, workspaceId) {
        const operation = "BindingStore.setWorkspace"
        const updatedAt = yield* now
        const rows = yield* sql`UPDATE lazydial_chat_bindings
SET workspace_id = ${Option.getOrNull(workspaceId)}, build_id = NULL, agent_id = NULL,
  version = version + 1, updated_at = ${updatedAt}
WHERE chat_id = ${chatId}
RETURNING ${sql.literal(columns)}`.pipe(Effect.mapError(databaseError(operation)))
        const updated = yield* one(operation)(rows)
        if (Option.isNone(updated)) return yield* new ChatNotFound({ chatId })
        return updated.value
      }, bounded("BindingStore.setWorkspace")),
      recordAgent: Effect.fn("BindingStore.recordAgent")(function*(chatId, { current, expected }) {
        const operation = "BindingStore.recordAgent"
        const updatedAt = yield* now
        // The compare-and-set. PostgreSQL re-checks the WHERE clause on the
        // newest row version after waiting for a concurrent writer, so of two
        // racing writers with the same expectation exactly one matches. The
        // pair must be one the directory holds for the chat's workspace: the
        // foreign key of migration 4 refuses any other, and the EXISTS here
        // makes that a refusal rather than a failed statement.
        const rows = yield* sql`UPDATE lazydial_chat_bindings
SET build_id = ${current.buildId}, agent_id = ${current.agentId},
  version = version + 1, updated_at = ${updatedAt}
WHERE chat_id = ${chatId}
  AND workspace_id = ${expected.workspaceId}
  AND agent_id IS NOT DISTINCT FROM ${Option.getOrNull(expected.agentId)}
  AND EXISTS (
    SELECT 1 FROM lazydial_workspace_builds AS build
    WHERE build.workspace_id = ${expected.workspaceId} AND build.build_id = ${current.buildId}
      AND build.agent_id = ${current.agentId}
  )
RETURNING ${sql.literal(columns)}`.pipe(Effect.mapError(databaseError(operation)))
        const updated = yield* one(operation)(rows)
        if (Option.isSome(updated)) return { _tag: "Recorded", binding: updated.value } satisfies RecordResult
        // Nothing written: refused when the directory holds no such pair (builds
        // are never deleted, so that answer is final), else lost to another writer.
        const reread = yield* sql<{ readonly held: boolean }>`SELECT ${sql.literal(columns)}, EXISTS (
  SELECT 1 FROM lazydial_workspace_builds AS build
  WHERE build.workspace_id = ${expected.workspaceId} AND build.build_id = ${current.buildId}
    AND build.agent_id = ${current.agentId}
) AS held
FROM lazydial_chat_bindings WHERE chat_id = ${chatId}`.pipe(Effect.mapError(databaseError(operation)))
        const row = yield* one(operation)(reread)
        if (Option.isNone(row)) return yield* new ChatNotFound({ chatId })
        return { _tag: reread[0]!.held ? "Lost" : "Refused", binding: row.value } satisfies RecordResult
      }, bounded("BindingStore.recordAgent"))
    }
    return service
  })
