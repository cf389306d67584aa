/**
 * A PostgreSQL server as the binding store's database, through
 * `@effect/sql-pg` (which speaks PostgreSQL's wire protocol itself): the
 * Layers of `Database`'s table that need it. Install `@effect/sql-pg` next to
 * this package to use them (an optional peer, so a PGlite user does not
 * download it). The settings, their environment variables and the errors at
 * start are in `Database`.
 *
 * @since 0.1.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Config from "effect/Config"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as SqlClient from "effect/sql/SqlClient"
import * as Database from "./Database.js"
import * as internal from "./internal/database.js"
import * as internalPg from "./internal/pg.js"

/**
 * The options of `layerPg`: the settings, and what else `@effect/sql-pg`
 * takes (an application name, span attributes, ...). Out-of-range settings
 * fail the Layer with `InvalidOption`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgOptions extends Omit<PgClient.PgPoolConfig, "url" | "maxConnections" | "connectTimeout"> {
  readonly poolSize?: number | undefined
  readonly connectTimeout?: Duration.Input | undefined
  readonly statementTimeout?: Duration.Input | undefined
  /** The client-side deadline of every call (see `Database`'s "Deadlines"). */
  readonly queryDeadline?: Duration.Input | undefined
}

/**
 * A PostgreSQL server, through a pool of `@effect/sql-pg`. Also provides
 * `PgClient`.
 *
 * Starts by connecting (within the connect timeout) and migrating; see
 * `Database`'s table of errors. A URL that is not PostgreSQL's, or a setting
 * out of range, fails it with an `InvalidOption` that names the option.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg = (
  url: string | Redacted.Redacted,
  options?: PgOptions
): Layer.Layer<
  SqlClient.SqlClient | PgClient.PgClient | Database.Listener | Database.Migrated | Database.Sessions,
  Database.StartError
> =>
  Layer.unwrap(Effect.gen(function*() {
    const { target, url: redacted } = yield* internal.decodeUrl("database URL", url)
    const { connectTimeout, poolSize, queryDeadline, statementTimeout, ...rest } = options ?? {}
    const settings = yield* internal.checkSettings({ connectTimeout, poolSize, statementTimeout, queryDeadline })
    const config: internalPg.Config = {
      ...rest,
      url: redacted,
      maxConnections: settings.poolSize,
      connectTimeout: settings.connectTimeout,
      statementTimeout: settings.statementTimeout,
      applicationName: rest.applicationName ?? "lazydial"
    }
    const pg = Layer.mergeAll(
      internalPg.layer(config, target),
      Layer.succeed(Database.Listener, { listen: internalPg.listen(config) }),
      Layer.succeed(Database.Sessions, { size: settings.poolSize }),
      Layer.succeed(Database.Deadlines, internal.deadlinesOf(settings))
    )
    // fresh: Effect 4 shares a built Layer across every build that overlaps it,
    // and the migrations of this database must not be another database's
    return Layer.provideMerge(Layer.fresh(Database.layerMigrated), pg)
  }))

/**
 * What `layerConfig` reads: the URL and the settings of `layerPg`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ConfigOptions {
  readonly url: string | Redacted.Redacted
  readonly poolSize?: number | undefined
  readonly connectTimeout?: Duration.Input | undefined
  readonly statementTimeout?: Duration.Input | undefined
  readonly queryDeadline?: Duration.Input | undefined
  readonly applicationName?: string | undefined
}

/**
 * `layerPg`, with its URL and settings read from configuration whose names
 * the caller picks, as `PgClient.layerConfig` takes its own: the URL with
 * `Database.urlConfig`, the settings with core's `Options.numberConfig` and
 * `Options.durationConfig` (their ranges are `Database.maxima`), each in
 * `Options.optional` so that an unset variable means the default.
 *
 * @example
 * ```ts
 * import { Database } from "@lazydial/binding"
 * import * as PgDatabase from "@lazydial/binding/PgDatabase"
 * import { Options } from "@lazydial/core"
 *
 * const database = PgDatabase.layerConfig({
 *   url: Database.urlConfig("MY_DATABASE_URL"),
 *   poolSize: Options.optional(
 *     Options.numberConfig("MY_DB_POOL_SIZE", { min: 1, max: Database.maxima.poolSize, integer: true })
 *   ),
 *   queryDeadline: Options.optional(
 *     Options.durationConfig("MY_DB_QUERY_DEADLINE", { max: Database.maxima.queryDeadline, allowZero: false })
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<ConfigOptions>
): Layer.Layer<
  SqlClient.SqlClient | PgClient.PgClient | Database.Listener | Database.Migrated | Database.Sessions,
  Database.StartError | Config.ConfigError
> => Layer.unwrap(Effect.map(Config.unwrap(config), ({ url, ...options }) => layerPg(url, options)))
