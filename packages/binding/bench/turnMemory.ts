/**
 * Heap per in-flight turn: `ChatConnector.connect` with N turns waiting on
 * agents that hang, on the memory store, read with every turn's caller alive
 * and every dial started (both asserted before the heap is read). Beside it,
 * in the same process: core's `LazyDial.dial` alone, and the floor, a caller
 * holding a Scope with one pending resource.
 *
 *   pnpm --filter @lazydial/binding bench
 *   LAZYDIAL_BENCH_IN_FLIGHT=5000 pnpm --filter @lazydial/binding bench
 *
 * Runs under tsx (the packages import each other's TypeScript sources), which
 * names every closure: figures run a little above core's own `pnpm bench`.
 */
import { BindingStore, ChatConnector, RebuildNotices } from "@lazydial/binding"
import { AgentDialer, AgentId, AgentLookup, BuildId, CurrentAgent, LazyDial, WorkspaceId } from "@lazydial/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as os from "node:os"

const n = Number(process.env["LAZYDIAL_BENCH_IN_FLIGHT"] ?? 20_000)
const rounds = 3
const workspaces = Array.from({ length: 100 }, () => ({
  workspaceId: WorkspaceId.make(crypto.randomUUID()),
  current: new CurrentAgent({ agentId: AgentId.make(crypto.randomUUID()), buildId: BuildId.make(crypto.randomUUID()) })
}))
const byWorkspace = new Map(workspaces.map((w) => [w.workspaceId, w.current]))

let dialsStarted = 0
/** Every agent hangs: each turn waits in its dial, before the validation delay. */
const hungAgents = Layer.mergeAll(
  Layer.succeed(
    AgentDialer.AgentDialer,
    AgentDialer.AgentDialer.of({ dial: () => Effect.suspend(() => (dialsStarted++, Effect.never)) })
  ),
  Layer.succeed(
    AgentLookup.AgentLookup,
    AgentLookup.AgentLookup.of({ current: (w) => Effect.sync(() => Option.fromNullishOr(byWorkspace.get(w))) })
  )
)

const settle = () => new Promise<void>((resolve) => setImmediate(resolve))
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

/** Heap bytes per caller of `pending`, with all `n` alive and all `n` dials started. */
const heapPerCaller = async (pending: Effect.Effect<unknown, unknown>, countsDials: boolean) => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("run with node --expose-gc")
  dialsStarted = 0
  gc()
  const before = process.memoryUsage().heapUsed
  const fibers = Effect.runSync(Effect.forEach(Array.from({ length: n }), () => Effect.forkDetach(pending)))
  for (let i = 0; i < 1000 && countsDials && dialsStarted < n; i++) await settle()
  const alive = fibers.filter((fiber) => fiber.pollUnsafe() === undefined).length
  if (alive !== n || (countsDials && dialsStarted !== n)) {
    throw new Error(`turn memory bench: ${dialsStarted} of ${n} dials started, ${alive} of ${n} callers alive`)
  }
  gc()
  const after = process.memoryUsage().heapUsed
  await Effect.runPromise(Fiber.interruptAll(fibers))
  return (after - before) / n
}

const main = Effect.gen(function*() {
  const bindings = yield* BindingStore.BindingStore
  const connector = yield* ChatConnector.ChatConnector
  // the same connector with a listening view of rebuild notices: each pending
  // dial also waits for the view's early-validation signal
  const notices = Context.get(yield* Layer.build(RebuildNotices.layerMemory), RebuildNotices.RebuildNotices)
  const viewed = yield* ChatConnector.make({
    dialTimeout: ChatConnector.maxDialTimeout,
    maxInFlight: Math.min(n, ChatConnector.maxMaxInFlight)
  }).pipe(Effect.provideService(RebuildNotices.RebuildNotices, notices))
  const lazyDial = yield* LazyDial.LazyDial
  const chats = yield* Effect.forEach(Array.from({ length: n }), (_, i) =>
    Effect.gen(function*() {
      const w = workspaces[i % workspaces.length]!
      const chat = yield* bindings.createChat({ workspaceId: w.workspaceId })
      yield* bindings.recordAgent(chat.chatId, {
        expected: { workspaceId: w.workspaceId, agentId: Option.none() },
        current: w.current
      })
      return chat.chatId
    }))
  let next = 0
  const turn = Effect.suspend(() => Effect.scoped(connector.connect(chats[next++ % chats.length]!)))
  const viewedTurn = Effect.suspend(() => Effect.scoped(viewed.connect(chats[next++ % chats.length]!)))
  const dial = Effect.scoped(
    lazyDial.dial({ agentId: workspaces[0]!.current.agentId, workspaceId: workspaces[0]!.workspaceId })
  )
  const floor = Effect.scoped(
    Effect.andThen(Effect.acquireRelease(Effect.void, () => Effect.void), Effect.never)
  )
  const results = {
    turn: [] as Array<number>,
    viewed: [] as Array<number>,
    dial: [] as Array<number>,
    floor: [] as Array<number>
  }
  for (let round = 0; round < rounds; round++) {
    next = 0
    results.turn.push(yield* Effect.promise(() => heapPerCaller(turn, true)))
    next = 0
    results.viewed.push(yield* Effect.promise(() => heapPerCaller(viewedTurn, true)))
    results.dial.push(yield* Effect.promise(() => heapPerCaller(dial, true)))
    results.floor.push(yield* Effect.promise(() => heapPerCaller(floor, false)))
  }
  const kb = (xs: ReadonlyArray<number>) => `${(median(xs) / 1024).toFixed(2)} KB`
  console.log(
    `turn memory: ${
      os.cpus()[0]?.model ?? "?"
    } x${os.cpus().length}, node ${process.version}, ${n} in flight, median of ${rounds}`
  )
  console.log(`memory per in-flight turn (ChatConnector.connect, memory store, hung agent)  ${kb(results.turn)}`)
  console.log(`the same, with a listening view of rebuild notices (RebuildNotices.layerMemory) ${kb(results.viewed)}`)
  console.log(`memory per in-flight LazyDial.dial, same process                             ${kb(results.dial)}`)
  console.log(`floor: a caller holding a Scope with one pending resource                    ${kb(results.floor)}`)
}).pipe(
  Effect.scoped,
  Effect.provide(
    ChatConnector.layer({
      dialTimeout: ChatConnector.maxDialTimeout,
      maxInFlight: Math.min(n, ChatConnector.maxMaxInFlight)
    }).pipe(
      Layer.provideMerge(LazyDial.layer({ delay: "1 minute" })),
      Layer.provideMerge(BindingStore.layerMemory),
      Layer.provideMerge(hungAgents)
    )
  )
)

Effect.runPromise(main).then(() => process.exit(0), (error) => {
  console.error(error)
  process.exit(1)
})
