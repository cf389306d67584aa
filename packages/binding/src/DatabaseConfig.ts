/**
 * `layerConfig`: PostgreSQL or PGlite, chosen by a URL read from
 * configuration. It can pick either driver, so it needs BOTH installed
 * (`@effect/sql-pg` and `@electric-sql/pglite`); a program that knows its
 * database imports `PgDatabase` or `PgliteDatabase` instead and installs one.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Database from "./Database.js"
import * as PgDatabase from "./PgDatabase.js"
import * as PgliteDatabase from "./PgliteDatabase.js"

/**
 * What `layerConfig` reads: the settings of `PgDatabase.layerConfig`, with
 * the URL optional, and PGlite's data directory.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options extends Omit<PgDatabase.ConfigOptions, "url"> {
  /** PostgreSQL's URL; unset: PGlite. */
  readonly url?: string | Redacted.Redacted | undefined
  /** Where PGlite keeps its data; unset: in memory. Used only without a URL. */
  readonly dataDir?: string | undefined
}

/**
 * PostgreSQL when the URL is set, with the settings of
 * `PgDatabase.layerConfig`; otherwise PGlite, kept in `dataDir` when that is
 * set and in memory when not. The caller names the variables: read the URL
 * with `Options.optional(Database.urlConfig(name))`, so that an unset one
 * means PGlite and a set one that is not PostgreSQL's is refused.
 *
 * @example
 * ```ts
 * import { Database } from "@lazydial/binding"
 * import * as DatabaseConfig from "@lazydial/binding/DatabaseConfig"
 * import { Options } from "@lazydial/core"
 * import { Config } from "effect"
 *
 * const database = DatabaseConfig.layerConfig({
 *   url: Options.optional(Database.urlConfig("MY_DATABASE_URL")),
 *   dataDir: Options.optional(Config.String("MY_DATA_DIR"))
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<Options>
): Layer.Layer<
  SqlClient.SqlClient | Database.Listener | Database.Migrated | Database.Sessions,
  Database.StartError | Config.ConfigError
> =>
  Layer.unwrap(
    Effect.map(
      Config.unwrap(config),
      ({ dataDir, url, ...settings }): Layer.Layer<
        SqlClient.SqlClient | Database.Listener | Database.Migrated | Database.Sessions,
        Database.StartError
      > => url === undefined ? PgliteDatabase.layerPglite({ dataDir }) : PgDatabase.layerPg(url, settings)
    )
  )
