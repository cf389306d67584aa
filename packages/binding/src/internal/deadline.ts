import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { BindingStoreError } from "../Errors.js"

/**
 * Runs `self` in a fiber of its own and waits for it at most `millis`. At the
 * deadline the caller fails with `onTimeout()` at once, and the fiber is
 * interrupted in the background, not waited for: waiting would add the time
 * its work takes to cancel (Effect 3's `Effect.disconnect`; Effect 4's
 * `timeoutOrElse` waits for the loser of its race, and an interrupted
 * `@effect/sql-pg` query drains its connection and sends a cancel request,
 * which a hung server never answers). An interrupted caller interrupts the
 * fiber the same way. The fiber outlives its caller only while it winds down;
 * its resources live in the caller's Scope, which it inherits. `fork` puts
 * the fiber elsewhere (a Layer's `FiberSet`, so that closing the Layer ends it).
 *
 * @internal
 */
export const timeoutDetached = <A, E, R, E2>(
  self: Effect.Effect<A, E, R>,
  millis: number,
  onTimeout: () => E2,
  fork: (self: Effect.Effect<A, E, R>) => Effect.Effect<Fiber.Fiber<A, E>, never, R> = (self) =>
    Effect.forkDetach(self, { startImmediately: true })
): Effect.Effect<A, E | E2, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(
      fork(self),
      (fiber) =>
        restore(Effect.timeoutOption(Fiber.join(fiber), millis)).pipe(
          Effect.onInterrupt(() => Effect.sync(() => fiber.interruptUnsafe())),
          Effect.flatMap(Option.match({
            onNone: () => Effect.andThen(Effect.sync(() => fiber.interruptUnsafe()), Effect.fail(onTimeout())),
            onSome: (a) => Effect.succeed(a)
          }))
        )
    )
  )

/**
 * The client-side deadline of one call to the database: the call (waiting for
 * a pooled connection, the statement or transaction, the last row) ends within
 * `deadline`, even when the server is hung and no server-side timeout can fire.
 * At the deadline the caller gets a `BindingStoreError` naming `operation`; the
 * statement is interrupted in the background, and `@effect/sql-pg` retires its
 * connection unless the server confirms the cancel, so no later statement gets
 * a connection that is still busy.
 *
 * @internal
 */
export const withDeadline = (
  operation: string,
  deadline: Duration.Duration,
  which = queryDeadlineSetting
) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | BindingStoreError, R> =>
  timeoutDetached(self, Duration.toMillis(deadline), () => deadlineError(operation, deadline, which))

/** @internal */
export const queryDeadlineSetting = "the query deadline, queryDeadline"

/** @internal */
export const deadlineError = (operation: string, deadline: Duration.Duration, which: string): BindingStoreError =>
  new BindingStoreError({
    operation,
    detail: `no answer from the database within ${Duration.format(deadline)} (${which}): ` +
      "the server may be hung or overloaded"
  })
