import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"

/**
 * `effect`, waited for at most `duration`, also when what it waits for hangs: then it fails with `onTimeout()`.
 *
 * Effect's `timeoutOrElse` interrupts a late effect and waits for the interruption to end. The interruption of a
 * statement on a hung PostgreSQL server takes seconds more (measured with every backend and the postmaster
 * SIGSTOPped: a 1 s `timeoutOrElse` around `SELECT 1` answered after 6.0 s; this one after 1.0 s). So the effect
 * runs in a fiber of `scope`, the caller waits for it at most `duration`, and a late one is interrupted in the
 * background, still owned by `scope` (a Layer's: it ends with the Layer at the latest).
 */
export const withDeadline =
  <E2>(scope: Scope.Scope, duration: Duration.Input, onTimeout: () => E2) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | E2, R> =>
    Effect.flatMap(Effect.forkIn(effect, scope), (fiber) => {
      const abandon = Effect.forkIn(Fiber.interrupt(fiber), scope)
      return Fiber.join(fiber).pipe(
        Effect.timeoutOrElse({
          duration: Duration.fromInputUnsafe(duration),
          orElse: () => Effect.andThen(abandon, Effect.fail(onTimeout()))
        }),
        Effect.onInterrupt(() => abandon)
      )
    })
