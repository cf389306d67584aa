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
import * as Scope from "effect/Scope"
import * as os from "node:os"
import { AgentId, dialWithLazyValidation, LazyDial, WorkspaceId } from "../src/index.js"
import { Sketch } from "../src/internal/adaptiveDelay.js"
import * as internal from "../src/internal/lazyDial.js"
import { heapPerPending, memoryOfCallers, pendingDial } from "./memory.js"
import { promiseDial } from "./promiseDial.js"

const A = AgentId.make("00000000-0000-4000-8000-00000000000a")
const B = AgentId.make("00000000-0000-4000-8000-00000000000b")
const W = WorkspaceId.make("00000000-0000-4000-8000-0000000000f0")
const rounds = Number(process.env.LAZYDIAL_BENCH_ROUNDS ?? 9)
const calls = Number(process.env.LAZYDIAL_BENCH_CALLS ?? 50_000)
const inFlight = Number(process.env.LAZYDIAL_BENCH_IN_FLIGHT ?? 100_000)
/** `memory`: only the memory figures (a minute instead of several). */
const only = process.env.LAZYDIAL_BENCH_ONLY

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
  let i = 0
  const loop = Effect.whileLoop({ while: () => i++ < n, body: () => body, step: () => {} })
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
  delay: Duration.Input
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
// The fast path of a service with `delay: "adaptive"`: every call records its connect time.
const learned = new Sketch({ ...LazyDial.adaptiveDefaults, initial: LazyDial.adaptiveDefaults.max })
const fastPathAdaptive = Effect.scoped(internal.make({
  agentId: A,
  workspaceId: W,
  dial: readyDial,
  lookup: () => Effect.succeed(Option.some(A)),
  agentIdOf: (agentId) => agentId,
  delay: learned.delay,
  learned
}))
const staleSwitch = call((agentId) => agentId === A ? Effect.never : readyDial(agentId), B, 0)
// The same call with the caller's tracing turned off: what the span costs.
const fastPathUntraced = Effect.withTracerEnabled(fastPath, false)

/**
 * The race written plainly, as the issue measured it: the dial forked into a
 * Scope of its own, the caller waiting with `timeoutOption(Fiber.await(dial))`;
 * no span, no metrics, no interruption handling. What the rest costs.
 */
const plainRace = (dial: Effect.Effect<unknown, never, Scope.Scope>) =>
  Effect.scoped(Effect.flatMap(Effect.scope, (caller) =>
    Effect.flatMap(Scope.fork(caller), (scope) =>
      Effect.flatMap(
        Effect.forkIn(Scope.provide(dial, scope), scope, { startImmediately: true }),
        (fiber) => Effect.timeoutOption(Fiber.await(fiber), "1 minute")
      ))))
const fastPlainRace = plainRace(readyDial(A))

const memoryPerDial = (n: number) => memoryOfCallers(n, pendingDial)

/** The floor: a caller that holds a Scope with one pending resource, and nothing else. */
const memoryFloor = (n: number) =>
  memoryOfCallers(
    n,
    (started) =>
      Effect.scoped(Effect.andThen(Effect.acquireRelease(Effect.sync(started), () => Effect.void), Effect.never))
  )

const memoryPromise = (n: number) =>
  heapPerPending(n, (started) => {
    const controller = new AbortController()
    let settled = 0
    for (let i = 0; i < n; i++) {
      promiseDial({ fast: false, abort: true, delayMs: 60_000, onDial: started, signal: controller.signal }).then(
        () => settled++,
        () => settled++
      )
    }
    return {
      alive: () => n - settled,
      stop: async () => controller.abort()
    }
  })

