import { InvalidOption, Options as CoreOptions } from "@lazydial/core"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import type { Deadlines as DeadlinesShape, Settings } from "../Database.js"
import { BindingStoreError, DatabaseConnectError } from "../Errors.js"

/**
 * The driver's own words for a database fault: the message of the error under
 * the `SqlError`'s reason (PostgreSQL's, or the socket's), else the reason's.
 */
const sqlDetail = (error: SqlError): string =>
  error.reason.cause instanceof Error && error.reason.cause.message !== ""
    ? error.reason.cause.message
    : error.message

/**
 * The one mapping of a database fault to the package's error: the driver's
 * message as the detail (a `SchemaError` says which column is wrong), and the
 * driver's error as the cause.
 *
 * @internal
 */
export const databaseError = (operation: string) => (cause: SqlError | Schema.SchemaError): BindingStoreError =>
  new BindingStoreError({
    operation,
    detail: Schema.isSchemaError(cause) ? `a row does not match the schema: ${cause.message}` : sqlDetail(cause),
    cause
  })

/**
 * `sql.withTransaction`, failing with `BindingStoreError` when the database
 * does. On Effect 3 a connection that died inside a transaction (a killed
 * backend, a restarted server) made the COMMIT or ROLLBACK, run under
 * `Effect.orDie`, a defect that had to be caught here. Effect 4 reports a
 * failed COMMIT as a typed `SqlError`, and `@effect/sql-pg` skips the ROLLBACK
 * of a session the server ended, so that defect no longer happens:
 * `test/PostgresFaults.test.ts` kills `createChild`'s backend inside its
 * transaction and gets a `BindingStoreError`, with no defect handling here.
 *
 * @internal
 */
