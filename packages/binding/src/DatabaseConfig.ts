/**
 * `layerConfig`: PostgreSQL or PGlite, chosen by the environment. It can pick
 * either driver, so it needs BOTH installed (`@effect/sql-pg` and
 * `@electric-sql/pglite`); a program that knows its
 * database imports `PgDatabase` or `PgliteDatabase` instead and installs one.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as SqlClient from "effect/sql/SqlClient"
import type * as Database from "./Database.js"
import * as PgDatabase from "./PgDatabase.js"
import * as PgliteDatabase from "./PgliteDatabase.js"

/**
 * PostgreSQL when `LAZYDIAL_DATABASE_URL` is set (an empty value is refused,
 * not taken as "unset"), with the settings of `PgDatabase.layerPgConfig`;
 * otherwise PGlite, kept in `LAZYDIAL_DATA_DIR` when that is set and in memory
 * when not.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<
  SqlClient.SqlClient | Database.Listener | Database.Migrated | Database.Sessions,
  Database.StartError | Config.ConfigError
> = Layer.unwrap(
  Effect.map(
    Config.all({
      url: Config.option(Config.Redacted("LAZYDIAL_DATABASE_URL")),
      dataDir: Config.option(Config.String("LAZYDIAL_DATA_DIR"))
    }),
    ({ dataDir, url }): Layer.Layer<
      SqlClient.SqlClient | Database.Listener | Database.Migrated | Database.Sessions,
      Database.StartError | Config.ConfigError
    > =>
      Option.isSome(url)
        ? PgDatabase.layerPgConfig(url.value, { urlOption: "LAZYDIAL_DATABASE_URL" })
        : PgliteDatabase.layerPglite({ dataDir: Option.getOrUndefined(dataDir) })
  )
)
