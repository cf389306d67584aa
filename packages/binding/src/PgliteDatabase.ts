/**
 * PGlite (PostgreSQL compiled to WASM) as the binding store's database: the
 * Layer of `Database`'s table that needs `@electric-sql/pglite`. Install
 * `@electric-sql/pglite` next to this package to use it (an optional peer, so
 * a PostgreSQL user does not download its 27 MB). It does not need
 * `@effect/sql-pg`.
 *
 * The client is this package's own, on `effect/sql`'s `SqlClient`: there is
 * no `@effect/sql-pglite` on a 4.1 line (npm's latest, 4.0.0-beta.93, pins an
 * Effect 4.0 beta, which would put a second Effect in the tree).
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import * as Database from "./Database.js"
import type { BindingStoreError, DatabaseSchemaTooNew } from "./Errors.js"
import * as internalPglite from "./internal/pglite.js"

/**
 * The embedded default: PostgreSQL compiled to WASM, shipped in its npm
 * package. It needs no server and no native build. In memory unless `dataDir`
 * is given. It has one session, so statements are serialized; a transaction
 * holds the session until it ends. One process only: two processes on one
 * `dataDir` would each think they own it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPglite = (options?: {
  readonly dataDir?: string | undefined
}): Layer.Layer<
  SqlClient.SqlClient | Database.Listener | Database.Migrated | Database.Sessions,
  BindingStoreError | DatabaseSchemaTooNew
> =>
  Layer.provideMerge(
    // fresh: Effect 4 shares a built Layer across every build that overlaps it,
    // and the migrations of this database must not be another database's
    Layer.fresh(Database.layerMigrated),
    Layer.effectContext(
      Effect.map(
        internalPglite.make(options),
        ({ listen, sql }) =>
          Context.make(Database.Listener, { listen }).pipe(
            Context.add(SqlClient.SqlClient, sql),
            // one session: statements run one at a time
            Context.add(Database.Sessions, { size: 1 })
          )
      )
    ).pipe(Layer.provide(Reactivity.layer))
  )

/**
 * `layerPglite`, with its data directory read from configuration whose name
 * the caller picks (in memory when it is unset: wrap it in core's
 * `Options.optional`).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<{ readonly dataDir?: string | undefined }>
): Layer.Layer<
  SqlClient.SqlClient | Database.Listener | Database.Migrated | Database.Sessions,
  BindingStoreError | DatabaseSchemaTooNew | Config.ConfigError
> => Layer.unwrap(Effect.map(Config.unwrap(config), layerPglite))
