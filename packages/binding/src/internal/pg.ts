import * as PgClient from "@effect/sql-pg/PgClient"
import * as PgConnection from "@effect/sql-pg/PgConnection"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Reactivity from "effect/reactivity/Reactivity"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as Stream from "effect/Stream"
import type { DatabaseConnectError } from "../Errors.js"
import { connectError, connectTimedOut, type Target } from "./database.js"

/** @internal */
export interface Config extends PgClient.PgPoolConfig {
  /** Sent as PostgreSQL's `statement_timeout` when each connection opens. */
  readonly statementTimeout?: Duration.Duration | undefined
}

/** The session settings of every connection: `statement_timeout` rides in the startup packet. */
const withStatementTimeout = (config: Config): PgClient.PgPoolConfig => {
  const { statementTimeout, ...rest } = config
  return statementTimeout === undefined ? rest : {
    ...rest,
    startupParameters: {
      ...rest.startupParameters,
      statement_timeout: String(Math.round(Duration.toMillis(statementTimeout)))
    }
  }
}

/**
 * `PgClient.make`'s pool, checked with `SELECT 1` within the connect timeout
 * (5 s by default) before the Layer is up, since the pool opens connections
 * only when a statement needs one. A failed check is a `DatabaseConnectError`
 * that names `target`, never the password.
 *
 * @internal
 */
export const layer = (
  config: Config,
  target: Target
): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, DatabaseConnectError> =>
  Layer.effectContext(Effect.gen(function*() {
    const client = yield* Effect.mapError(
      PgClient.make(withStatementTimeout(config)),
      (cause) => connectError(target, cause)
    )
    const timeout = config.connectTimeout === undefined
      ? Duration.seconds(5)
      : Duration.fromInputUnsafe(config.connectTimeout)
    yield* client`SELECT 1`.pipe(
      Effect.mapError((cause) => connectError(target, cause)),
      Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.fail(connectTimedOut(target, timeout)) })
    )
    return Context.make(PgClient.PgClient, client).pipe(Context.add(SqlClient.SqlClient, client))
  })).pipe(Layer.provide(Reactivity.layer))

/**
 * LISTEN on a connection of its own, outside the pool, with
 * `@effect/sql-pg`'s own `PgConnection.listen` (the one `PgClient.listen`
 * calls): its queue fails with the connection's `SqlError` when the
 * connection is lost, so the stream fails and the reader learns that it
 * missed notices. Not `PgClient.listen` itself, which would hold one of the
 * pool's connections for as long as it listens: a pool of `poolSize`
 * connections would serve statements on one fewer, and a pool of one on
 * none.
 *
 * @internal
 */
export const listen =
  (config: Config) => (channel: string): Effect.Effect<Stream.Stream<string, SqlError>, SqlError, Scope.Scope> =>
    Effect.gen(function*() {
      const connection = yield* PgConnection.make(withStatementTimeout(config))
      const notifications = yield* connection.listen(channel)
      return Stream.map(Stream.fromQueue(notifications), (notification) => notification.payload)
    })
