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
import type * as Config from "effect/Config"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
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

const makePg = (
  url: string | Redacted.Redacted,
  options: PgOptions | undefined,
  names: { readonly url: string } & { readonly [K in keyof Database.Settings]: string }
): Layer.Layer<
  SqlClient.SqlClient | PgClient.PgClient | Database.Listener | Database.Migrated | Database.Sessions,
  Database.StartError
> =>
  Layer.unwrap(Effect.gen(function*() {
    const { target, url: redacted } = yield* internal.decodeUrl(names.url, url)
    const { connectTimeout, poolSize, queryDeadline, statementTimeout, ...rest } = options ?? {}
    const settings = yield* internal.checkSettings(
      { connectTimeout, poolSize, statementTimeout, queryDeadline },
      names
    )
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
 * A PostgreSQL server, through a pool of `@effect/sql-pg`. Also provides
 * `PgClient`.
 *
 * Starts by connecting (within the connect timeout) and migrating; see
 * `Database`'s table of errors.
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
  makePg(url, options, {
    url: "database URL",
    poolSize: "poolSize",
    connectTimeout: "connectTimeout",
    statementTimeout: "statementTimeout",
    queryDeadline: "queryDeadline"
  })

/**
 * `layerPg`, with its settings from the environment (`LAZYDIAL_DB_POOL_SIZE`,
 * `LAZYDIAL_DB_CONNECT_TIMEOUT`, `LAZYDIAL_DB_STATEMENT_TIMEOUT`,
 * `LAZYDIAL_DB_QUERY_DEADLINE`). For a URL
 * given on a command line; `urlOption` names it in an `InvalidOption`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPgConfig = (
  url: string | Redacted.Redacted,
  options?: { readonly urlOption?: string | undefined; readonly applicationName?: string | undefined }
): Layer.Layer<
  SqlClient.SqlClient | PgClient.PgClient | Database.Listener | Database.Migrated | Database.Sessions,
  Database.StartError | Config.ConfigError
> =>
  Layer.unwrap(Effect.map(Database.settingsConfig, (settings) =>
    makePg(url, {
      poolSize: Option.getOrUndefined(settings.poolSize),
      connectTimeout: Option.getOrUndefined(settings.connectTimeout),
      statementTimeout: Option.getOrUndefined(settings.statementTimeout),
      queryDeadline: Option.getOrUndefined(settings.queryDeadline),
      applicationName: options?.applicationName
    }, { url: options?.urlOption ?? "database URL", ...Database.settingNames })))
