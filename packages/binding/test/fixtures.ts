import { describe } from "@effect/vitest"
import { BindingStore } from "@lazydial/binding"
import { AgentId, BuildId, ChatId, CurrentAgent, WorkspaceId } from "@lazydial/core"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"

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

// Wall time that `drive` lets real I/O settle before it moves the clock.
const ioSettleMillis = 20

/**
 * Runs a fiber that mixes real database I/O with Effect-clock timers to its
 * end: while it runs, lets I/O complete, and moves the TestClock to the next
 * pending timer only when nothing else can make progress.
 */
export const drive = <A, E>(fiber: Fiber.RuntimeFiber<A, E>): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 100_000; turn++) {
      const done = fiber.unsafePoll()
      if (done !== null) return yield* done
      // Let pending I/O finish first, so that every fiber that will sleep has
      // registered its timer. A few event-loop turns were enough on an idle
      // machine, but a PostgreSQL answer on a loaded one can take longer, and
      // moving the clock then fired 30 s dial timeouts: so wait a little wall
      // time too (the Effect clock does not move meanwhile).
      const settleUntil = Date.now() + ioSettleMillis
      for (let i = 0; i < 5 || Date.now() < settleUntil; i++) {
        yield* ioTurn
        if (fiber.unsafePoll() !== null) break
      }
      if (fiber.unsafePoll() !== null) continue
      const sleeps = yield* TestClock.sleeps()
      if (Chunk.isNonEmpty(sleeps)) {
        const now = yield* TestClock.currentTimeMillis
        const next = Math.min(...Chunk.toReadonlyArray(sleeps))
        yield* TestClock.adjust(Math.max(0, next - now))
      }
    }
    return yield* Effect.dieMessage("drive: the fiber did not finish")
  })

/** Waits, without moving the clock, until `condition` holds. */
export const until = (condition: Effect.Effect<boolean>): Effect.Effect<void> =>
  Effect.gen(function*() {
    for (let turn = 0; turn < 100_000; turn++) {
      if (yield* condition) return
      yield* ioTurn
    }
    return yield* Effect.dieMessage("until: the condition never held")
  })

/** A chat of `w` whose binding names `bound`. */
export const boundChat = (w: WorkspaceId, bound: CurrentAgent) =>
  Effect.gen(function*() {
    const store = yield* BindingStore.BindingStore
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
