/**
 * What every database a binding store runs on shares: the `Migrated` and
 * `Listener` tags, the migrations, the settings and URL checks. The drivers
 * are Layers in modules of their own, so that each user installs only the
 * driver it uses: this module (and the package's root) imports neither
 * `@effect/sql-pg` nor PGlite. Every driver Layer speaks the PostgreSQL
 * dialect, so the same SQL runs on each, and brings the schema up to date when
 * it starts (see `Migrated`).
 *
 * | Layer | module | database | needs installed | use |
 * |---|---|---|---|---|
 * | `layerPglite()` | `@lazydial/binding/PgliteDatabase` | PGlite (Postgres in WASM), in memory | `@electric-sql/pglite` | tests, examples, a single process |
 * | `layerPglite({ dataDir })` | `@lazydial/binding/PgliteDatabase` | PGlite, in a directory | `@electric-sql/pglite` | a single process that keeps its data |
 * | `layerPg(url, options)` | `@lazydial/binding/PgDatabase` | PostgreSQL, through `@effect/sql-pg` | `@effect/sql-pg` | production, several replicas |
 * | `layerConfig(config)` | `@lazydial/binding/PgDatabase` | `layerPg`, its URL and settings read from configuration | `@effect/sql-pg` | a program that names its variables |
 * | `layerConfig(config)` | `@lazydial/binding/DatabaseConfig` | PostgreSQL when the configured URL is set, else PGlite | both | the service |
 * | `layerMigrated` | this module | your own `SqlClient` | | anything else |
 *
 * ## Settings
 *
 * | option | default | range (`maxima`) |
 * |---|---|---|
 * | `poolSize` | 10 | 1 to 500 connections |
 * | `connectTimeout` | 5 seconds | above 0, at most 1 minute |
 * | `statementTimeout` | 30 seconds | above 0, at most 1 hour |
 * | `queryDeadline` | 10 seconds | above 0, at most 1 hour |
 *
 * A `layerConfig` reads them from variables its caller names (core's
 * `Options.numberConfig` and `Options.durationConfig`: `"5 seconds"` or bare
 * milliseconds) and the URL with `urlConfig`; this package reads no variable
 * of its own.
 *
 * ## Deadlines
 *
 * Every call this package makes to the database (a statement, or a
 * transaction with its statements) has a client-side deadline, the query
 * deadline, counted on the Effect clock from the call: waiting for a pooled
 * connection included. It holds when the server is hung (a stopped process,
 * a lost network) and so no server-side `statement_timeout` can fire; the
 * caller then gets a `BindingStoreError` at the deadline, and the statement is
 * abandoned in the background (see `Deadlines`). The migrations at start get
 * the statement timeout plus the query deadline.
 *
 * ## Errors at start
 *
 * | error | when |
 * |---|---|
 * | `InvalidOption` (core) | a URL that is empty or not `postgres://` / `postgresql://`; a setting out of range |
 * | `DatabaseConnectError` | no connection within the connect timeout: wrong user or password, closed port, unknown host or database; names host, port, database and user, never the password |
 * | `DatabaseSchemaTooNew` | the database holds a migration this code does not know: a newer version migrated it |
 * | `BindingStoreError` | a migration failed, or PGlite did not start |
 *
 * @since 0.1.0
 */
import type { InvalidOption } from "@lazydial/core"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type * as Stream from "effect/Stream"
import type { BindingStoreError, DatabaseConnectError, DatabaseSchemaTooNew } from "./Errors.js"
import * as internal from "./internal/database.js"
import * as internalDeadline from "./internal/deadline.js"
import * as migrations from "./internal/migrations.js"

/**
 * The pool and timeouts of a PostgreSQL Layer, as decoded and range-checked.
 *
 * @since 0.1.0
 * @category models
 */
export interface Settings {
  /** Connections of the pool: the most statements this process runs at once. */
  readonly poolSize: number
  /** How long the first connection may take before the Layer fails with `DatabaseConnectError`. */
  readonly connectTimeout: Duration.Duration
  /** PostgreSQL's `statement_timeout`: a statement that runs longer is cancelled by the server. */
  readonly statementTimeout: Duration.Duration
  /**
   * The client-side deadline of every call to the database: it holds when the
   * server is hung, which a `statement_timeout` does not.
   */
  readonly queryDeadline: Duration.Duration
}

/**
 * The client-side deadlines, as the stores, the directory, the notices and
 * the migrations read them. The driver Layers provide them from their
 * settings; without a provider (an `SqlClient` of your own) the defaults
 * apply: 10 seconds for a call, and 40 seconds (the default statement timeout
 * plus the query deadline) for the migrations.
 *
 * @since 0.1.0
 * @category models
 */
export interface Deadlines {
  /** Every call of a store, the directory and the notices: a statement, or a transaction. */
  readonly query: Duration.Duration
  /** The migrations at start: one transaction. */
  readonly migration: Duration.Duration
}

/**
 * @since 0.1.0
 * @category tags
 */
export const Deadlines: Context.Reference<Deadlines> = internal.Deadlines

