/**
 * One simulation run: the whole turn path (ChatConnector, the memory
 * BindingStore, core's LazyDial and its scripted agents) on TestClock, driven
 * by a schedule drawn from one seed. See docs/reliability.md for the faults
 * and the invariants.
 */
import { BindingStore, ChatConnector, RebuildNotices } from "@lazydial/binding"
import {
  type AgentConnection,
  AgentDialer,
  AgentDialError,
  AgentId,
  AgentLookup,
  BuildId,
  ChatId,
  type CurrentAgent,
  LazyDial,
  SharedConnections,
  WorkspaceId
} from "@lazydial/core"
import { type DialScript, layerTest, type LookupScript, TestAgents } from "@lazydial/core/testing"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { pendingSleeps } from "../fixtures.js"
import { Model, type WorkspaceModel } from "./model.js"
import { mulberry32 } from "./prng.js"

type Store = BindingStore.BindingStore["Service"]

/**
 * Counts the fibers alive, through Effect's hook for fiber runtime metrics
 * (`Metric.FiberRuntimeMetrics`), which sees every fiber started under it,
 * the detached ones included. Effect 3's `Fiber.roots` is gone, and this
 * check needs no list: a run must end with no more fibers than it began with.
 */
const makeFiberLedger = () => {
  let alive = 0
  const service: Metric.FiberRuntimeMetricsService = {
    recordFiberStart: () => {
      alive++
    },
    recordFiberEnd: () => {
      alive--
    }
  }
  return { service, alive: () => alive }
}

type FiberLedger = ReturnType<typeof makeFiberLedger>

export interface SimOptions {
  /** Chats created at the start; child chats are added on the way. */
  readonly chats: number
  readonly workspaces: number
  /** Scheduled actions of the main phase. */
  readonly steps: number
  /** Test only: a deliberately broken store, to show that the checks catch it. */
  readonly breakStore?: ((store: Store) => Store) | undefined
  /**
   * Rebuild notices (in memory) that the network loses, duplicates, delays
   * and reorders, a listener that drops and comes back, and forged notices.
   * As in production, a notice is a workspace id that only makes the process
   * read the directory (here the model's builds, with their order numbers);
   * the view learns from those reads and from lookup answers only.
   */
  readonly notices?: boolean | undefined
  /**
   * Core's `SharedConnections` under `LazyDial` (and in the connector's
   * context): one connection per agent, lent to every turn. Connections can
   * die: a retired agent's die with it, or linger (the agent keeps its sockets
   * a while, as a hung process does) until the quiet phase, and a current
   * agent's can drop while idle (its probe, or its next use, finds it). The
   * directory's answers name the builds before the latest, as
   * `AgentDirectory`'s do. Checked besides: no turn uses a connection of an
   * agent retired by an answer published after the connection opened and
   * before the turn began, and the steady state borrows (dials per turn).
   */
  readonly shared?: boolean | undefined
}

/** Which agents and connections are dead, in a shared run. */
interface Deaths {
  readonly agents: Set<AgentId>
  readonly connections: Set<string>
}

/** The kit's dialer, with exchanges that fail on dead connections, as a dead peer's do. */
const mortalDialer = (deaths: Deaths) =>
  Layer.effect(
    AgentDialer.AgentDialer,
    Effect.map(AgentDialer.AgentDialer, (kit) =>
      AgentDialer.AgentDialer.of({
        dial: (agentId) =>
          Effect.map(kit.dial(agentId), (connection): AgentConnection => ({
            ...connection,
            exchange: (request) =>
              deaths.agents.has(connection.agentId) || deaths.connections.has(connection.connectionId)
                ? Effect.fail(new AgentDialError({ agentId: connection.agentId, reason: "Closed" }))
                : connection.exchange(request)
          }))
      }))
  )

/** The probe the service gives `SharedConnections`: one cheap exchange. */
const probe = (connection: AgentConnection) => connection.exchange("ping")

/**
 * Virtual time is Effect 4's `TestClock`. Effect 3's was too slow for this
 * workload (it waited for every fiber to suspend before each timer, and kept
 * interrupted sleeps), so the simulation had a clock and a scheduler of its
 * own; on Effect 4 the 200 seeds take 2.5 s on `TestClock` against 3.0 s on
 * that clock, with the same outcomes, and it is gone.
 */
const advance = (millis: number): Effect.Effect<void> => TestClock.adjust(millis)

/** No timer is pending. */
const idle: Effect.Effect<boolean> = Effect.map(pendingSleeps, (sleeps) => sleeps.length === 0)

