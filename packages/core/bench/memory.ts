/**
 * The heap reading the memory benchmarks share: bytes per pending call, with
 * every caller alive and every dial started, both asserted before the heap is
 * read.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { AgentId, dialWithLazyValidation, WorkspaceId } from "../src/index.js"

const A = AgentId.make("00000000-0000-4000-8000-00000000000a")
const W = WorkspaceId.make("00000000-0000-4000-8000-0000000000f0")

/** Lets the event loop run, so that forked fibers start and settle. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * Heap bytes per pending call. A figure taken when the callers have ended
 * measures nothing: the mistake this bench once made, with `Effect.fork`
 * children that the `runPromise` root interrupted as it ended, so that 0 of
 * the callers were alive and no dial had started when the heap was read.
 */
export const heapPerPending = async (
  n: number,
  start: (started: () => void) => { readonly alive: () => number; readonly stop: () => Promise<void> }
): Promise<number> => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("run with node --expose-gc")
  let started = 0
  gc()
  const before = process.memoryUsage().heapUsed
  const callers = start(() => started++)
  for (let i = 0; i < 1000 && started < n; i++) await settle()
  const alive = callers.alive()
  if (started !== n || alive !== n) {
    throw new Error(`memory bench: ${started} of ${n} dials started, ${alive} of ${n} callers alive`)
  }
  gc()
  const after = process.memoryUsage().heapUsed
  await callers.stop()
  return (after - before) / n
}

/** `heapPerPending` for `n` daemon callers of an effect, each alive until stopped. */
export const memoryOfCallers = (n: number, pending: (started: () => void) => Effect.Effect<unknown, unknown>) =>
  heapPerPending(n, (started) => {
    const caller = pending(started)
    const fibers = Effect.runSync(Effect.forEach(Array.from({ length: n }), () => Effect.forkDetach(caller)))
    return {
      alive: () => fibers.filter((fiber) => fiber.pollUnsafe() === undefined).length,
      stop: () => Effect.runPromise(Fiber.interruptAll(fibers))
    }
  })

/** A call whose dial never answers, pending before its 1-minute delay; `started` counts its dial. */
export const pendingDial = (started: () => void) =>
  Effect.scoped(dialWithLazyValidation({
    agentId: A,
    workspaceId: W,
    dial: () => Effect.suspend(() => (started(), Effect.never)),
    lookup: () => Effect.succeed(Option.some(A)),
    delay: "1 minute"
  }))
