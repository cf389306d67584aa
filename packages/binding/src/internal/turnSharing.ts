import type { ChatId } from "@lazydial/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Scope from "effect/Scope"
import { sharedTotal } from "./decisions.js"

interface Shared<A, E> {
  readonly deferred: Deferred.Deferred<A, E>
  waiters: number
  fiber: Fiber.Fiber<A, E> | undefined
}

/**
 * One dial per chat per turn. A turn is a Scope: concurrent connects of one
 * chat in one Scope share one dial (`dial`, given the time of the first
 * call) and its result. A failure is forgotten, so the next call dials again;
 * when every caller waiting for a dial is interrupted, the dial is abandoned.
 *
 * @internal
 */
export const makeTurnSharing = <A, E>(
  dial: (chatId: ChatId, calledAtMillis: number) => Effect.Effect<A, E, Scope.Scope>
): (chatId: ChatId) => Effect.Effect<A, E, Scope.Scope> => {
  // Per turn (Scope), the dial under way or done for each chat.
  const turns = new WeakMap<Scope.Scope, Map<ChatId, Shared<A, E>>>()

  // The registration of a caller, and the start of the dial, happen without
  // interruption; only the wait is interruptible. So a dial is never left
  // registered without a fiber, and every interrupted waiter is counted out.
  return (chatId: ChatId): Effect.Effect<A, E, Scope.Scope> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.scope, (scope) =>
        Effect.suspend(() => {
          let perTurn = turns.get(scope)
          if (perTurn === undefined) {
            perTurn = new Map()
            turns.set(scope, perTurn)
          }
          const chats = perTurn
          const existing = chats.get(chatId)
          const shared: Shared<A, E> = existing ?? {
            deferred: Deferred.makeUnsafe<A, E>(),
            waiters: 0,
            fiber: undefined
          }
          shared.waiters++
          if (existing === undefined) chats.set(chatId, shared)

          // The dial runs in its own fiber in the turn's Scope, so that it
          // belongs to no single caller; its connection is released when the
          // Scope closes. A failure is forgotten, so the next call dials again.
          const start = existing !== undefined
            ? Effect.andThen(Metric.update(sharedTotal, 1), Effect.annotateCurrentSpan("lazydial.shared", true))
            : Effect.flatMap(
              Effect.clockWith((clock) =>
                Effect.forkIn(
                  Effect.interruptible(Scope.provide(dial(chatId, clock.currentTimeMillisUnsafe()), scope)),
                  scope,
                  // on this tick: a scheduler hop per turn would only add latency
                  { startImmediately: true }
                )
              ),
              (fiber) =>
                Effect.sync(() => {
                  shared.fiber = fiber
                  fiber.addObserver((exit: Exit.Exit<A, E>) => {
                    if (exit._tag === "Failure" && chats.get(chatId) === shared) chats.delete(chatId)
                    Deferred.doneUnsafe(shared.deferred, exit)
                  })
                })
            )

          return Effect.andThen(start, restore(Deferred.await(shared.deferred))).pipe(
            Effect.onInterrupt(() =>
              Effect.sync(() => {
                shared.waiters--
                if (shared.waiters > 0 || shared.fiber?.pollUnsafe() !== undefined) return
                // Nobody waits for this dial any more: abandon it, without waiting.
                if (chats.get(chatId) === shared) chats.delete(chatId)
                shared.fiber?.interruptUnsafe()
              })
            )
          )
        }))
    ).pipe(Effect.withSpan("ChatConnector.connect", { attributes: { "lazydial.chat_id": chatId } }))
}
