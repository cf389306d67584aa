/**
 * The source of truth for "which agent does this workspace have now?", over
 * SQL: a table of builds per workspace, where the current agent is the agent
 * of the latest build (none when the latest build stopped the workspace).
 *
 * ## Lookups do not stampede
 *
 * After a rebuild, every chat of the workspace needs a lookup at once. Here:
 * - lookups of one workspace that overlap share one query: a lookup joins the
 *   batch being collected, or the query in flight, for its workspace;
 * - lookups of different workspaces that arrive together (within the batch
 *   window, by default the current scheduler tick) are one SQL query, made by
 *   an Effect `RequestResolver.makeBatched`;
 * - nothing is cached: once a query has answered, the next lookup makes a new
 *   query, since a stale answer defeats validation.
 *
 * `lazydial_directory_queries_total` counts the queries, and
 * `lazydial_directory_lookups_total` the lookups they answered.
 *
 * @since 0.1.0
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import {
  type AgentLookupError,
  AgentLookupTag,
  type BuildId,
  type CurrentAgent,
  type WorkspaceId
} from "@lazydial/core"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { AgentDirectoryError } from "./Errors.js"
import * as internal from "./internal/directory.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class AgentDirectory extends Context.Tag("@lazydial/binding/AgentDirectory")<
  AgentDirectory,
  {
    /** The agent of the latest build and that build, from one query; None when the workspace is stopped. */
    readonly current: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<CurrentAgent>, AgentLookupError>
    /** A new build with its agent becomes the latest. Answers its build number. */
    readonly recordBuild: (workspaceId: WorkspaceId, build: CurrentAgent) => Effect.Effect<number, AgentDirectoryError>
    /** A new build with no agent becomes the latest: the workspace is stopped. Answers its build number. */
    readonly stopWorkspace: (
      workspaceId: WorkspaceId,
      options?: { readonly buildId?: BuildId | undefined }
    ) => Effect.Effect<number, AgentDirectoryError>
  }
>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How long a batch collects lookups before its query runs. Default 0: the
   * batch closes after the lookups that are ready in the current scheduler
   * tick, so no lookup waits on a timer.
   */
  readonly batchWindow?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeSql: (
  options?: Options
) => Effect.Effect<Context.Tag.Service<AgentDirectory>, AgentDirectoryError, SqlClient.SqlClient | Scope.Scope> =
  internal.makeSql

/**
 * Provides `AgentDirectory`, and core's `AgentLookup` backed by it. Needs an
 * `SqlClient` from `Database`; runs the migrations first.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSql = (
  options?: Options
): Layer.Layer<AgentDirectory | AgentLookupTag, AgentDirectoryError, SqlClient.SqlClient> =>
  Layer.scopedContext(
    Effect.map(makeSql(options), (directory) =>
      Context.make(AgentDirectory, directory).pipe(
        Context.add(AgentLookupTag, AgentLookupTag.of({ current: directory.current }))
      ))
  )

/**
 * SQL queries made by lookups.
 *
 * @since 0.1.0
 * @category metrics
 */
export const queriesTotal: Metric.Metric.Counter<number> = internal.queriesTotal

/**
 * Lookups answered, shared or not.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lookupsTotal: Metric.Metric.Counter<number> = internal.lookupsTotal
