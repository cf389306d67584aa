/**
 * The databases a binding store runs on, as `SqlClient` Layers. Every Layer
 * speaks the PostgreSQL dialect, so the same SQL runs on each.
 *
 * | Layer | database | use |
 * |---|---|---|
 * | `layerPglite()` | PGlite (Postgres in WASM), in memory | tests, examples, a single process |
 * | `layerPglite({ dataDir })` | PGlite, in a directory | a single process that keeps its data |
 * | `layerPg(url)` | PostgreSQL, through `@effect/sql-pg` | production, several replicas |
 * | `layerConfig` | PostgreSQL when `LAZYDIAL_DATABASE_URL` is set, else PGlite | the service |
 *
 * @since 0.1.0
 */
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as internalPg from "./internal/pg.js"
import * as internal from "./internal/pglite.js"

/**
 * The embedded default: PostgreSQL compiled to WASM, shipped in its npm
 * package. It needs no server and no native build. In memory unless `dataDir`
 * is given. It has one session, so statements are serialized; a transaction
 * holds the session until it ends.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPglite = (options?: {
  readonly dataDir?: string | undefined
}): Layer.Layer<SqlClient.SqlClient, SqlError> => internal.layer(options)

/**
 * A PostgreSQL server, through a pool of `@effect/sql-pg`. Also provides
 * `PgClient`. The pool hands a freed client to its next waiter on the next
 * tick: `pg-pool` does it synchronously, and thousands of waiters interrupted
 * while the pool was full (turns past their timeout) then overflowed the
 * stack in one release and crashed the process.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg = (
  url: string | Redacted.Redacted,
  options?: Omit<PgClient.PgClientConfig, "url">
): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, SqlError> =>
  internalPg.layer({
    ...options,
    url: Redacted.isRedacted(url) ? url : Redacted.make(url),
    applicationName: options?.applicationName ?? "lazydial"
  })

/**
 * PostgreSQL when `LAZYDIAL_DATABASE_URL` is set; otherwise PGlite, kept in
 * `LAZYDIAL_DATA_DIR` when that is set and in memory when not.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<SqlClient.SqlClient, SqlError | ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(
    Config.all({
      url: Config.option(Config.redacted("LAZYDIAL_DATABASE_URL")),
      dataDir: Config.option(Config.string("LAZYDIAL_DATA_DIR"))
    }),
    ({ dataDir, url }): Layer.Layer<SqlClient.SqlClient, SqlError> =>
      Option.isSome(url) ? layerPg(url.value) : layerPglite({ dataDir: Option.getOrUndefined(dataDir) })
  )
)
