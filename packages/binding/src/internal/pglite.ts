import { PGlite } from "@electric-sql/pglite"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import { SqlError, UnknownError } from "effect/sql/SqlError"
import * as Statement from "effect/sql/Statement"
import * as Stream from "effect/Stream"
import { BindingStoreError } from "../Errors.js"

/**
 * PostgreSQL's compiler, as `@effect/sql-pg`'s `makeCompiler()` builds it
 * without name transforms. Not imported from there: a PGlite user need not
 * install `@effect/sql-pg`. A custom fragment binds its value as one
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
  onCustom: (type, placeholder) => [placeholder(undefined), [type.paramA]]
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
    reason: new UnknownError({
      cause,
      message: `Failed to execute statement${cause instanceof Error ? `: ${cause.message}` : ""}`
    })
  })

/**
 * PGlite is one Postgres backend in one process: it has a single session.
 * Effect's `SqlClient.makeSqliteAcquirers` shares such a session through a
 * semaphore with one permit: a statement outside a transaction borrows it for
 * its own run, and a transaction leases it for its whole Scope, so the
 * statements of other fibers stay out of it.
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
      (db) => Effect.ignore(Effect.promise(() => db.close()))
    )
    const session = yield* Semaphore.make(1)

    const run = <A>(f: () => Promise<A>): Effect.Effect<A, SqlError> =>
      Effect.uninterruptible(Effect.tryPromise({ try: f, catch: sqlError }))

    const execute = (sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) =>
      run(() => db.query<object>(sql, [...params])).pipe(
        Effect.map((result): Rows => transformRows === undefined ? result.rows : transformRows(result.rows))
      )

    const values = (sql: string, params: ReadonlyArray<unknown>) =>
      run(() => db.query<Array<unknown>>(sql, [...params], { rowMode: "array" })).pipe(
        Effect.map((result): ReadonlyArray<ReadonlyArray<unknown>> => result.rows)
      )

    // The session itself: whoever calls it holds the permit.
    const connection: Connection = {
      execute,
      executeRaw: (sql, params) => run(() => db.query(sql, [...params])),
      executeValues: values,
      executeValuesUnprepared: values,
      executeUnprepared: (sql, params, transformRows) =>
        params.length > 0
          ? execute(sql, params, transformRows)
          // the simple protocol runs several statements at once, as migrations need
          : run(() => db.exec(sql)).pipe(
            Effect.map((results) => {
              const rows: Rows = results.at(-1)?.rows ?? []
              return transformRows === undefined ? rows : transformRows(rows)
            })
          ),
      executeStream: (sql, params, transformRows) => Stream.fromIterableEffect(execute(sql, params, transformRows))
    }

    // LISTEN takes the session like a statement: run inside another fiber's
    // transaction, a rollback would undo it.
    const listen = (channel: string): Effect.Effect<Stream.Stream<string, SqlError>, SqlError, Scope.Scope> =>
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<string, SqlError>()
        yield* Effect.acquireRelease(
          session.withPermit(run(() => db.listen(channel, (payload) => Queue.offerUnsafe(queue, payload)))),
          (unlisten) => Effect.ignore(session.withPermit(run(() => unlisten())))
        )
        return Stream.fromQueue(queue)
      })

    const acquirers = SqlClient.makeSqliteAcquirers({ connection: Effect.succeed(connection), semaphore: session })
    const sql = yield* SqlClient.make({
      ...acquirers,
      driver: "pglite",
      compiler,
      spanAttributes: [["db.system.name", "postgresql"], ["db.client", "pglite"]]
    })
    return { sql, listen }
  })
