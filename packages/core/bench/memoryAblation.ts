/**
 * Where the memory of one in-flight dial goes: the same heap reading as the
 * benchmark's, for a caller that holds one more piece of the dial at each step.
 * Each row's figure minus the row above is that piece's cost.
 *
 *   pnpm --filter @lazydial/core bench:memory
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import { memoryOfCallers, pendingDial } from "./memory.js"

const n = Number(process.env.LAZYDIAL_BENCH_IN_FLIGHT ?? 50_000)

/** Waits for a fiber through an observer, as the dial does. */
const awaitExit = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.async<Exit.Exit<A, E>>((resume) => {
    const observer = (exit: Exit.Exit<A, E>) => resume(Effect.succeed(exit))
    fiber.addObserver(observer)
    return Effect.sync(() => fiber.removeObserver(observer))
  })

/** A root fiber running a pending dial on the caller's runtime, optionally with a Runtime of its own. */
const rootFiber = (started: () => void, scope: Scope.Scope | undefined) =>
  Effect.flatMap(Effect.runtime<Scope.Scope>(), (runtime) => {
    const run = scope !== undefined
      ? Runtime.runFork(Runtime.make({ ...runtime, context: Context.add(runtime.context, Scope.Scope, scope) }))
      : Runtime.runFork(runtime)
    return Effect.succeed(run(Effect.suspend(() => (started(), Effect.never))))
  })

const withScope = (started: () => void) =>
  Effect.flatMap(
    Scope.make(ExecutionStrategy.sequential),
    (scope) =>
      Effect.flatMap(Scope.Scope, (caller) =>
        Effect.zipRight(
          Scope.addFinalizerExit(caller, (exit) => Scope.close(scope, exit)),
          rootFiber(started, scope)
        ))
  )

const variants: ReadonlyArray<readonly [string, (started: () => void) => Effect.Effect<unknown, unknown>]> = [
  [
    "a daemon caller in Effect.scoped, pending",
    (started) => Effect.scoped(Effect.zipRight(Effect.sync(started), Effect.never))
  ],
  [
    "+ a root fiber for the dial (caller waits through an observer)",
    (started) => Effect.scoped(Effect.flatMap(rootFiber(started, undefined), awaitExit))
  ],
  [
    "+ a Runtime of its own for that fiber (Context.add, Runtime.make)",
    (started) =>
      Effect.scoped(
        Effect.flatMap(Effect.flatMap(Scope.Scope, (caller) => rootFiber(started, caller)), awaitExit)
      )
  ],
  [
    "+ a Scope per attempt, closed by a finalizer of the caller's",
    (started) => Effect.scoped(Effect.flatMap(withScope(started), awaitExit))
  ],
  [
    "+ Effect.timeoutOption around the wait (two forked fibers and a timer)",
    (started) =>
      Effect.scoped(Effect.flatMap(withScope(started), (fiber) => Effect.timeoutOption(awaitExit(fiber), "1 minute")))
  ],
  ["dialWithLazyValidation, tracing off (no span)", (started) => Effect.withTracerEnabled(pendingDial(started), false)],
  ["dialWithLazyValidation, pending before its delay (the whole dial)", pendingDial]
]

const main = async () => {
  console.log(`memory per in-flight caller, ${n} in flight, node ${process.version}; median of 3\n`)
  for (const [name, pending] of variants) {
    const rounds = [
      await memoryOfCallers(n, pending),
      await memoryOfCallers(n, pending),
      await memoryOfCallers(n, pending)
    ]
    rounds.sort((a, b) => a - b)
    console.log(`${name.padEnd(72)} ${(rounds[1]! / 1024).toFixed(2)} KB`)
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