export interface SeedReport {
  readonly seed: number
  readonly chats: number
  /** Calls of ChatConnector.connect. */
  readonly turns: number
  readonly faults: number
  /** Connections never released or released twice, and fibers still running at the end. */
  readonly leaks: number
  readonly outcomes: Readonly<Record<string, number>>
  readonly violations: ReadonlyArray<string>
  /** Changes when anything about the run changes: used to check that a seed replays exactly. */
  readonly fingerprint: string
}

export const validationDelayMillis = 5_000
export const dialTimeoutMillis = 30_000

export const replayCommand = (seed: number): string =>
  `LAZYDIAL_SIM_SEED=${seed} pnpm exec vitest run --project binding test/simulation`

const expectedErrors = new Set([
  "ChatHasNoWorkspace",
  "NoCurrentAgent",
  "DialTimeout",
  "AgentDialError",
  "AgentLookupError"
])

/**
 * Core's scripted lookup, whose answers are passed to the views as
 * `AgentDirectory`'s are: with the build's order number in the directory.
 * An answer "stopped" is not passed on (which stop it saw is not known), which
 * a view tolerates as a lost notice.
 */
const observingLookup = (
  orders: ReadonlyMap<BuildId, number>,
  supersededOf: (workspaceId: WorkspaceId, buildId: BuildId) => ReadonlyArray<BuildId>
) =>
  Layer.effect(
    AgentLookup.AgentLookup,
    Effect.gen(function*() {
      const lookup = yield* AgentLookup.AgentLookup
      const notices = yield* RebuildNotices.RebuildNotices
      return AgentLookup.AgentLookup.of({
        current: (workspaceId) =>
          Effect.tap(lookup.current(workspaceId), (answer) => {
            const order = Option.isSome(answer) ? orders.get(answer.value.buildId) : undefined
            return answer._tag === "None" || order === undefined ? Effect.void : notices.observe(
              RebuildNotices.noticeOf(
                workspaceId,
                order,
                answer.value.buildId,
                Option.some(answer.value.agentId),
                supersededOf(workspaceId, answer.value.buildId)
              )
            )
          })
      })
    })
  )

/**
 * Keeps when each log line about malformed notices was written (the Effect
 * clock); drops every line (a run logs only what it checks).
 */
const makeLogCounter = () => {
  const malformedLines: Array<number> = []
  const logger = Logger.make(({ date, message }) => {
    if ((Array.isArray(message) ? message.join(" ") : String(message)).includes("malformed payload")) {
      malformedLines.push(date.getTime())
    }
  })
  return { layer: Logger.layer([logger]), malformedLines: (): ReadonlyArray<number> => malformedLines }
}

type LogCounter = ReturnType<typeof makeLogCounter>

export const runSeed = (seed: number, options: SimOptions): Effect.Effect<SeedReport> => {
  const model = new Model()
  const storeLayer = Layer.effect(
    BindingStore.BindingStore,
    Effect.map(BindingStore.makeMemory, (store) => model.watch((options.breakStore ?? ((s) => s))(store)))
  )
  // the directory's build numbers, which a notice's read or a lookup answer carries
  const orders = new Map<BuildId, number>()
  // every build of each workspace, stops included, oldest first (shared runs)
  const directory = new Map<WorkspaceId, Array<BuildId>>()
  // The builds before `buildId`, newest first, as the directory names them; none
  // outside shared runs, so that their schedules and outcomes stay as they were.
  const supersededOf = (workspaceId: WorkspaceId, buildId: BuildId): ReadonlyArray<BuildId> => {
    if (!options.shared) return []
    const builds = directory.get(workspaceId) ?? []
    const index = builds.indexOf(buildId)
    return builds.slice(Math.max(0, index - 8), Math.max(0, index)).reverse()
  }
  const deaths: Deaths = { agents: new Set(), connections: new Set() }
  const logs = makeLogCounter()
  // provideMerge: the observing AgentLookup replaces the one it wraps
  const world = options.notices
    ? Layer.provideMerge(observingLookup(orders, supersededOf), Layer.merge(layerTest, RebuildNotices.layerMemory))
    : layerTest
  const dialing = options.shared
    ? Layer.provideMerge(LazyDial.layer({ delay: validationDelayMillis }), SharedConnections.layer({ probe })).pipe(
      Layer.provide(mortalDialer(deaths))
    )
    : LazyDial.layer({ delay: validationDelayMillis })
  const layers = ChatConnector.layer({ dialTimeout: dialTimeoutMillis }).pipe(
    Layer.provideMerge(dialing),
    Layer.provideMerge(world),
    Layer.provideMerge(storeLayer),
    Layer.provide(logs.layer)
  )
  const fiberLedger = makeFiberLedger()
  return simulate(seed, model, options, fiberLedger, orders, logs, { directory, supersededOf, deaths }).pipe(
    Effect.scoped,
    Effect.provide(layers),
    Effect.orDie,
    Effect.provideService(Metric.FiberRuntimeMetrics, fiberLedger.service),
    // A fresh TestClock per seed: a replayed seed starts at the same instant.
    Effect.provide(TestClock.layer())
  )
}

