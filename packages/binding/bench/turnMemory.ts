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
 * With connections shared across turns (core's `SharedConnections` under
 * `LazyDial` and in the connector's context), also:
 * - memory per open shared connection: N agents (each of its own workspace)
 *   with a connection open and nobody borrowing it, asserted open (the
 *   dialer's own count and `SharedConnections.open`) before the heap is read;
 * - memory per in-flight turn with reuse: N turns of chats over 100 agents,
 *   each turn connected (asserted) and holding its borrowed connection; beside
 *   it, the same turns without reuse, each holding a connection of its own.
 * The bench's connection is a small object, not a socket: a real connection
 * adds its socket's cost (see docs/binding.md).
 *
 * Runs under tsx (the packages import each other's TypeScript sources), which
 * names every closure: figures run a little above core's own `pnpm bench`.
 */
import { BindingStore, ChatConnector, RebuildNotices } from "@lazydial/binding"
import {
  type AgentConnection,
  AgentDialer,
  AgentId,
  AgentLookup,
  BuildId,
  type ChatId,
  CurrentAgent,
  type InvalidOption,
  LazyDial,
  SharedConnections,
  WorkspaceId
} from "@lazydial/core"
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

/** Agents that answer at once; `connectionsOpen` counts the connections not yet closed. */
let connectionsOpen = 0
let serial = 0
const readyAgents = (lookup: ReadonlyMap<WorkspaceId, CurrentAgent>) =>
  Layer.mergeAll(
    Layer.succeed(
      AgentDialer.AgentDialer,
      AgentDialer.AgentDialer.of({
        dial: (agentId) =>
          Effect.acquireRelease(
            Effect.sync((): AgentConnection => {
              connectionsOpen++
              return { agentId, connectionId: `c${++serial}`, exchange: (request) => Effect.succeed(request) }
            }),
            () =>
              Effect.sync(() => {
                connectionsOpen--
              })
          )
      })
    ),
    Layer.succeed(
      AgentLookup.AgentLookup,
      AgentLookup.AgentLookup.of({ current: (w) => Effect.sync(() => Option.fromNullishOr(lookup.get(w))) })
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
  /** `n` chats, the i-th bound to the current agent of `among[i % among.length]`. */
  const bound = (among: ReadonlyArray<{ readonly workspaceId: WorkspaceId; readonly current: CurrentAgent }>) =>
    Effect.forEach(Array.from({ length: n }), (_, i): Effect.Effect<ChatId, unknown> =>
      Effect.gen(function*() {
        const w = among[i % among.length]!
        const chat = yield* bindings.createChat({ workspaceId: w.workspaceId })
        yield* bindings.recordAgent(chat.chatId, {
          expected: { workspaceId: w.workspaceId, agentId: Option.none() },
          current: w.current
        })
        return chat.chatId
      }))
  const chats = yield* bound(workspaces)
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
  // ---- connections shared across turns --------------------------------------------------
  const gc = (globalThis as { gc?: () => void }).gc!
  const store = Layer.succeed(BindingStore.BindingStore, bindings)
  /** A connector over agents that answer at once, with or without SharedConnections. */
  const readyConnector = <R>(
    lookup: ReadonlyMap<WorkspaceId, CurrentAgent>,
    dialing: Layer.Layer<R, InvalidOption, AgentDialer.AgentDialer | AgentLookup.AgentLookup>
  ) =>
    Layer.build(
      ChatConnector.layer({
        dialTimeout: ChatConnector.maxDialTimeout,
        maxInFlight: Math.min(n, ChatConnector.maxMaxInFlight)
      }).pipe(
        Layer.provideMerge(dialing),
        Layer.provideMerge(Layer.merge(store, readyAgents(lookup)))
      )
    )
  const sharedDialing = Layer.provideMerge(
    LazyDial.layer({ delay: "1 minute" }),
    // past its capacity (10,000 by default) a dial is the caller's own: room for all N
    SharedConnections.layer({ capacity: Math.max(n, SharedConnections.defaults.capacity) })
  )
  const ownDialing = LazyDial.layer({ delay: "1 minute" })

  // N agents, each the current agent of its own workspace, with one chat each
  const own = Array.from({ length: n }, () => ({
    workspaceId: WorkspaceId.make(crypto.randomUUID()),
    current: new CurrentAgent({
      agentId: AgentId.make(crypto.randomUUID()),
      buildId: BuildId.make(crypto.randomUUID())
    })
  }))
  const ownChats = yield* bound(own)
  const fleet = new Map([...byWorkspace, ...own.map((w) => [w.workspaceId, w.current] as const)])

  /** Heap bytes per open shared connection: N agents each with one open, nobody borrowing. */
  const perOpenConnection = Effect.scoped(Effect.gen(function*() {
    const context = yield* readyConnector(fleet, sharedDialing)
    const sharedConnector = Context.get(context, ChatConnector.ChatConnector)
    const control = Context.get(context, SharedConnections.SharedConnections)
    connectionsOpen = 0
    gc()
    const before = process.memoryUsage().heapUsed
    yield* Effect.forEach(ownChats, (chatId) => Effect.scoped(sharedConnector.connect(chatId)), {
      concurrency: 100,
      discard: true
    })
    const open = yield* control.open
    if (open !== n || connectionsOpen !== n) {
      return yield* Effect.die(new Error(`${open} shared connections open, ${connectionsOpen} dialed, of ${n}`))
    }
    gc()
    return (process.memoryUsage().heapUsed - before) / n
  }))

  /** Heap bytes per in-flight turn holding its connection (borrowed, or its own), over the 100 agents. */
  const perHeldTurn = (sharing: boolean) =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* readyConnector(fleet, sharing ? sharedDialing : ownDialing)
      const heldConnector = Context.get(context, ChatConnector.ChatConnector)
      // the 100 shared connections are opened before the heap is read: they are not the turns'
      yield* Effect.forEach(chats.slice(0, workspaces.length), (chatId) => Effect.scoped(heldConnector.connect(chatId)))
      let connected = 0
      const held = Effect.suspend(() =>
        Effect.scoped(Effect.andThen(heldConnector.connect(chats[next++ % chats.length]!), () => {
          connected++
          return Effect.never
        }))
      )
      next = 0
      gc()
      const before = process.memoryUsage().heapUsed
      const fibers = yield* Effect.forEach(Array.from({ length: n }), () => Effect.forkDetach(held))
      for (let i = 0; i < 1000 && connected < n; i++) yield* Effect.promise(settle)
      if (connected !== n) return yield* Effect.die(new Error(`${connected} of ${n} turns connected`))
      const expectedOpen = sharing ? workspaces.length : n
      if (connectionsOpen < expectedOpen) {
        return yield* Effect.die(new Error(`${connectionsOpen} connections open, expected ${expectedOpen}`))
      }
      gc()
      const after = process.memoryUsage().heapUsed
      yield* Fiber.interruptAll(fibers)
      return (after - before) / n
    }))

  const sharedResults = { open: [] as Array<number>, reuse: [] as Array<number>, noReuse: [] as Array<number> }
  for (let round = 0; round < rounds; round++) {
    sharedResults.open.push(yield* perOpenConnection)
    sharedResults.reuse.push(yield* perHeldTurn(true))
    sharedResults.noReuse.push(yield* perHeldTurn(false))
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
  console.log(`memory per open shared connection, nobody borrowing (SharedConnections)       ${kb(sharedResults.open)}`)
  console.log(
    `memory per in-flight turn holding a borrowed connection (reuse, 100 agents)   ${kb(sharedResults.reuse)}`
  )
  console.log(
    `memory per in-flight turn holding a connection of its own (no reuse)          ${kb(sharedResults.noReuse)}`
  )
  console.log(`load average ${os.loadavg().map((load) => load.toFixed(2)).join(" ")}`)
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
