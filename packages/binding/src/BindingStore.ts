/**
 * Where chats keep their binding. Every write is safe when several service
 * replicas share one database.
 *
 * ## The conditional write
 *
 * `recordAgent` is a compare-and-set: it writes the new build and agent only if
 * the row still has the workspace and the agent the caller read. Otherwise it
 * writes nothing and answers `Lost` with the row as it is now. So a concurrent
 * workspace change, or a newer repair by another replica, always wins. Since
 * the previous agent must match, a slow writer cannot move a binding back to
 * an older build after a newer one was recorded.
 *
 * ## An agent belongs to its workspace
 *
 * On the SQL store the new (build, agent) pair must be one the directory holds
 * for the chat's workspace (a row of `AgentDirectory`'s builds): any other is
 * `Refused`, and the database itself enforces it with a foreign key from the
 * chat's (workspace, build, agent) to the builds. So a chat never names an
 * agent of another workspace, nor a build that exists nowhere, whoever
 * writes. The in-memory store sees no directory and cannot check: it trusts
 * its caller (tests, examples).
 *
 * | operation | writes | fails with |
 * |---|---|---|
 * | `createChat` | a new row, optionally with a workspace | `ChatAlreadyExists` |
 * | `createChild` | a new row with the parent's workspace, build and agent, copied in one statement | `ChatNotFound` (parent), `ChatAlreadyExists` |
 * | `get` | nothing | `ChatNotFound` |
 * | `setWorkspace` | the workspace; clears build and agent | `ChatNotFound` |
 * | `recordAgent` | build and agent, if the row still matches `expected` and the directory holds the pair | `ChatNotFound` |
 *
 * Every operation may also fail with `BindingStoreError` when the database
 * does, or when it does not answer within the query deadline
 * (`Database.Deadlines`): each call ends by then, even on a hung server.
 *
 * ## Reads go together
 *
 * `get` is the one statement of a steady-state turn. On the SQL store, the
 * `get`s of one scheduler tick are one query, `WHERE chat_id IN (…)` (at most
 * 500 chats), batched by Effect's `RequestResolver`, and at most `readSlots`
 * read queries run at once. A `get` never takes the answer of a query that
 * started before it was called, so a turn always reads its own writes.
 *
 * | option | default | range |
 * |---|---|---|
 * | `readSlots` | 1 on PGlite; the pool size, at most 4, on PostgreSQL; 4 on an `SqlClient` of your own | 1 to 100 |
 *
 * @since 0.1.0
 */
import type { AgentId, ChatId, CurrentAgent, InvalidOption, WorkspaceId } from "@lazydial/core"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import type { ChatBinding } from "./ChatBinding.js"
import type { Migrated } from "./Database.js"
import type { BindingStoreError, ChatAlreadyExists, ChatNotFound } from "./Errors.js"
import * as internal from "./internal/store.js"

/**
 * What the caller read before it looked up the current agent.
 *
 * @since 0.1.0
 * @category models
 */
export interface Expected {
  readonly workspaceId: WorkspaceId
  /** The agent the row had; `None` for a lazy bind. */
  readonly agentId: Option.Option<AgentId>
}

/**
 * The answer of `recordAgent`. `Lost`: another writer changed the row first;
 * nothing was written, and `binding` is the row as it is now. `Refused`: the
 * directory holds no such (build, agent) pair for the chat's workspace, so
 * nothing was written, and never will be for that pair; `binding` is the row
 * as it is now. Only the SQL store refuses (see `makeMemory`).
 *
 * @since 0.1.0
 * @category models
 */
export type RecordResult =
  | { readonly _tag: "Recorded"; readonly binding: ChatBinding }
  | { readonly _tag: "Lost"; readonly binding: ChatBinding }
  | { readonly _tag: "Refused"; readonly binding: ChatBinding }

/**
 * @since 0.1.0
 * @category tags
 */