export const transaction =
  (sql: SqlClient.SqlClient, operation: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, Exclude<E, SqlError> | BindingStoreError, R> =>
    sql.withTransaction(effect).pipe(
      Effect.catchIf(
        (error): error is Extract<E | SqlError, SqlError> => isSqlError(error),
        (cause) => Effect.fail(databaseError(operation)(cause))
      )
    ) as Effect.Effect<A, Exclude<E, SqlError> | BindingStoreError, R> // safe: every SqlError failure was caught above

// --- settings ---------------------------------------------------------------

/** @internal */
export const defaults: Settings = {
  poolSize: 10,
  connectTimeout: Duration.seconds(5),
  statementTimeout: Duration.seconds(30),
  queryDeadline: Duration.seconds(10)
}

/** @internal */
export const maxPoolSize = 500
/** @internal */
export const maxConnectTimeout: Duration.Duration = Duration.minutes(1)
/** @internal */
export const maxStatementTimeout: Duration.Duration = Duration.hours(1)
/** @internal */
export const maxQueryDeadline: Duration.Duration = Duration.hours(1)

/** @internal */
export const maxima: Settings = {
  poolSize: maxPoolSize,
  connectTimeout: maxConnectTimeout,
  statementTimeout: maxStatementTimeout,
  queryDeadline: maxQueryDeadline
}

/**
 * The deadlines of `settings`: every call gets the query deadline; the
 * migrations, one transaction whose statements may each run up to the
 * statement timeout on a large table, get the statement timeout on top.
 *
 * @internal
 */
export const deadlinesOf = (settings: Pick<Settings, "statementTimeout" | "queryDeadline">): DeadlinesShape => ({
  query: settings.queryDeadline,
  migration: Duration.sum(settings.statementTimeout, settings.queryDeadline)
})

/** @internal */
export const defaultDeadlines: DeadlinesShape = deadlinesOf(defaults)

/**
 * Here, not in `Database`, so that the migrations and the stores can read it
 * without importing the public module's values.
 *
 * @internal
 */
export const Deadlines: Context.Reference<DeadlinesShape> = Context.Reference<DeadlinesShape>(
  "@lazydial/binding/Database/Deadlines",
  { defaultValue: () => defaultDeadlines }
)

/**
 * Range-checks the settings, naming each refused value by its option.
 *
 * @internal
 */
export const checkSettings = (
  input: {
    readonly poolSize?: number | undefined
    readonly connectTimeout?: Duration.Input | undefined
    readonly statementTimeout?: Duration.Input | undefined
    readonly queryDeadline?: Duration.Input | undefined
  }
): Effect.Effect<Settings, InvalidOption> =>
  Effect.gen(function*() {
    const poolSize = yield* CoreOptions.boundedNumber("poolSize", input.poolSize ?? defaults.poolSize, 1, maxPoolSize, {
      integer: true
    })
    const connectTimeout = yield* CoreOptions.boundedDuration(
      "connectTimeout",
      input.connectTimeout ?? defaults.connectTimeout,
      maxConnectTimeout,
      { allowZero: false }
    )
    const statementTimeout = yield* CoreOptions.boundedDuration(
      "statementTimeout",
      input.statementTimeout ?? defaults.statementTimeout,
      maxStatementTimeout,
      { allowZero: false }
    )
    const queryDeadline = yield* CoreOptions.boundedDuration(
      "queryDeadline",
      input.queryDeadline ?? defaults.queryDeadline,
      maxQueryDeadline,
      { allowZero: false }
    )
    return { poolSize, connectTimeout, statementTimeout, queryDeadline }
  })

// --- the URL ----------------------------------------------------------------

/**
 * Where a URL points, for messages: everything but the password.
 *
 * @internal
 */
export interface Target {
  readonly host: string
  readonly port: number
  readonly database: string
  readonly user: string
}

const expectedUrl = "a postgres:// or postgresql:// URL, such as postgres://user:password@127.0.0.1:5432/lazydial"

/**
 * The URL with its password masked, for an error message. A string without
 * an authority (`user:pw@host` parses as the scheme `user:`) shows only its
 * scheme, since the rest may be a password.
 */
const masked = (input: string): string => {
  const url = URL.canParse(input) ? new URL(input) : undefined
  if (url !== undefined && url.host !== "") {
    if (url.password !== "") url.password = "***"
    return JSON.stringify(url.href)
  }
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(input)?.[0]
  return scheme === undefined ? "a string that is not a URL" : `a string that starts with ${JSON.stringify(scheme)}`
}

/**
 * Decodes a database URL: only `postgres://` and `postgresql://` are
 * PostgreSQL, and an empty one would make the driver fall back to
 * 127.0.0.1:5432 without a word. The refused value is shown with its password
 * masked.
 *
 * @internal
 */
export const decodeUrl = (
  option: string,
  input: string | Redacted.Redacted
): Effect.Effect<{ readonly url: Redacted.Redacted; readonly target: Target }, InvalidOption> =>
  Effect.suspend(() => {
    const raw = Redacted.isRedacted(input) ? Redacted.value(input) : input
    const trimmed = raw.trim()
    const invalid = (value: string, expected = expectedUrl) =>
      Effect.fail(new InvalidOption({ option, value, expected }))
    if (trimmed === "") return invalid("an empty string")
    let url: URL
    try {
      url = new URL(trimmed)
    } catch {
      return invalid(masked(trimmed))
    }
    if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") return invalid(masked(trimmed))
    // a socket directory or another host may be given as ?host=, as libpq allows
    const host = url.searchParams.get("host") ?? url.hostname.replace(/^\[(.*)\]$/, "$1")
    if (host === "") return invalid(masked(trimmed), `${expectedUrl} (it names no host)`)
    const port = url.port === "" ? 5432 : Number(url.port)
    const database = decodeURIComponent(url.pathname.replace(/^\//, ""))
    const user = decodeURIComponent(url.username)
    return Effect.succeed({
      url: Redacted.make(trimmed),
      target: { host, port, database: database === "" ? user || "postgres" : database, user: user || "postgres" }
    })
  })

// --- connect errors ---------------------------------------------------------

const reasonOf = (cause: unknown): DatabaseConnectError["reason"] => {
  const code = Predicate.hasProperty(cause, "code") ? String(cause.code) : ""
  // the server's SQLSTATE, then Node's socket errors
  if (code === "28P01" || code === "28000") return "authentication"
  if (code === "3D000") return "unknown_database"
  if (code === "ECONNREFUSED") return "refused"
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME") return "unknown_host"
  if (code === "ETIMEDOUT") return "timeout"
  // @effect/sql-pg's own connect timeout
  if (cause instanceof Error && cause.message === "Connection timed out") return "timeout"
  return "other"
}

/**
 * A failed first connection, as an error a person can act on. `@effect/sql-pg`
 * fails with an `SqlError` whose reason keeps the socket's or the server's
 * error; Node may wrap a refused connection to a host with several addresses
 * in an `AggregateError`, whose first error has the code.
 *
 * @internal
 */
export const connectError = (target: Target, cause: unknown): DatabaseConnectError => {
  const driver = isSqlError(cause) ? cause.reason.cause : cause
  const first = driver instanceof AggregateError && driver.errors.length > 0 ? driver.errors[0] : driver
  const reason = isSqlError(cause) && cause.reason._tag === "AuthenticationError" ? "authentication" : reasonOf(first)
  const detail = first instanceof Error && first.message !== ""
    ? first.message
    : Predicate.hasProperty(first, "code")
    ? String(first.code)
    : String(first)
  return new DatabaseConnectError({ ...target, reason, detail, cause })
}

/** @internal */
export const connectTimedOut = (target: Target, timeout: Duration.Duration): DatabaseConnectError =>
  new DatabaseConnectError({
    ...target,
    reason: "timeout",
    detail: `no connection within ${Duration.format(timeout)}`
  })
