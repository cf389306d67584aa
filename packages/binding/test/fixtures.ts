import { describe } from "@effect/vitest"
import { BindingStore } from "@lazydial/binding"
import { AgentId, BuildId, ChatId, CurrentAgent, WorkspaceId } from "@lazydial/core"
import * as Arbitrary from "effect/Arbitrary"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import * as TestClock from "effect/testing/TestClock"

/** Fresh ids, so tests that share one database never see each other's rows. */
export const chatId = (): ChatId => ChatId.make(crypto.randomUUID())
export const workspaceId = (): WorkspaceId => WorkspaceId.make(crypto.randomUUID())
export const agentId = (): AgentId => AgentId.make(crypto.randomUUID())
export const buildId = (): BuildId => BuildId.make(crypto.randomUUID())

/** A new build of some workspace, with its agent. */
export const build = (): CurrentAgent => new CurrentAgent({ agentId: agentId(), buildId: buildId() })

/**
 * Gives the event loop one turn, so that real I/O (a database answering) can
 * complete. It waits for no time: the Effect clock stays where it is.
 */
export const ioTurn: Effect.Effect<void> = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

// Wall time with no change in the pending timers that `drive` waits for
// before it moves the clock.
const ioQuietMillis = 20

/**
 * When the pending sleeps of the TestClock end (Effect clock, milliseconds).
 * Effect 4 keeps that queue private (Effect 3 had `TestClock.sleeps()`), and
 * `drive` must move the clock to the next timer and no further: it reads the
 * queue of the TestClock it finds, and dies if that ever changes shape rather
 * than driving blind.
 */
export const pendingSleeps: Effect.Effect<ReadonlyArray<number>> = TestClock.testClockWith((clock) => {
  const sleeps: unknown = (clock as { readonly sleeps?: unknown }).sleeps
  return Array.isArray(sleeps) && sleeps.every((sleep) => typeof sleep?.timestamp === "number")
    ? Effect.succeed(sleeps.map((sleep: { readonly timestamp: number }) => sleep.timestamp))
    : Effect.die(new Error("pendingSleeps: this TestClock keeps no `sleeps` queue; see test/fixtures.ts"))
})

// Statements sent through a database of `countingStatements` and not yet answered.
let statementsInFlight = 0

const counted = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    statementsInFlight++
    return Effect.ensuring(
      effect,
      Effect.sync(() => {
        statementsInFlight--
      })
    )
  })

/**
 * `database` with its `SqlClient` counting the statements (and transactions)
 * in flight, so that `drive` never moves the clock while the database still
 * has to answer: on a loaded machine a PostgreSQL round trip can take longer
 * than any fixed wait, and moving the clock then fired 30 s dial timeouts.
 */
export const countingStatements = <A, E, R>(
  database: Layer.Layer<A | SqlClient.SqlClient, E, R>
): Layer.Layer<A | SqlClient.SqlClient, E, R> =>
  Layer.flatMap(database, (context) => {
    const sql = Context.get(context, SqlClient.SqlClient)
    const counting = new Proxy(sql, {
      apply(target, self, args) {
        const statement: unknown = Reflect.apply(target, self, args)
        // `sql("name")` makes an identifier, not a statement
        return Effect.isEffect(statement) ? counted(statement) : statement
      },
      get(target, key, receiver) {
        if (key !== "withTransaction") return Reflect.get(target, key, receiver)
        return <X, Y, Z>(effect: Effect.Effect<X, Y, Z>) => counted(target.withTransaction(effect))
      }
    })
    return Layer.succeedContext(Context.add(context, SqlClient.SqlClient, counting))
  })

/**
 * Runs a fiber that mixes real database I/O with Effect-clock timers to its
 * end: while it runs, lets I/O complete, and moves the TestClock to the next
 * pending timer only when nothing else can make progress.
 */