const simulate = (
  seed: number,
  model: Model,
  options: SimOptions,
  fiberLedger: FiberLedger,
  orders: Map<BuildId, number>,
  logs: LogCounter,
  sharing: {
    readonly directory: Map<WorkspaceId, Array<BuildId>>
    readonly supersededOf: (workspaceId: WorkspaceId, buildId: BuildId) => ReadonlyArray<BuildId>
    readonly deaths: Deaths
  }
) =>
  Effect.gen(function*() {
    const rng = mulberry32(seed)
    const fibersBefore = fiberLedger.alive()
    const connector = yield* ChatConnector.ChatConnector
    const store = yield* BindingStore.BindingStore
    const agents = yield* TestAgents

    let turns = 0
    let faults = 0
    const outcomes: Record<string, number> = {}
    const count = (key: string) => {
      outcomes[key] = (outcomes[key] ?? 0) + 1
    }
    const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
    const chats: Array<ChatId> = []
    const newAgent = () => AgentId.make(rng.uuid())
    const newBuild = () => BuildId.make(rng.uuid())
    const newChat = () => ChatId.make(rng.uuid())
    const memoryNotices = Option.getOrUndefined(yield* Effect.serviceOption(RebuildNotices.MemoryNotices))
    const sharedControl = Option.getOrUndefined(yield* Effect.serviceOption(SharedConnections.SharedConnections))

    // ---- shared connections: which agents the directory's answers retired, and when -------

    // What every view hears, heard too: when an answer (a prompted read, or an
    // observed lookup) first showed each agent retired (its build superseded by
    // a build of another agent, or by a stop).
    const noticesService = Option.getOrUndefined(yield* Effect.serviceOption(RebuildNotices.RebuildNotices))
    const answers = sharedControl !== undefined && noticesService !== undefined
      ? yield* noticesService.subscribe
      : undefined
    const agentOfBuild = new Map<BuildId, AgentId>()
    const retiredAt = new Map<AgentId, number>()
    const takeAnswers = Effect.gen(function*() {
      if (answers === undefined) return
      for (const heard of yield* PubSub.takeUpTo(answers, Number.POSITIVE_INFINITY)) {
        for (const buildId of heard.notice.superseded) {
          const agentId = agentOfBuild.get(buildId)
          if (agentId === undefined || agentId === heard.notice.agentId || retiredAt.has(agentId)) continue
          retiredAt.set(agentId, heard.heardAt)
        }
      }
    })

    // ---- notices: the directory's order numbers, and a faulty network -----------------

    const lastOrder = new Map<WorkspaceId, number>()

    const deliver = (workspaceId: WorkspaceId, memory: NonNullable<typeof memoryNotices>) =>
      Effect.gen(function*() {
        if (rng.chance(0.3)) {
          // delayed, so overtaken by later notices: reordered
          faults++
          count("fault:notice_delayed")
          fibers.push(
            yield* Effect.forkChild(Effect.andThen(Effect.sleep(rng.int(1, 6_000)), memory.notify(workspaceId)))
          )
        } else {
          yield* memory.notify(workspaceId)
        }
      })

    /** A build is recorded in the directory (the truth), and its notice, the workspace id, is sent. */
    const announce = (workspaceId: WorkspaceId, buildId: BuildId, agentId: Option.Option<AgentId>) =>
      Effect.gen(function*() {
        if (memoryNotices === undefined) return
        const order = (lastOrder.get(workspaceId) ?? 0) + 1
        lastOrder.set(workspaceId, order)
        orders.set(buildId, order)
        const builds = sharing.directory.get(workspaceId) ?? []
        builds.push(buildId)
        sharing.directory.set(workspaceId, builds)
        if (Option.isSome(agentId)) agentOfBuild.set(buildId, agentId.value)
        yield* memoryNotices.record(
          RebuildNotices.noticeOf(workspaceId, order, buildId, agentId, sharing.supersededOf(workspaceId, buildId))
        )
        const kind = rng.weighted({ delivered: 10, lost: 2, duplicated: 2 })
        if (kind === "lost") {
          faults++
          count("fault:notice_lost")
          return
        }
        if (kind === "duplicated") {
          faults++
          count("fault:notice_duplicated")
          yield* deliver(workspaceId, memoryNotices)
        }
        yield* deliver(workspaceId, memoryNotices)
      })

    /**
     * Someone who may only connect sends notices: the earlier JSON form naming
     * another workspace's agent or a stop, junk, or bare workspace ids (a real
     * one, tracked or not, or one that exists nowhere).
     */
    const forgedNotices = Effect.gen(function*() {
      if (memoryNotices === undefined) return
      faults++
      const victim = rng.pick(model.workspaces)
      const other = rng.pick(model.workspaces)
      const kind = rng.weighted({ foreignAgent: 3, stop: 2, junk: 2, realId: 3, unknownId: 1 })
      count(`fault:forged_${kind}`)
      const foreign = Option.getOrUndefined(other.current)
      const payloads = kind === "foreignAgent"
        ? [JSON.stringify({
          workspaceId: victim.workspaceId,
          order: 900_000_000 + rng.int(0, 1_000),
          buildId: foreign?.buildId ?? rng.uuid(),
          agentId: foreign?.agentId ?? rng.uuid()
        })]
        : kind === "stop"
        ? [JSON.stringify({ workspaceId: victim.workspaceId, order: 900_000_000, buildId: rng.uuid(), agentId: null })]
        : kind === "junk"
        ? Array.from({ length: rng.int(1, 2_000) }, () => `junk ${rng.uuid()}`)
        : kind === "realId"
        ? Array.from({ length: rng.int(1, 50) }, () => victim.workspaceId)
        : [rng.uuid()]
      yield* memoryNotices.notifyAll(payloads)
    })

    /** The listener drops (the view must forget) and listens again a while later. */
    const listenerDrop = Effect.gen(function*() {
      if (memoryNotices === undefined) return
      faults++
      count("fault:listener_drop")
      yield* memoryNotices.setListening(false)
      fibers.push(
        yield* Effect.forkChild(Effect.andThen(Effect.sleep(rng.int(0, 10_000)), memoryNotices.setListening(true)))
      )
    })

    // ---- agents and workspaces ------------------------------------------------

    const healthy = (): DialScript => ({ result: "connect", latency: rng.chance(0.7) ? 0 : rng.int(1, 50) })

    // Retired agents that keep their sockets for now (shared runs): they die in the quiet phase.
    const lingering = new Set<AgentId>()

    /** A replaced agent is gone: it refuses, hangs, or answers (or refuses) late, ignoring interruption. */
    const retire = (agentId: AgentId) => {
      faults++
      if (sharedControl !== undefined) {
        // drawn only in shared runs, so that the other runs draw as before
        const kind = rng.chance(0.3) ? "linger" : "die"
        count(`fault:old_agent_connections_${kind}`)
        if (kind === "linger") lingering.add(agentId)
        else sharing.deaths.agents.add(agentId)
      }
      const kind = rng.weighted({ refuse: 5, hang: 3, lateConnect: 2, lateRefuse: 1 })
      count(`fault:old_agent_${kind}`)
      const script: DialScript = kind === "refuse"
        ? { result: "fail", latency: rng.chance(0.5) ? 0 : rng.int(1, 4_000) }
        : kind === "hang"
        ? { result: "hang" }
        : kind === "lateConnect"
        ? { result: "connect", latency: rng.int(5_500, 12_000), interruptible: false }
        : { result: "fail", latency: rng.int(5_500, 9_000), interruptible: false }
      return agents.script(agentId, script)
    }

    const rebuild = (workspace: WorkspaceModel) =>
      Effect.gen(function*() {
        const old = workspace.current
        const next = model.addBuild(workspace, newAgent(), newBuild())
        yield* agents.script(next.agentId, healthy())
        yield* agents.setCurrent(workspace.workspaceId, Option.some(next))
        yield* announce(workspace.workspaceId, next.buildId, Option.some(next.agentId))
        if (Option.isSome(old)) yield* retire(old.value.agentId)
      })

    const stop = (workspace: WorkspaceModel) =>
      Effect.gen(function*() {
        if (Option.isNone(workspace.current)) return
        const old = workspace.current.value
        workspace.current = Option.none()
        yield* agents.setCurrent(workspace.workspaceId, Option.none())
        yield* announce(workspace.workspaceId, newBuild(), Option.none())
        yield* retire(old.agentId)
        count("fault:stop")
      })

    const lookupFault = (workspace: WorkspaceModel) => {
      faults++
      const kind = rng.weighted({ fail: 4, slow: 3, beyondTimeout: 1 })
      count(`fault:lookup_${kind}`)
      const script: LookupScript = kind === "fail"
        ? { result: "fail", latency: rng.int(0, 2_000) }
        : kind === "slow"
        ? { result: "current", latency: rng.int(1_000, 8_000) }
        : { result: "current", latency: dialTimeoutMillis + rng.int(1, 5_000) }
      // One faulty lookup, then healthy ones again (the last script repeats).
      return agents.scriptLookup(workspace.workspaceId, script, { result: "current" })
    }

    /** The current agent misbehaves once: a refusal (retried), a slow answer (confirmed), or a hang (timeout). */
    const currentAgentFault = (current: CurrentAgent) => {
      faults++
      const kind = rng.weighted({ refuseOnce: 3, slowOnce: 2, hangOnce: 1 })
      count(`fault:current_agent_${kind}`)
      const first: DialScript = kind === "refuseOnce"
        ? { result: "fail", latency: rng.int(0, 1_000) }
        : kind === "slowOnce"
        ? { result: "connect", latency: rng.int(5_500, 8_000) }
        : { result: "hang" }
      return agents.script(current.agentId, first, healthy())
    }

    // ---- turns ------------------------------------------------------------------

    /** One connect, checked: a typed outcome within the dial timeout, and the agent it names. */
    const checkedConnect = (chatId: ChatId) =>
      Effect.gen(function*() {
        turns++
        const start = yield* Clock.currentTimeMillis
        const exit = yield* Effect.exit(connector.connect(chatId))
        const elapsed = (yield* Clock.currentTimeMillis) - start
        // a turn that ends only after the validation delay waited it out (a notice can end that wait early)
        if (elapsed >= validationDelayMillis) count("turn:waited_delay")
        if (elapsed > dialTimeoutMillis) {
          model.violation(`chat ${chatId}: connect ended after ${elapsed} ms, beyond the dial timeout`)
        }
        if (Exit.isSuccess(exit)) {
          const c = exit.value
          count(`outcome:${c.outcome}`)
          const home = model.homes.get(c.agentId)
          if (home?.workspaceId !== c.workspaceId) {
            model.violation(`chat ${chatId}: connected to agent ${c.agentId} that is not of workspace ${c.workspaceId}`)
          }
          if (c.connection.agentId !== c.agentId) {
            model.violation(`chat ${chatId}: the connection is to ${c.connection.agentId}, not ${c.agentId}`)
          }
          if (answers !== undefined) {
            // an answer that retired the agent, published after the connection opened and before the turn began
            yield* takeAnswers
            const retired = retiredAt.get(c.agentId)
            if (retired !== undefined && retired < start) {
              count("shared:turn_on_retired_agent")
              const opened = (yield* agents.ledger).find((entry) => entry.connectionId === c.connection.connectionId)
              if (opened !== undefined && opened.acquiredAt < retired) {
                model.violation(
                  `chat ${chatId}: a turn begun at ${start} used connection ${c.connection.connectionId} to ` +
                    `${c.agentId}, opened at ${opened.acquiredAt}, after an answer at ${retired} retired that agent`
                )
              }
            }
          }
          const reply = yield* c.connection.exchange("ping")
          if (reply !== `${c.agentId}:ping`) model.violation(`chat ${chatId}: wrong agent answered: ${reply}`)
        }
        return yield* exit
      })

    const classify = (exit: Exit.Exit<unknown, unknown>, mayBeInterrupted: boolean) => {
      if (Exit.isSuccess(exit)) return count("turn:ok")
      if (Cause.hasInterruptsOnly(exit.cause)) {
        if (!mayBeInterrupted) model.violation("a turn nobody interrupted was interrupted")
        return count("turn:interrupted")
      }
      const failure = Cause.findErrorOption(exit.cause)
      if (Option.isSome(failure)) {
        const tag = (failure.value as { readonly _tag?: string })._tag ?? "unknown"
        if (!expectedErrors.has(tag)) model.violation(`a turn failed with an unexpected error: ${tag}`)
        return count(`error:${tag}`)
      }
      model.violation(`a turn died: ${Cause.pretty(exit.cause)}`)
    }

    const track = <A, E>(fiber: Fiber.Fiber<A, E>, mayBeInterrupted: () => boolean) => {
      fibers.push(fiber)
      fiber.addObserver((exit) => classify(exit, mayBeInterrupted()))
    }

    /** Interrupts `fiber` at a random moment of the next 8 seconds. */
    const interruptLater = (fiber: Fiber.Fiber<unknown, unknown>) =>
      Effect.gen(function*() {
        faults++
        count("fault:caller_interrupt")
        const interrupter = yield* Effect.forkChild(
          Effect.andThen(Effect.sleep(rng.int(0, 8_000)), Fiber.interrupt(fiber))
        )
        fibers.push(interrupter)
      })

    /** A turn: its own Scope, a connect, an exchange, the connection held a while, then released. */
    const turn = (chatId: ChatId) =>
      Effect.gen(function*() {
        const hold = rng.chance(0.5) ? 0 : rng.int(1, 2_000)
        const interrupted = rng.chance(0.12)
        const fiber = yield* Effect.forkChild(
          Effect.scoped(Effect.andThen(checkedConnect(chatId), hold > 0 ? Effect.sleep(hold) : Effect.void))
        )
        track(fiber, () => interrupted)
        if (interrupted) yield* interruptLater(fiber)
      })

    /**
     * Concurrent callers of one chat in one Scope: each dials (turns share no
     * dial since issue 19), and every connection is released once, when the
     * Scope closes (the ledger's checks).
     */
    const sharedTurn = (chatId: ChatId, callers: number) =>
      Effect.gen(function*() {
        const interrupted = Array.from({ length: callers }, () => rng.chance(0.2))
        const hold = rng.int(0, 1_000)
        const fiber = yield* Effect.forkChild(Effect.gen(function*() {
          const scope = yield* Scope.make()
          const callersFibers: Array<Fiber.Fiber<unknown, unknown>> = []
          for (let i = 0; i < callers; i++) {
            const caller = yield* Effect.forkChild(Scope.provide(checkedConnect(chatId), scope))
            track(caller, () => interrupted[i]!)
            callersFibers.push(caller)
            if (interrupted[i]) yield* interruptLater(caller)
          }
          yield* Effect.forEach(callersFibers, Fiber.await, { discard: true })
          if (hold > 0) yield* Effect.sleep(hold)
          yield* Scope.close(scope, Exit.void)
        }))
        fibers.push(fiber)
      })

    // ---- settling -------------------------------------------------------------------

    /** Moves the clock until every tracked fiber has ended and no timer is pending. */
    const settle = Effect.gen(function*() {
      for (let round = 0; round < 40; round++) {
        yield* advance(15_000)
        if (fibers.every((fiber) => fiber.pollUnsafe() !== undefined) && (yield* idle)) return
      }
    })

    const roundOfTurns = (ids: ReadonlyArray<ChatId>) =>
      Effect.gen(function*() {
        const round = yield* Effect.forEach(ids, (chatId) => Effect.forkChild(Effect.scoped(checkedConnect(chatId))))
        for (const fiber of round) track(fiber, () => false)
        yield* settle
        return yield* Effect.forEach(round, Fiber.await)
      })

    // ---- setup ------------------------------------------------------------------------

    for (let i = 0; i < options.workspaces; i++) {
      yield* rebuild(model.addWorkspace(WorkspaceId.make(rng.uuid())))
    }
    for (let i = 0; i < options.chats; i++) {
      const parent = chats.length > 0 && rng.chance(0.15) ? rng.pick(chats) : undefined
      if (parent !== undefined) {
        chats.push((yield* store.createChild(parent, { chatId: newChat() })).chatId)
      } else {
        const workspace = rng.chance(0.05) ? undefined : rng.pick(model.workspaces).workspaceId
        chats.push((yield* store.createChat({ chatId: newChat(), workspaceId: workspace })).chatId)
      }
    }

    // ---- main phase ---------------------------------------------------------------------

    for (let step = 0; step < options.steps; step++) {
      const action = rng.weighted({
        turn: 40,
        concurrentTurns: 4,
        sharedTurn: 4,
        advance: 20,
        rebuild: 7,
        stop: 2,
        start: 3,
        setWorkspace: 5,
        child: 3,
        lookupFault: 3,
        currentAgentFault: 3,
        // last, and 0 without notices, so that the other runs draw the same schedule as before
        listenerDrop: memoryNotices === undefined ? 0 : 2,
        forgedNotices: memoryNotices === undefined ? 0 : 3,
        connectionDrop: sharedControl === undefined ? 0 : 3
      })
      count(`action:${action}`)
      switch (action) {
        case "turn": {
          yield* turn(rng.pick(chats))
          break
        }
        case "concurrentTurns": {
          const chatId = rng.pick(chats)
          for (let i = rng.int(2, 4); i > 0; i--) yield* turn(chatId)
          break
        }
        case "sharedTurn": {
          yield* sharedTurn(rng.pick(chats), rng.int(2, 4))
          break
        }
        case "advance": {
          yield* advance(rng.chance(0.8) ? rng.int(0, 3_000) : rng.int(5_000, 12_000))
          break
        }
        case "rebuild": {
          yield* rebuild(rng.pick(model.workspaces))
          break
        }
        case "stop": {
          yield* stop(rng.pick(model.workspaces))
          break
        }
        case "start": {
          const stopped = model.workspaces.filter((w) => Option.isNone(w.current))
          if (stopped.length > 0) yield* rebuild(rng.pick(stopped))
          break
        }
        case "setWorkspace": {
          const target = rng.chance(0.1) ? Option.none() : Option.some(rng.pick(model.workspaces).workspaceId)
          yield* store.setWorkspace(rng.pick(chats), target)
          break
        }
        case "child": {
          chats.push((yield* store.createChild(rng.pick(chats), { chatId: newChat() })).chatId)
          break
        }
        case "lookupFault": {
          yield* lookupFault(rng.pick(model.workspaces))
          break
        }
        case "listenerDrop": {
          yield* listenerDrop
          break
        }
        case "forgedNotices": {
          yield* forgedNotices
          break
        }
        case "connectionDrop": {
          // a current agent's open connections die (a network blip): its probe or next use finds it
          const running = model.workspaces.flatMap((w) => Option.toArray(w.current))
          if (running.length > 0) {
            faults++
            count("fault:connection_drop")
            const agentId = rng.pick(running).agentId
            for (const entry of yield* agents.unreleased) {
              if (entry.agentId === agentId) sharing.deaths.connections.add(entry.connectionId)
            }
          }
          break
        }
        case "currentAgentFault": {
          const running = model.workspaces.flatMap((w) => Option.toArray(w.current))
          if (running.length > 0) yield* currentAgentFault(rng.pick(running))
          break
        }
      }
    }

    // ---- quiet: no more workspace changes, rebuilds or faults -------------------------------

    // the retired agents that kept their sockets are gone now
    for (const agentId of lingering) sharing.deaths.agents.add(agentId)

    for (const workspace of model.workspaces) {
      if (Option.isNone(workspace.current)) yield* rebuild(workspace)
      else yield* agents.script(workspace.current.value.agentId, healthy())
      yield* agents.scriptLookup(workspace.workspaceId, { result: "current" })
    }
    yield* settle
    // A stop the view heard is trusted for a while (it makes no dial that could
    // correct it): if the restart's notice was lost, chats converge once that
    // trust has run out.
    if (memoryNotices !== undefined) yield* advance(Duration.toMillis(ChatConnector.stoppedTrust) + 1_000)

    // Invariant: every chat converges to its workspace's current agent.
    const finals = yield* roundOfTurns(chats)
    for (let i = 0; i < chats.length; i++) {
      const row = yield* store.get(chats[i]!)
      const exit = finals[i]!
      if (Option.isNone(row.workspaceId)) {
        const tag = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined
        if ((tag as { readonly _tag?: string } | undefined)?._tag !== "ChatHasNoWorkspace") {
          model.violation(`chat ${row.chatId} has no workspace, and its turn did not say ChatHasNoWorkspace`)
        }
        continue
      }
      const workspace = model.workspaces.find((w) => w.workspaceId === Option.getOrUndefined(row.workspaceId))
      const current = workspace === undefined ? undefined : Option.getOrUndefined(workspace.current)
      if (Exit.isFailure(exit)) {
        model.violation(`chat ${row.chatId}: the quiet turn failed: ${Cause.pretty(exit.cause)}`)
      }
      if (current === undefined || !Option.contains(row.agentId, current.agentId)) {
        model.violation(`chat ${row.chatId} did not converge to its workspace's current agent`)
      }
    }

    // Invariant: steady-state turns make 0 lookups.
    const lookupsBefore = (yield* agents.lookups).length
    const bound: Array<ChatId> = []
    for (const chatId of chats) {
      if (Option.isSome((yield* store.get(chatId)).workspaceId)) bound.push(chatId)
    }
    const steady = yield* roundOfTurns(bound)
    const steadyLookups = (yield* agents.lookups).length - lookupsBefore
    if (steadyLookups !== 0) model.violation(`a steady-state round made ${steadyLookups} lookups`)
    for (const exit of steady) {
      if (Exit.isFailure(exit) || exit.value.outcome !== "fast") {
        model.violation("a steady-state turn was not hot and fast")
      }
    }

    // Shared runs: the steady state borrows. A round opens each agent's
    // connection; the next one, at once, must dial nothing.
    if (sharedControl !== undefined) {
      const quickRound = Effect.gen(function*() {
        const round = yield* Effect.forEach(bound, (chatId) => Effect.forkChild(Effect.scoped(checkedConnect(chatId))))
        for (const fiber of round) track(fiber, () => false)
        while (round.some((fiber) => fiber.pollUnsafe() === undefined)) yield* advance(10)
        return yield* Effect.forEach(round, Fiber.await)
      })
      yield* quickRound
      const dialsBefore = (yield* agents.dials).length
      const lookupsBeforeShared = (yield* agents.lookups).length
      const borrowed = yield* quickRound
      const steadyDials = (yield* agents.dials).length - dialsBefore
      outcomes["shared:steady_turns"] = borrowed.length
      outcomes["shared:steady_dials"] = steadyDials
      if (steadyDials !== 0) model.violation(`a steady-state round over shared connections made ${steadyDials} dials`)
      if ((yield* agents.lookups).length !== lookupsBeforeShared) {
        model.violation("a steady-state round over shared connections looked up")
      }
      for (const exit of borrowed) {
        if (Exit.isFailure(exit) || exit.value.outcome !== "fast") {
          model.violation("a steady-state turn over shared connections was not fast")
        }
      }
    }

    // Invariants: every connection released exactly once; no fiber left running.
    yield* settle
    if (sharedControl !== undefined && (yield* sharedControl.open) !== 0) {
      model.violation(`${yield* sharedControl.open} shared connections still open after their idle time`)
    }

    // Invariants: whatever arrived, prompted reads came at most once per read
    // interval, and malformed payloads made at most one log line per 10 s.
    if (memoryNotices !== undefined) {
      const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - times[i]!)
      const reads = yield* memoryNotices.readTimes
      outcomes["notice:prompted_reads"] = reads.length
      const readGap = Math.min(...gaps(reads))
      if (readGap < Duration.toMillis(RebuildNotices.readInterval)) {
        model.violation(`two prompted reads ${readGap} ms apart`)
      }
      const lines = logs.malformedLines()
      outcomes["notice:malformed_log_lines"] = lines.length
      const lineGap = Math.min(...gaps(lines))
      if (lineGap < Duration.toMillis(RebuildNotices.malformedLogInterval)) {
        model.violation(`two log lines about malformed notices ${lineGap} ms apart`)
      }
    }
    const unreleased = yield* agents.unreleased
    const releasedTwice = yield* agents.releasedTwice
    const running = fibers.filter((fiber) => fiber.pollUnsafe() === undefined).length
    // every other fiber started since the run began: sweepers, readers, dials
    const strayFibers = Math.max(0, fiberLedger.alive() - fibersBefore - running)
    for (const entry of unreleased) {
      model.violation(`connection ${entry.connectionId} to ${entry.agentId} never released`)
    }
    for (const entry of releasedTwice) model.violation(`connection ${entry.connectionId} released twice`)
    if (running > 0) model.violation(`${running} turn fibers still running`)
    if (strayFibers > 0) model.violation(`${strayFibers} other fibers still running`)
    model.checkHistories()

    const ledger = yield* agents.ledger
    const dials = yield* agents.dials
    const lookups = yield* agents.lookups
    const now = yield* Clock.currentTimeMillis
    return {
      seed,
      chats: chats.length,
      turns,
      faults,
      leaks: unreleased.length + releasedTwice.length + running + strayFibers,
      outcomes,
      violations: model.violations,
      fingerprint: `${turns}/${ledger.length}/${dials.length}/${lookups.length}/${now}/${
        Object.entries(outcomes).sort().map(([k, v]) => `${k}=${v}`).join(",")
      }`
    } satisfies SeedReport
  })
