/**
 * `pnpm bench` (from the root, or in packages/core).
 *
 * Every figure is a median over repeated rounds. Ratios compare numbers taken in
 * the same process, round by round, so that machine noise cancels out.
 * `LAZYDIAL_BENCH_ROUNDS` and `LAZYDIAL_BENCH_CALLS` scale the run.
 */

import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as os from "node:os"
import { AgentId, dialWithLazyValidation, WorkspaceId } from "../src/index.js"
import { promiseDial } from "./promiseDial.js"

const A = AgentId.make("00000000-0000-4000-8000-00000000000a")
const B = AgentId.make("00000000-0000-4000-8000-00000000000b")
const W = WorkspaceId.make("00000000-0000-4000-8000-0000000000f0")
const rounds = Number(process.env.LAZYDIAL_BENCH_ROUNDS ?? 9)
const calls = Number(process.env.LAZYDIAL_BENCH_CALLS ?? 50_000)
const inFlight = Number(process.env.LAZYDIAL_BENCH_IN_FLIGHT ?? 100_000)

// A dial that is ready at once and owns a resource, as a real one does: its
// release is a finalizer of the Scope it is dialed in.
const readyDial = (agentId: AgentId) => Effect.acquireRelease(Effect.succeed({ agentId }), () => Effect.void)
// The same, with nothing to release: isolates the cost of the race itself.
const readyValue = (agentId: AgentId) => Effect.succeed({ agentId })

const median = (xs: ReadonlyArray<number>) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** Runs `body` `n` times in one fiber; returns microseconds per call. */
const timeEffect = async (n: number, body: Effect.Effect<unknown, unknown>): Promise<number> => {
  const loop = Effect.loop(0, { while: (i) => i < n, step: (i) => i + 1, body: () => body, discard: true })
  const started = performance.now()
  await Effect.runPromise(loop)
  return ((performance.now() - started) * 1000) / n
}

const timePromise = async (n: number, body: () => Promise<unknown>): Promise<number> => {
  const started = performance.now()
  for (let i = 0; i < n; i++) await body()
  return ((performance.now() - started) * 1000) / n
}

/** One scoped call: the bound agent is A, the lookup names `current`. */
const call = (
  dial: (agentId: AgentId) => Effect.Effect<unknown, never, Scope.Scope>,
  current: AgentId,
  delay: Duration.DurationInput
) =>
  Effect.scoped(dialWithLazyValidation({
    agentId: A,
    workspaceId: W,
    dial,
    lookup: () => Effect.succeed(Option.some(current)),
    delay
  }))

const fastPath = call(readyDial, A, "1 minute")
const fastPathValue = call(readyValue, A, "1 minute")
const staleSwitch = call((agentId) => agentId === A ? Effect.never : readyDial(agentId), B, 0)

const memoryPerDial = async (n: number): Promise<number> => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("run with node --expose-gc")
  const pending = dialWithLazyValidation({
    agentId: A,
    workspaceId: W,
    dial: () => Effect.never,
    lookup: () => Effect.succeed(Option.some(A)),
    delay: "1 minute"
  })
  gc()
  const before = process.memoryUsage().heapUsed
  const fibers = await Effect.runPromise(
    Effect.forEach(Array.from({ length: n }), () => Effect.fork(Effect.scoped(pending)))
  )
  await Effect.runPromise(Effect.yieldNow())
  gc()
  const after = process.memoryUsage().heapUsed
  await Effect.runPromise(Fiber.interruptAll(fibers))
  return (after - before) / n
}

const main = async () => {
  console.log(`lazydial core benchmark: ${os.cpus()[0]?.model ?? "?"} x${os.cpus().length}, node ${process.version}`)
  console.log(`${rounds} rounds of ${calls} calls each; medians below\n`)
  const rows: Record<string, Array<number>> = {
    floor: [],
    fast: [],
    floorValue: [],
    fastValue: [],
    promise: [],
    promiseNoAbort: [],
    ratio: [],
    overheadRatio: [],
    stale: [],
    promiseStale: []
  }
  // warm-up, so that every path is optimised before it is measured
  await timeEffect(calls / 4, fastPath)
  await timeEffect(calls / 4, fastPathValue)
  await timeEffect(calls / 4, Effect.scoped(readyDial(A)))
  await timeEffect(calls / 20, staleSwitch)
  await timePromise(calls / 4, () => promiseDial({ fast: true, abort: true }))
  for (let round = 0; round < rounds; round++) {
    const floor = await timeEffect(calls, Effect.scoped(readyDial(A)))
    const fast = await timeEffect(calls, fastPath)
    const promise = await timePromise(calls, () => promiseDial({ fast: true, abort: true }))
    rows.floor!.push(floor)
    rows.fast!.push(fast)
    rows.promise!.push(promise)
    rows.ratio!.push(fast / promise)
    rows.overheadRatio!.push((fast - floor) / promise)
    rows.floorValue!.push(await timeEffect(calls, Effect.scoped(readyValue(A))))
    rows.fastValue!.push(await timeEffect(calls, fastPathValue))
    rows.promiseNoAbort!.push(await timePromise(calls, () => promiseDial({ fast: true, abort: false })))
    rows.stale!.push(await timeEffect(calls / 10, staleSwitch))
    rows.promiseStale!.push(await timePromise(calls / 100, () => promiseDial({ fast: false, abort: true })))
  }
  const memory: Array<number> = []
  for (let round = 0; round < 3; round++) memory.push(await memoryPerDial(inFlight))
  const us = (xs: ReadonlyArray<number>) => `${median(xs).toFixed(2)} µs`
  const table = [
    ["fast path: Effect.scoped(dialWithLazyValidation(acquireRelease dial))", us(rows.fast!)],
    ["floor: Effect.scoped(the same acquireRelease dial)", us(rows.floor!)],
    ["fast path, dial with nothing to release", us(rows.fastValue!)],
    ["floor: Effect.scoped(Effect.succeed)", us(rows.floorValue!)],
    ["promise version (AbortController + setTimeout), fast path", us(rows.promise!)],
    ["promise version without AbortController, fast path", us(rows.promiseNoAbort!)],
    ["ratio lazydial / promise, same round", median(rows.ratio!).toFixed(2)],
    ["ratio (lazydial - floor) / promise, same round", median(rows.overheadRatio!).toFixed(2)],
    ["stale switch: dialWithLazyValidation (delay 0, lookup names B)", us(rows.stale!)],
    ["stale switch: promise version (its setTimeout(0) is a 1 ms timer)", us(rows.promiseStale!)],
    [`memory per in-flight dial (${inFlight} in flight)`, `${(median(memory) / 1024).toFixed(2)} KB`]
  ]
  for (const [name, value] of table) console.log(`${name!.padEnd(72)} ${value}`)
  if (process.env.LAZYDIAL_BENCH_JSON) {
    console.log(JSON.stringify(Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]))))
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