export const drive = <A, E>(fiber: Fiber.Fiber<A, E>): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 100_000; turn++) {
      const done = fiber.pollUnsafe()
      if (done !== undefined) return yield* done
      // Let pending I/O finish first, so that every fiber that will sleep has
      // registered its timer: the clock moves only once no statement of a
      // `countingStatements` database is in flight and the pending timers
      // have stood still for `ioQuietMillis` of wall time (a turn that ends
      // cancels its dial timeout, a new dial starts its delay). The Effect
      // clock does not move meanwhile.
      let timers = timersOf(yield* pendingSleeps)
      let quietSince = Date.now()
      for (let i = 0; i < 5 || Date.now() - quietSince < ioQuietMillis; i++) {
        yield* ioTurn
        if (fiber.pollUnsafe() !== undefined) break
        const now = timersOf(yield* pendingSleeps)
        if (now !== timers || statementsInFlight > 0) {
          timers = now
          quietSince = Date.now()
        }
      }
      if (fiber.pollUnsafe() !== undefined) continue
      const sleeps = yield* pendingSleeps
      if (sleeps.length > 0) {
        const now = yield* Clock.currentTimeMillis
        yield* TestClock.adjust(Math.max(0, Math.min(...sleeps) - now))
      }
    }
    return yield* Effect.die(new Error("drive: the fiber did not finish"))
  })

const timersOf = (sleeps: ReadonlyArray<number>): string => `${sleeps.length}:${Math.min(...sleeps)}`

/** The fiber's exit, if it has ended (Effect 3's `Fiber.poll`). */
export const poll = <A, E>(fiber: Fiber.Fiber<A, E>): Effect.Effect<Option.Option<Exit.Exit<A, E>>> =>
  Effect.sync(() => Option.fromUndefinedOr(fiber.pollUnsafe()))

/**
 * The typed failure `exit` ended with, if any. Compare this, not the `Exit`:
 * in Effect 4 the cause of a run carries span and stack annotations that an
 * `Exit.fail` built by hand does not.
 */
export const failureOf = <A, E>(exit: Exit.Exit<A, E>): Option.Option<E> =>
  Exit.isFailure(exit) ? Cause.findErrorOption(exit.cause) : Option.none()

/** Waits, without moving the clock, until `condition` holds. */
export const until = (condition: Effect.Effect<boolean>): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 100_000; turn++) {
      if (yield* condition) return
      yield* ioTurn
    }
    return yield* Effect.die(new Error("until: the condition never held"))
  })

/**
 * Runs `effect` with these environment variables and no others, read as
 * Effect 4's default provider reads the environment (`ConfigProvider.fromEnv`:
 * an empty value is unset, unless `preserveEmptyStrings`).
 */
export const withEnv =
  (env: Record<string, string>, options?: { readonly preserveEmptyStrings?: boolean }) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.provideService(
      effect,
      ConfigProvider.ConfigProvider,
      ConfigProvider.fromEnv({ env, preserveEmptyStrings: options?.preserveEmptyStrings ?? false })
    )

type ValueOf<A> = A extends Arbitrary.Arbitrary<infer V> ? V : never

/** One of `arbitraries`, each as likely (fast-check's `oneof`, composed from Effect 4's `Arbitrary`). */
export const oneOf = <const As extends ReadonlyArray<Arbitrary.Arbitrary<unknown>>>(
  ...arbitraries: As
): Arbitrary.Arbitrary<ValueOf<As[number]>> =>
  Arbitrary.flatMap(
    Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: arbitraries.length - 1 }))),
    (index) => arbitraries[index] as Arbitrary.Arbitrary<ValueOf<As[number]>> // safe: every member is one of As
  )

/** One of `values` (fast-check's `constantFrom`). */
export const constantFrom = <const L extends ReadonlyArray<string>>(...values: L): Arbitrary.Arbitrary<L[number]> =>
  Arbitrary.schema(Schema.Literals(values))

/**
 * Checks `property` on values of `arbitrary` (fast-check's `assert`): a
 * falsified or exhausted run dies with Effect's report of it, shrunk input and
 * replay token included.
 */