export class BindingStore extends Context.Service<BindingStore, {
  /** A new chat. A fresh id is generated unless `chatId` is given. */
  readonly createChat: (options?: {
    readonly chatId?: ChatId | undefined
    readonly workspaceId?: WorkspaceId | undefined
  }) => Effect.Effect<ChatBinding, ChatAlreadyExists | BindingStoreError>
  /** A child chat: it starts with the parent's workspace, build and agent, then evolves on its own. */
  readonly createChild: (
    parentChatId: ChatId,
    options?: { readonly chatId?: ChatId | undefined }
  ) => Effect.Effect<ChatBinding, ChatNotFound | ChatAlreadyExists | BindingStoreError>
  readonly get: (chatId: ChatId) => Effect.Effect<ChatBinding, ChatNotFound | BindingStoreError>
  /** A workspace change: sets the workspace (None: no workspace) and clears build and agent. */
  readonly setWorkspace: (
    chatId: ChatId,
    workspaceId: Option.Option<WorkspaceId>
  ) => Effect.Effect<ChatBinding, ChatNotFound | BindingStoreError>
  /** The conditional write of a lazy bind or a repair. */
  readonly recordAgent: (
    chatId: ChatId,
    write: { readonly expected: Expected; readonly current: CurrentAgent }
  ) => Effect.Effect<RecordResult, ChatNotFound | BindingStoreError>
}>()("@lazydial/binding/BindingStore") {}

/**
 * An in-memory store, for tests and examples. Each operation is atomic. It
 * sees no directory, so it records any pair (it never answers `Refused`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<BindingStore["Service"]> = internal.makeMemory

/**
 * The options of the SQL store.
 *
 * @since 0.1.0
 * @category models
 */
export interface SqlOptions {
  /**
   * The most read queries in flight at once (each holds the reads of one
   * scheduler tick); the others wait for a slot. An integer from 1 to 100. Default: the
   * database's `Database.Sessions` (1 on PGlite), at most 4; 4 without it.
   */
  readonly readSlots?: number | undefined
}

/**
 * @since 0.1.0
 * @category constants
 */
export const maxReadSlots: number = internal.maxReadSlots

/**
 * A store over any `SqlClient` that speaks PostgreSQL (PGlite or a server).
 * Needs `Database.Migrated`, which every `Database` Layer provides (or
 * `Database.layerMigrated` for an `SqlClient` of your own): the migrations
 * run once per process, not once per store. Its read queries run in fibers of
 * the Scope it is given.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSql: (
  options?: SqlOptions
) => Effect.Effect<
  BindingStore["Service"],
  InvalidOption,
  SqlClient.SqlClient | Migrated | Scope.Scope
> = internal.makeSql

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<BindingStore> = Layer.effect(BindingStore, makeMemory)

/**
 * The SQL store. Provide an `SqlClient` from `Database` (`layerPglite`,
 * `layerPg`, `DatabaseConfig.layerConfig`); a refused option fails the Layer
 * with an `InvalidOption` that names it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSql = (
  options?: SqlOptions
): Layer.Layer<BindingStore, InvalidOption, SqlClient.SqlClient | Migrated> =>
  Layer.effect(BindingStore, makeSql(options))

/**
 * `layerSql`, with its options read from configuration whose names the
 * caller picks: `readSlots` with core's `Options.numberConfig` (an integer
 * from 1 to `maxReadSlots`), in `Options.optional` so that an unset variable
 * means the default.
 *
 * @example
 * ```ts
 * import { BindingStore } from "@lazydial/binding"
 * import { Options } from "@lazydial/core"
 *
 * const store = BindingStore.layerSqlConfig({
 *   readSlots: Options.optional(
 *     Options.numberConfig("MY_STORE_READ_SLOTS", { min: 1, max: BindingStore.maxReadSlots, integer: true })
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerSqlConfig = (
  config: Config.Wrap<SqlOptions>
): Layer.Layer<BindingStore, InvalidOption | Config.ConfigError, SqlClient.SqlClient | Migrated> =>
  Layer.effect(BindingStore, Effect.flatMap(Config.unwrap(config), makeSql))

/**
 * SQL queries made by `get`: with reads going together, fewer than the gets.
 *
 * @since 0.1.0
 * @category metrics
 */
export const readQueriesTotal: Metric.Counter<number> = internal.readQueriesTotal
