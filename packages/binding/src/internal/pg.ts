import * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Mailbox from "effect/Mailbox"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import Pg from "pg"
import type { DatabaseConnectError } from "../Errors.js"
import { connectError, connectTimedOut, type Target } from "./database.js"

type ConnectCallback = (
  err: Error | undefined,
  client: Pg.PoolClient | undefined,
  done: (release?: unknown) => void
) => void

/**
 * `pg-pool` hands a freed client to the next waiter inside `release()`, and
 * `@effect/sql-pg` releases a client at once when its waiter was interrupted
 * (a query that timed out while the pool was full). So one release recursed
 * through every interrupted waiter in the queue, and a few thousand of them
 * overflowed the stack and crashed the process. Handing each client over on
 * the next tick makes that walk iterative; it costs one tick per checkout.
 */
class Pool extends Pg.Pool {
  override connect(): Promise<Pg.PoolClient>
  override connect(callback: ConnectCallback): void
  override connect(callback?: ConnectCallback): Promise<Pg.PoolClient> | void {
    if (callback === undefined) return super.connect()
    super.connect((err, client, done) => process.nextTick(callback, err, client, done))
  }
}

/** @internal */
export interface Config extends PgClient.PgClientConfig {
  /** Sent as PostgreSQL's `statement_timeout` when each connection opens. */
  readonly statementTimeout?: Duration.Duration | undefined
}

const clientConfig = (config: Config): Pg.PoolConfig => ({
  connectionString: config.url === undefined ? undefined : Redacted.value(config.url),
  user: config.username,
  host: config.host,
  database: config.database,
  password: config.password === undefined ? undefined : Redacted.value(config.password),
  ssl: config.ssl,
  port: config.port,
  ...(config.stream === undefined ? {} : { stream: config.stream }),
  connectionTimeoutMillis: config.connectTimeout === undefined ? undefined : Duration.toMillis(config.connectTimeout),
  idleTimeoutMillis: config.idleTimeout === undefined ? undefined : Duration.toMillis(config.idleTimeout),
  max: config.maxConnections,
  min: config.minConnections,
  maxLifetimeSeconds: config.connectionTTL === undefined ? undefined : Duration.toSeconds(config.connectionTTL),
  application_name: config.applicationName,
  statement_timeout: config.statementTimeout === undefined ? undefined : Duration.toMillis(config.statementTimeout),
  types: config.types
})

const makePool = (config: Config): Pool => new Pool(clientConfig(config))

/**
 * `PgClient.layer`, on a pool that hands clients over on the next tick. Like
 * `PgClient.layer`, it checks the server with `SELECT 1` within the connect
 * timeout (5 s by default), and ignores errors of idle clients (a restarted
 * server), which the next checkout replaces. A failed check is a
 * `DatabaseConnectError` that names `target`, never the password.
 *
 * @internal
 */
export const layer = (
  config: Config,
  target: Target
): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient, DatabaseConnectError> =>
  // The pool is made and checked here, not in `layerFromPool`'s `acquire`,
  // which may fail with an `SqlError` only: the check's error names the target.
  Layer.unwrapScoped(Effect.gen(function*() {
    const pool = yield* Effect.acquireRelease(
      Effect.sync(() => makePool(config)),
      (pool) => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
    )
    pool.on("error", () => {})
    const timeout = config.connectTimeout === undefined ? Duration.seconds(5) : Duration.decode(config.connectTimeout)
    yield* Effect.tryPromise({
      try: () => pool.query("SELECT 1"),
      catch: (cause) => connectError(target, cause)
    }).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => connectTimedOut(target, timeout) })
    )
    return PgClient.layerFromPool({
      acquire: Effect.succeed(pool),
      applicationName: config.applicationName,
      spanAttributes: config.spanAttributes,
      transformResultNames: config.transformResultNames,
      transformQueryNames: config.transformQueryNames,
      transformJson: config.transformJson,
      types: config.types
    }).pipe(
      // its only failure is `acquire`'s, and that one succeeds
      Layer.orDie
    )
  }))

/**
 * LISTEN on a connection of its own, outside the pool: a pooled client goes
 * back to the pool and its LISTEN with it. `@effect/sql-pg`'s `listen` also
 * keeps a dedicated client, but swallows that client's errors, so a lost
 * connection leaves its stream silent forever; here the stream fails when the
 * connection errors or ends, and the reader learns that it missed notices.
 *
 * @internal
 */
export const listen =
  (config: Config) => (channel: string): Effect.Effect<Stream.Stream<string, SqlError>, SqlError, Scope.Scope> =>
    Effect.gen(function*() {
      const mailbox = yield* Mailbox.make<string, SqlError>()
      const client = yield* Effect.acquireRelease(
        Effect.sync(() => new Pg.Client(clientConfig(config))),
        (client) => Effect.promise(() => client.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
      )
      const lost = (cause: unknown) =>
        mailbox.unsafeDone(
          Exit.fail(new SqlError({ cause, message: "the LISTEN connection was lost; notices may have been missed" }))
        )
      client.on("error", lost)
      client.on("end", () => lost(new Error("the LISTEN connection ended")))
      client.on("notification", (message) => {
        if (message.channel === channel && message.payload !== undefined) mailbox.unsafeOffer(message.payload)
      })
      yield* Effect.tryPromise({
        try: async () => {
          await client.connect()
          await client.query(`LISTEN ${Pg.escapeIdentifier(channel)}`)
        },
        catch: (cause) => new SqlError({ cause, message: `LISTEN ${channel} failed` })
      })
      return Mailbox.toStream(mailbox)
    })