const warmUp = async () => {
  await timeEffect(calls / 4, fastPath)
  await timeEffect(calls / 4, fastPathValue)
  await timeEffect(calls / 4, fastPathAdaptive)
  await timeEffect(calls / 4, Effect.scoped(readyDial(A)))
  await timeEffect(calls / 20, staleSwitch)
  await timeEffect(calls / 4, fastPathUntraced)
  await timeEffect(calls / 4, fastPlainRace)
  await timePromise(calls / 4, () => promiseDial({ fast: true, abort: true }))
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
    promiseStale: [],
    fastAdaptive: [],
    fastToFloor: [],
    adaptiveToFloor: [],
    fastUntraced: [],
    plainRace: []
  }
  // warm-up, so that every path is optimised before it is measured
  if (only !== "memory") await warmUp()
  for (let round = 0; round < (only === "memory" ? 0 : rounds); round++) {
    const floor = await timeEffect(calls, Effect.scoped(readyDial(A)))
    const fast = await timeEffect(calls, fastPath)
    const promise = await timePromise(calls, () => promiseDial({ fast: true, abort: true }))
    rows.floor!.push(floor)
    rows.fast!.push(fast)
    rows.promise!.push(promise)
    rows.ratio!.push(fast / promise)
    rows.overheadRatio!.push((fast - floor) / promise)
    const fastAdaptive = await timeEffect(calls, fastPathAdaptive)
    rows.fastAdaptive!.push(fastAdaptive)
    rows.fastToFloor!.push(fast / floor)
    rows.adaptiveToFloor!.push(fastAdaptive / floor)
    rows.floorValue!.push(await timeEffect(calls, Effect.scoped(readyValue(A))))
    rows.fastValue!.push(await timeEffect(calls, fastPathValue))
    rows.promiseNoAbort!.push(await timePromise(calls, () => promiseDial({ fast: true, abort: false })))
    rows.fastUntraced!.push(await timeEffect(calls, fastPathUntraced))
    rows.plainRace!.push(await timeEffect(calls, fastPlainRace))
    rows.stale!.push(await timeEffect(calls / 10, staleSwitch))
    rows.promiseStale!.push(await timePromise(calls / 100, () => promiseDial({ fast: false, abort: true })))
  }
  const memory = {
    dial: [] as Array<number>,
    floor: [] as Array<number>,
    promise: [] as Array<number>,
    plainRace: [] as Array<number>
  }
  for (let round = 0; round < 3; round++) {
    memory.dial.push(await memoryPerDial(inFlight))
    memory.plainRace.push(
      await memoryOfCallers(inFlight, (started) => plainRace(Effect.suspend(() => (started(), Effect.never))))
    )
    memory.floor.push(await memoryFloor(inFlight))
    memory.promise.push(await memoryPromise(inFlight))
  }
  const kb = (xs: ReadonlyArray<number>) => `${(median(xs) / 1024).toFixed(2)} KB`
  const times = (xs: ReadonlyArray<number>) => xs.length === 0 ? "-" : median(xs).toFixed(2)
  const us = (xs: ReadonlyArray<number>) => xs.length === 0 ? "-" : `${median(xs).toFixed(2)} µs`
  const table = [
    ["fast path: Effect.scoped(dialWithLazyValidation(acquireRelease dial))", us(rows.fast!)],
    ["floor: Effect.scoped(the same acquireRelease dial)", us(rows.floor!)],
    ["fast path, adaptive delay (each call feeds the sketch)", us(rows.fastAdaptive!)],
    ["fast path, the caller's tracing off (no span)", us(rows.fastUntraced!)],
    ["the plain race (forkIn + timeoutOption(Fiber.await)), no span or metrics", us(rows.plainRace!)],
    ["ratio fast path / floor, same round", times(rows.fastToFloor!)],
    ["ratio fast path with adaptive delay / floor, same round", times(rows.adaptiveToFloor!)],
    ["fast path, dial with nothing to release", us(rows.fastValue!)],
    ["floor: Effect.scoped(Effect.succeed)", us(rows.floorValue!)],
    ["promise version (AbortController + setTimeout), fast path", us(rows.promise!)],
    ["promise version without AbortController, fast path", us(rows.promiseNoAbort!)],
    ["ratio lazydial / promise, same round", times(rows.ratio!)],
    ["ratio (lazydial - floor) / promise, same round", times(rows.overheadRatio!)],
    ["stale switch: dialWithLazyValidation (delay 0, lookup names B)", us(rows.stale!)],
    ["stale switch: promise version (its setTimeout(0) is a 1 ms timer)", us(rows.promiseStale!)],
    [`memory per in-flight dial (${inFlight} callers alive, every dial started)`, kb(memory.dial)],
    ["memory per in-flight plain race (no span or metrics)", kb(memory.plainRace)],
    ["memory floor: a caller holding a Scope with one pending resource", kb(memory.floor)],
    ["memory per in-flight call of the promise version (dial pending, timer set)", kb(memory.promise)]
  ]
  for (const [name, value] of table) console.log(`${name!.padEnd(72)} ${value}`)
  if (process.env.LAZYDIAL_BENCH_JSON) {
    const all = {
      ...rows,
      memoryDial: memory.dial,
      memoryFloor: memory.floor,
      memoryPromise: memory.promise,
      memoryPlainRace: memory.plainRace
    }
    console.log(JSON.stringify(Object.fromEntries(Object.entries(all).map(([k, v]) => [k, median(v)]))))
  }
}

// The promise version's pending 1-minute timers would keep the process alive.
main().then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
