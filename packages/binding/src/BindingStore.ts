/**
 * Where chats keep their binding. Every write is safe when several service
 * replicas share one database.
 *
 * ## The conditional write
 *
 * `recordAgent` is a compare-and-set: it writes the new build and agent only if
 * the row still has the workspace and the agent the caller read. Otherwise it
 * writes nothing and answers `Lost` with the row as it is now. So a concurrent
 * workspace change, or a newer repair by another replica, always wins, and an
 * agent of one workspace is never recorded under another. Since the previous
 * agent must match, a slow writer cannot move a binding back to an older build
 * after a newer one was recorded.
 *
 * | operation | writes | fails with |
 * |---|---|---|
 * | `createChat` | a new row, optionally with a workspace | `ChatAlreadyExists` |
 * | `createChild` | a new row with the parent's workspace, build and agent, copied in one statement | `ChatNotFound` (parent), `ChatAlreadyExists` |
 * | `get` | nothing | `ChatNotFound` |
 * | `setWorkspace` | the workspace; clears build and agent | `ChatNotFound` |
 * | `recordAgent` | build and agent, if the row still matches `expected` | `ChatNotFound` |
 *
 * Every operation may also fail with `BindingStoreError` when the database does.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { AgentId, ChatId, CurrentAgent, WorkspaceId } from "@lazydial/core"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
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
 * nothing was written, and `binding` is the row as it is now.
 *
 * @since 0.1.0
 * @category models
 */
export type RecordResult =
  | { readonly _tag: "Recorded"; readonly binding: ChatBinding }
  | { readonly _tag: "Lost"; readonly binding: ChatBinding }

/**
 * @since 0.1.0
 * @category tags
 */
export class BindingStore extends Context.Tag("@lazydial/binding/BindingStore")<
  BindingStore,
  {
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
  }
>() {}

/**
 * An in-memory store, for tests and examples. Each operation is atomic.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<Context.Tag.Service<BindingStore>> = internal.makeMemory

/**
 * A store over any `SqlClient` that speaks PostgreSQL (PGlite or a server).
 * Needs `Database.Migrated`, which every `Database` Layer provides (or
 * `Database.layerMigrated` for an `SqlClient` of your own): the migrations
 * run once per process, not once per store.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSql: Effect.Effect<Context.Tag.Service<BindingStore>, never, SqlClient.SqlClient | Migrated> =
  internal.makeSql

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<BindingStore> = Layer.effect(BindingStore, makeMemory)

/**
 * Provide an `SqlClient` from `Database` (`layerPglite`, `layerPg`, `layerConfig`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSql: Layer.Layer<BindingStore, never, SqlClient.SqlClient | Migrated> = Layer.effect(
  BindingStore,
  makeSql
)
