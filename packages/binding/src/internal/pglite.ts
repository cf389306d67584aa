import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import { PGlite } from "@electric-sql/pglite"
import * as Effect from "effect/Effect"
import * as Mailbox from "effect/Mailbox"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { BindingStoreError } from "../Errors.js"

/**
 * PostgreSQL's compiler, as `@effect/sql-pg`'s `makeCompiler()` builds it
 * without name transforms. Not imported from there: `@effect/sql-pg` loads
 * `pg` when it is imported, and a PGlite user need not install either. A
 * custom fragment (`sql.json` of `@effect/sql-pg`) binds its value as one
 * parameter, as `PgJson` does.
 */
const compiler = Statement.makeCompiler<Statement.Custom<string, unknown>>({
  dialect: "pg",
  placeholder: (index) => `$${index}`,
  onIdentifier: Statement.defaultEscape("\""),
  onRecordUpdate: (placeholders, alias, columns, values, returning) => [
    `(values ${placeholders}) AS ${alias}${columns}${returning ? ` RETURNING ${returning[0]}` : ""}`,
    returning ? values.flat().concat(returning[1]) : values.flat()
  ],
  onCustom: (type, placeholder) => [placeholder(undefined), [type.i0]]
})

/** @internal */
export interface Options {
  /** A directory to keep the database in. Unset: in memory, gone when the Layer is released. */
  readonly dataDir?: string | undefined
}

type Rows = ReadonlyArray<object>
type TransformRows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

const sqlError = (cause: unknown) =>
  new SqlError({
    cause,
    message: `Failed to execute statement${cause instanceof Error ? `: ${cause.message}` : ""}`
  })

/**
 * PGlite is one Postgres backend in one process: it has a single session. A
 * transaction holds that session for its whole Scope, so a semaphore with one
 * permit keeps the statements of other fibers out of it. Outside a
 * transaction, each statement takes the permit for its own run only.
 *
 * A PGlite promise cannot be cancelled, so a statement is uninterruptible: an
 * interrupted caller would otherwise release the permit while its statement
 * still runs inside somebody else's transaction.
 *
 * @internal
 */
export const make = (options: Options = {}) =>
  Effect.gen(function*() {
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => PGlite.create(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
        catch: (cause) =>
          new BindingStoreError({
            operation: "Database.layerPglite",
            detail: `the embedded PGlite database did not start${
              cause instanceof Error ? `: ${cause.message}` : ""
            }; check that its dataDir is a PGlite directory this process may write`,
            cause
          })
      }),
      (db) => Effect.promise(() => db.close()).pipe(Effect.ignore)
    )
    const session = yield* Effect.makeSemaphore(1)

    const run = <A>(f: () => Promise<A>): Effect.Effect<A, SqlError> =>
      Effect.uninterruptible(Effect.tryPromise({ try: f, catch: sqlError }))

    const query = (sql: string, params: ReadonlyArray<unknown>) =>
      run(() => db.query<object>(sql, [...params])).pipe(Effect.map((result): Rows => result.rows))

    const makeConnection = (lock: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>): Connection => {
      const execute = (sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) =>
        lock(query(sql, params)).pipe(
          Effect.map((rows) => transformRows === undefined ? rows : transformRows(rows))
        )
      return {
        execute,
        executeRaw: (sql, params) => lock(run(() => db.query(sql, [...params]))),
        executeValues: (sql, params) =>
          lock(run(() => db.query<Array<unknown>>(sql, [...params], { rowMode: "array" }))).pipe(
            Effect.map((result): ReadonlyArray<ReadonlyArray<unknown>> => result.rows)
          ),
        executeUnprepared: (sql, params, transformRows) =>
          params.length > 0
            ? execute(sql, params, transformRows)
            // the simple protocol runs several statements at once, as migrations need
            : lock(run(() => db.exec(sql))).pipe(
              Effect.map((results) => {
                const rows: Rows = results.at(-1)?.rows ?? []
                return transformRows === undefined ? rows : transformRows(rows)
              })
            ),
        executeStream: (sql, params, transformRows) => Stream.fromIterableEffect(execute(sql, params, transformRows))
      }
    }

    const statement = makeConnection(session.withPermits(1))
    const transaction = makeConnection((effect) => effect)

    // LISTEN takes the session like a statement: run inside another fiber's
    // transaction, a rollback would undo it.
    const listen = (channel: string): Effect.Effect<Stream.Stream<string, SqlError>, SqlError, Scope.Scope> =>
      Effect.gen(function*() {
        const mailbox = yield* Mailbox.make<string, SqlError>()
        yield* Effect.acquireRelease(
          session.withPermits(1)(run(() => db.listen(channel, (payload) => mailbox.unsafeOffer(payload)))),
          (unlisten) => session.withPermits(1)(run(() => unlisten())).pipe(Effect.ignore)
        )
        return Mailbox.toStream(mailbox)
      })

    const sql = yield* SqlClient.make({
      acquirer: Effect.succeed(statement),
      transactionAcquirer: Effect.as(
        Effect.acquireRelease(session.take(1), () => session.release(1)),
        transaction
      ),
      compiler,
      spanAttributes: [["db.system", "postgresql"], ["db.client", "pglite"]]
    })
    return { sql, listen }
  })