/**
 * @since 0.1.0
 * @category constants
 */
export const defaults: Settings = internal.defaults

/**
 * The largest value of each setting a Layer accepts (the least is 1
 * connection, or above 0 for a duration): for a `layerConfig` caller that
 * range-checks a variable with core's `Options.numberConfig` or
 * `Options.durationConfig`, so that its error names the variable.
 *
 * @since 0.2.0
 * @category constants
 */
export const maxima: Settings = internal.maxima

/**
 * Everything a `Database` Layer may fail with when it starts.
 *
 * @since 0.1.0
 * @category errors
 */
export type StartError = InvalidOption | DatabaseConnectError | DatabaseSchemaTooNew | BindingStoreError

/**
 * Bounds a call to the database of your own (a statement of a service on the
 * same `SqlClient`) by the query deadline of `Deadlines`, as this package
 * bounds its own: at the deadline the caller fails with a `BindingStoreError`
 * naming `operation`, at once, and the call is interrupted in the
 * background (an `@effect/sql-pg` statement then cancels and drains, which a
 * hung server never lets finish, so it is not waited for).
 *
 * @since 0.1.0
 * @category combinators
 */
export const withDeadline =
  (operation: string) => <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | BindingStoreError, R> =>
    Effect.flatMap(internal.Deadlines, (deadlines) => internalDeadline.withDeadline(operation, deadlines.query)(self))

/**
 * Proof that the schema is up to date: `BindingStore.layerSql` and
 * `AgentDirectory.layerSql` need it, so the migrations run once per process
 * (a Layer is built once, however many Layers need it), before the first
 * statement of either. Every driver Layer (and `layerMigrated`) provides it.
 *
 * @since 0.1.0
 * @category tags
 */
export class Migrated extends Context.Service<Migrated, {
  /** The latest migration, in the database and in this code alike. */
  readonly version: number
  /** The migrations this process applied: none when another process (or an earlier run) had. */
  readonly applied: ReadonlyArray<number>
}>()("@lazydial/binding/Database/Migrated") {}

/**
 * The database's LISTEN side, on a session of its own. `listen(channel)`
 * succeeds once LISTEN is in place (so every NOTIFY committed after it is
 * delivered) with the stream of the payloads sent on `channel`; the stream
 * fails when that session is lost, since notices sent meanwhile are missed and
 * a reader must forget what it learned from them. Closing the Scope stops
 * listening. `PgliteDatabase.layerPglite` and `PgDatabase.layerPg` provide it; `RebuildNotices.layerSql`
 * reads it.
 *
 * @since 0.1.0
 * @category tags
 */
export class Listener extends Context.Service<Listener, {
  readonly listen: (channel: string) => Effect.Effect<Stream.Stream<string, SqlError>, SqlError, Scope.Scope>
}>()("@lazydial/binding/Database/Listener") {}

/**
 * How many statements this process's database runs at once: 1 on PGlite (one
 * session, every statement in turn), the pool size on PostgreSQL. The driver
 * Layers provide it so that a store can size its own concurrency to the
 * database's (`BindingStore`'s read slots); an `SqlClient` of your own need not.
 *
 * @since 0.1.0
 * @category tags
 */
export class Sessions extends Context.Service<Sessions, { readonly size: number }>()(
  "@lazydial/binding/Database/Sessions"
) {}

/**
 * Runs the migrations on the `SqlClient` it is given, once per database even
 * when several replicas start together (an advisory lock serializes them),
 * and refuses a schema that a newer version migrated. For an `SqlClient` of
 * your own; the driver Layers include it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMigrated: Layer.Layer<Migrated, BindingStoreError | DatabaseSchemaTooNew, SqlClient.SqlClient> = Layer
  .effect(
    Migrated,
    Effect.map(migrations.run, (applied) => ({ version: migrations.latest, applied }))
  )

/**
 * Decodes a database URL: refuses an empty one, and any scheme other than
 * `postgres://` and `postgresql://`, with an `InvalidOption` named `option`
 * whose value has its password masked. For a CLI that wants to check its
 * `--database-url` before it builds anything.
 *
 * @since 0.1.0
 * @category validation
 */
export const decodeUrl = (
  option: string,
  input: string | Redacted.Redacted
): Effect.Effect<Redacted.Redacted, InvalidOption> => Effect.map(internal.decodeUrl(option, input), ({ url }) => url)

/**
 * A database URL read from configuration text: PostgreSQL's
 * (`postgres://` or `postgresql://`), as a `Redacted`. Anything else, an empty
 * value included when the `ConfigProvider` passes one on, fails with a
 * `ConfigError` that names the variable and shows the value with its password
 * masked.
 *
 * @since 0.2.0
 * @category config
 */
export const urlConfig = (name: string): Config.Config<Redacted.Redacted> =>
  Config.Redacted(name).pipe(
    Config.mapEffect((url) =>
      Effect.mapError(
        internal.decodeUrl(name, url),
        (invalid) => new Config.ConfigError(new ConfigProvider.SourceError({ message: invalid.message }))
      ).pipe(Effect.map(({ url }) => url))
    )
  )