export const checkProperty = <A, E = never, R = never>(
  arbitrary: Arbitrary.Arbitrary<A>,
  property: (value: A) => boolean | Effect.Effect<boolean, E, R>,
  options?: Arbitrary.CheckOptions
): Effect.Effect<void, never, R> =>
  Effect.flatMap(Arbitrary.checkEffect(arbitrary, property, options), (result) => {
    const failure = Arbitrary.formatCheckFailure(result)
    return failure === undefined ? Effect.void : Effect.die(new Error(failure))
  })

/**
 * Makes the directory hold `current` as a build of `w`, as
 * `AgentDirectory.recordBuild` writes it (but without its notice): the SQL
 * store binds a chat only to a (build, agent) pair the directory holds for the
 * chat's workspace. A build the directory holds already is left as it is.
 */
export const holdBuild = (w: WorkspaceId, current: CurrentAgent): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.asVoid(
      sql`INSERT INTO lazydial_workspace_builds (workspace_id, build_number, build_id, agent_id, created_at)
SELECT ${w}::text, COALESCE(MAX(build_number), 0) + 1, ${current.buildId}::text, ${current.agentId}::text, now()
FROM lazydial_workspace_builds WHERE workspace_id = ${w}
ON CONFLICT (build_id) DO NOTHING`
    ))

/**
 * Runs `statement` with the foreign keys off (`session_replication_role =
 * replica`, for its transaction only), as a row written by hand, or by another
 * version, may have been written: for the tests of rows that break the schema.
 */
export const unchecked = <A, E, R>(
  statement: Effect.Effect<A, E, R>
): Effect.Effect<A, E | SqlError, R | SqlClient.SqlClient> =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) => sql.withTransaction(Effect.andThen(sql`SET LOCAL session_replication_role = replica`, statement))
  )

/**
 * A chat of `w` whose binding names `bound`. With an `SqlClient` in the
 * context, the directory is made to hold `bound` first (`holdBuild`).
 */
export const boundChat = (w: WorkspaceId, bound: CurrentAgent) =>
  Effect.gen(function*() {
    const store = yield* BindingStore.BindingStore
    const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
    if (Option.isSome(sql)) {
      yield* Effect.orDie(Effect.provideService(holdBuild(w, bound), SqlClient.SqlClient, sql.value))
    }
    const chat = yield* store.createChat({ workspaceId: w })
    yield* store.recordAgent(chat.chatId, { expected: { workspaceId: w, agentId: Option.none() }, current: bound })
    return chat.chatId
  })

/**
 * Set by scripts/test-postgres.sh: the PostgreSQL suites must run, so a
 * missing server is a failure there, never a quiet skip.
 */
export const postgresRequired = process.env["LAZYDIAL_REQUIRE_POSTGRES"] === "1"

/**
 * Fails the file at collection when the PostgreSQL suites are required
 * (`LAZYDIAL_REQUIRE_POSTGRES=1`) and `what` is missing.
 */
export const requireForPostgres = (what: string, present: boolean): void => {
  if (postgresRequired && !present) {
    throw new Error(`LAZYDIAL_REQUIRE_POSTGRES=1, but ${what} is not set: the PostgreSQL suites cannot run`)
  }
}

/**
 * Defines `suite` on the PostgreSQL server of LAZYDIAL_TEST_DATABASE_URL
 * (scripts/test-postgres.sh sets it). Without one, the suite's tests are
 * reported as skipped, under a name that says how to run them; with
 * LAZYDIAL_REQUIRE_POSTGRES=1 the file fails instead.
 */
export const onPostgres = (name: string, suite: (databaseUrl: string) => void): void => {
  const databaseUrl = process.env["LAZYDIAL_TEST_DATABASE_URL"] ?? ""
  requireForPostgres("LAZYDIAL_TEST_DATABASE_URL", databaseUrl !== "")
  const title = databaseUrl === ""
    ? `${name} (skipped: no LAZYDIAL_TEST_DATABASE_URL; run packages/binding/scripts/test-postgres.sh)`
    : name
  describe.skipIf(databaseUrl === "")(title, () => suite(databaseUrl))
}
