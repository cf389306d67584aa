/**
 * The source of truth for "which agent does this workspace have now?", over
 * SQL: a table of builds per workspace, where the current agent is the agent
 * of the latest build (none when the latest build stopped the workspace).
 *
 * ## Lookups do not stampede
 *
 * After a rebuild, every chat of the workspace needs a lookup at once. Here:
 * - lookups that arrive within the batch window (5 ms by default) are one SQL
 *   query, whatever their workspaces, made by Effect's `RequestResolver`
 *   (`setDelayEffect`); lookups of one workspace in a batch share its row;
 * - a lookup never joins a query already sent: it starts the next batch, so
 *   its answer is never older than its call;
 * - nothing is cached: once a query has answered, the next lookup makes a new
 *   query, since a stale answer defeats validation.
 *
 * `lazydial_directory_queries_total` counts the queries, and
 * `lazydial_directory_lookups_total` the lookups they answered.
 *
 * Why a window: timers that expire together still resume their fibers one
 * after the other, and an embedded database can answer a query before the
 * next fiber runs, so "at once" is never exactly one tick. Lookups are off the
 * hot path (after a slow or failed dial), so 5 ms of waiting costs little.
 * With a window of 0, only lookups of the same tick are batched.
 *
 * The window sleeps on the Effect clock: under `TestClock`, advance it (see
 * the package's tests), or build the directory with `batchWindow: 0`.
 *
 * @since 0.1.0
 */
import {
  AgentLookup,
  type AgentLookupError,
  type BuildId,
  type CurrentAgent,
  type InvalidOption,
  type WorkspaceId
} from "@lazydial/core"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import type { Migrated } from "./Database.js"
import type { BindingStoreError } from "./Errors.js"
import * as internal from "./internal/directory.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class AgentDirectory extends Context.Service<AgentDirectory, {
  /** The agent of the latest build and that build, from one query; None when the workspace is stopped. */
  readonly current: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<CurrentAgent>, AgentLookupError>
  /** A new build with its agent becomes the latest. Answers its build number. */
  readonly recordBuild: (workspaceId: WorkspaceId, build: CurrentAgent) => Effect.Effect<number, BindingStoreError>
  /** A new build with no agent becomes the latest: the workspace is stopped. Answers its build number. */
  readonly stopWorkspace: (
    workspaceId: WorkspaceId,
    options?: { readonly buildId?: BuildId | undefined }
  ) => Effect.Effect<number, BindingStoreError>
  /** How long a batch collects lookups before its query runs, as decoded and range-checked. */
  readonly batchWindow: Duration.Duration
}>()("@lazydial/binding/AgentDirectory") {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * How long a batch collects lookups before its query runs (default 5 ms).
   * 0: the batch closes after the lookups of the current scheduler tick.
   */
  readonly batchWindow?: Duration.Input | undefined
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaultBatchWindow: Duration.Duration = internal.defaultBatchWindow

/**
 * The largest batch window a Layer accepts.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxBatchWindow: Duration.Duration = internal.maxBatchWindow

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeSql: (
  options?: Options
) => Effect.Effect<
  AgentDirectory["Service"],
  InvalidOption,
  SqlClient.SqlClient | Migrated | Scope.Scope
> = internal.makeSql

/**
 * Provides `AgentDirectory`, and core's `AgentLookup` backed by it. Needs an
 * `SqlClient` and `Database.Migrated` from a `Database` Layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSql = (
  options?: Options
): Layer.Layer<AgentDirectory | AgentLookup.AgentLookup, InvalidOption, SqlClient.SqlClient | Migrated> =>
  Layer.effectContext(
    Effect.map(makeSql(options), (directory) =>
      Context.make(AgentDirectory, directory).pipe(
        Context.add(AgentLookup.AgentLookup, AgentLookup.AgentLookup.of({ current: directory.current }))
      ))
  )

/**
 * `layerSql`, with its options read from configuration whose names the
 * caller picks: the batch window with core's `Options.durationConfig` (up to
 * `maxBatchWindow`), in `Options.optional` so that an unset variable means the
 * default.
 *
 * @example
 * ```ts
 * import { AgentDirectory } from "@lazydial/binding"
 * import { Options } from "@lazydial/core"
 *
 * const directory = AgentDirectory.layerSqlConfig({
 *   batchWindow: Options.optional(
 *     Options.durationConfig("MY_LOOKUP_BATCH_WINDOW", { max: AgentDirectory.maxBatchWindow })
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerSqlConfig = (
  config: Config.Wrap<Options>
): Layer.Layer<
  AgentDirectory | AgentLookup.AgentLookup,
  InvalidOption | Config.ConfigError,
  SqlClient.SqlClient | Migrated
> => Layer.unwrap(Effect.map(Config.unwrap(config), layerSql))

/**
 * SQL queries made by lookups.
 *
 * @since 0.1.0
 * @category metrics
 */
export const queriesTotal: Metric.Counter<number> = internal.queriesTotal

/**
 * Lookups answered, shared or not.
 *
 * @since 0.1.0
 * @category metrics
 */
export const lookupsTotal: Metric.Counter<number> = internal.lookupsTotal
