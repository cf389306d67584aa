import { RebuildNotices } from "@lazydial/binding"
import { type AgentConnection, type ChatId, Faults, SharedConnections, type WorkspaceId } from "@lazydial/core"
import { Chats, type ConnectError, failureReason } from "@lazydial/service/Chats"
import * as ControlPlane from "@lazydial/service/ControlPlane"
import type { RetireMode } from "@lazydial/service/Fleet"
import { snapshot as fleetSnapshot } from "@lazydial/service/Fleet"
import * as Probe from "@lazydial/service/Probe"
import { seededRandom as rng } from "@lazydial/service/Processes"
import * as Service from "@lazydial/service/Service"
import * as Settings from "@lazydial/service/Settings"
import * as SocketDialer from "@lazydial/service/SocketDialer"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { randomUUID } from "node:crypto"
import {
  type AfterRebuild,
  type ConnectOrFail,
  orderFrom,
  type OutcomeName,
  outcomeNames,
  Report,
  strategies,
  type StrategyReport,
  type Strip,
  stripLimit,
  type StripRebuild,
  type StripTurn,
  type TurnTimes,
  wiring
} from "../Report.js"
import type { ChatPlan, Options, Plan, Progress, RebuildPlan, Strategy } from "../Workload.js"
import { quantile, round } from "./stats.js"

class NoAnswer extends Data.TaggedError("NoAnswer") {}

interface Connected {
  readonly connection: AgentConnection
  readonly outcome: OutcomeName
  readonly repaired: boolean
}

export const makePlan = (options: Options): Plan => {
  const random = rng(options.seed)
  const int = (n: number) => Math.floor(random() * n)
  const stoppedCount = options.workspaces >= 5 ? Math.max(1, Math.round(options.workspaces / 10)) : 0
  const stopped = new Set<number>()
  while (stopped.size < stoppedCount) stopped.add(int(options.workspaces))
  const running = Array.from({ length: options.workspaces }, (_, i) => i).filter((i) => !stopped.has(i))

  const childCount = options.chats >= 10 ? Math.round(options.chats / 10) : 0
  const rootCount = options.chats - childCount
  const thinks = () => Array.from({ length: options.turns }, () => Math.round(random() * 2 * options.thinkMs))
  const chats: Array<ChatPlan> = []
  for (let index = 0; index < rootCount; index++) {
    chats.push({ index, workspace: int(options.workspaces), parent: undefined, spawnAfterTurn: 0, thinks: thinks() })
  }
  for (let index = rootCount; index < options.chats; index++) {
    const parent = int(rootCount)
    chats.push({
      index,
      workspace: chats[parent]!.workspace,
      parent,
      spawnAfterTurn: 1 + int(Math.max(1, Math.floor(options.turns / 3))),
      thinks: thinks()
    })
  }

  // Rebuilds arrive as a Poisson process while the main turns run.
  const rebuilds: Array<RebuildPlan> = []
  const horizon = Math.max(0, options.turns - 1) * options.thinkMs
  if (options.rebuildRate > 0 && running.length > 0) {
    let at = 0
    for (let i = 0; i < 100_000; i++) {
      at += -Math.log(1 - random()) * 1000 / options.rebuildRate
      if (at >= horizon) break
      const draw = random()
      const mode: RetireMode = draw < 0.45 ? "die" : draw < 0.8 ? "hang" : "reuse_port"
      rebuilds.push({ atMs: Math.round(at), workspace: running[int(running.length)]!, mode })
    }
  }
  return {
    settings: {
      seed: options.seed,
      chats: options.chats,
      childChats: childCount,
      workspaces: options.workspaces,
      stoppedWorkspaces: stoppedCount,
      turns: options.turns,
      concurrency: options.concurrency,
      rebuildRate: options.rebuildRate,
      thinkMs: options.thinkMs,
      validationDelayMs: options.validationDelayMs,
      delayMode: options.delayMode ?? "fixed",
      notices: options.notices ?? true,
      first: options.first ?? "lazydial",
      order: orderFrom(options.first ?? "lazydial"),
      dialLatencyMs: options.dialLatencyMs,
      dialTimeoutMs: options.dialTimeoutMs,
      database: options.databaseUrl === undefined ? "pglite (embedded, in memory)" : "postgresql"
    },
    stopped,
    chats,
    rebuilds
  }
}

const latencyBuckets = [0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, Infinity]
const sliceMs = 500

/** How long after a rebuild of its workspace a turn counts in `afterRebuild`: about twice the default validation delay. */
const afterRebuildWindowMs = 1000

/** A turn as the run saw it: the strip's fields, and what `afterRebuild` and the steady-state figures need. */
interface TurnRecord extends StripTurn {
  readonly workspace: number
  readonly connected: boolean
  /** A steady-state turn (see `StrategyReport.steadyTurns`). */
  readonly steady: boolean
  /** Its connection was dialed for it: no earlier turn had used that connection. */
  readonly dialed: boolean
}

/** Every `every`-th item, with `every` the smallest that keeps at most `stripLimit`. */
const thin = <A>(items: ReadonlyArray<A>): { readonly every: number; readonly kept: ReadonlyArray<A> } => {
  const every = Math.max(1, Math.ceil(items.length / stripLimit))
  return { every, kept: every === 1 ? items : items.filter((_, i) => i % every === 0) }
}

/** @internal */
export const makeStrip = (turns: ReadonlyArray<TurnRecord>, rebuilds: ReadonlyArray<StripRebuild>): Strip => {
  const keptTurns = thin(turns)
  const keptRebuilds = thin(rebuilds)
  return {
    turnsEvery: keptTurns.every,
    turns: keptTurns.kept.map(({ atMs, connectMs, outcome, stopped }) => ({ atMs, connectMs, outcome, stopped })),
    rebuildsEvery: keptRebuilds.every,
    rebuilds: keptRebuilds.kept
  }
}

const turnTimes = (turns: ReadonlyArray<TurnRecord>): TurnTimes => {
  const sorted = turns.map((turn) => turn.connectMs).sort((a, b) => a - b)
  return { turns: sorted.length, p50: round(quantile(sorted, 0.5)), p99: round(quantile(sorted, 0.99)) }
}

const steadyConnect = (turns: ReadonlyArray<TurnRecord>): TurnTimes =>
  turnTimes(turns.filter((turn) => turn.steady && turn.connected))

const connectOrFail = (turns: ReadonlyArray<TurnRecord>): ConnectOrFail => {
  const running = turns.filter((turn) => !turn.stopped)
  return { ...turnTimes(running), failed: running.filter((turn) => !turn.connected).length }
}

const afterRebuild = (turns: ReadonlyArray<TurnRecord>, rebuilds: ReadonlyArray<StripRebuild>): AfterRebuild => ({
  windowMs: afterRebuildWindowMs,
  ...turnTimes(
    turns.filter((turn) =>
      turn.connected && rebuilds.some((rebuild) =>
        rebuild.workspace === turn.workspace && turn.atMs >= rebuild.atMs &&
        turn.atMs < rebuild.atMs + afterRebuildWindowMs
      )
    )
  )
})

// Steps outside a turn (spawning a child, the final check) wait out a
// database outage instead of ending the run: retried for up to a minute.
const untilTheDatabaseAnswers = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
  effect.pipe(
    Effect.retry({
      while: (error) => error._tag === "DatabaseUnavailable",
      schedule: Schedule.spaced("200 millis"),
      times: 300
    }),
    Effect.orDie
  )

const emptyOutcomes = (): Record<OutcomeName, number> =>
  // safe: one entry per name of `outcomeNames`
  Object.fromEntries(outcomeNames.map((name) => [name, 0])) as Record<OutcomeName, number>

const faultKinds = {
  dialFailure: "dial_failure",
  hang: "hang",
  ignoreInterruption: "ignore_interruption",
  dialDefect: "dial_defect",
  latencySpike: "latency_spike",
  lookupFailure: "lookup_failure",
  noAgent: "no_agent",
  lookupDefect: "lookup_defect"
} as const satisfies Record<string, typeof Faults.faultKinds[number]>

type FaultCounts = { -readonly [K in keyof typeof faultKinds]: number }

// core's counter of injected faults is process-wide, and an attempt that
// ignored interruption can still inject a fault after its run has ended (a
// latency spike, then a failure). Every run therefore adds its own attribute
// to the metrics it updates (Metric.CurrentMetricAttributes, which every
// update merges in), and reads only its own counters.
const runLabel = "workload_run"

const readFaults = (runId: string): Effect.Effect<FaultCounts> =>
  Effect.gen(function*() {
    const counts = {} as FaultCounts // safe: every key is set by the loop below
    // safe: `faultKinds` is a literal object with exactly these keys
    for (const key of Object.keys(faultKinds) as Array<keyof typeof faultKinds>) {
      const state = yield* Metric.value(
        Metric.withAttributes(Faults.injectedTotal[faultKinds[key]], { [runLabel]: runId })
      )
      counts[key] = state.count
    }
    return counts
  })

/** core's shared-connection counters, this run's only (see `runLabel`). */
const readShared = (runId: string) =>
  Effect.gen(function*() {
    const count = (counter: Metric.Counter<number>) =>
      Effect.map(Metric.value(Metric.withAttributes(counter, { [runLabel]: runId })), (state) => state.count)
    return {
      dials: yield* count(SharedConnections.metrics.dials),
      borrows: yield* count(SharedConnections.metrics.borrows),
      drops: yield* count(SharedConnections.metrics.drops)
    }
  })

const isInjectedDefect = (cause: Cause.Cause<unknown>): boolean =>
  Cause.hasDies(cause) &&
  cause.reasons.filter(Cause.isDieReason).every((reason) => reason.defect instanceof Faults.InjectedDefect)

// safe: a fresh UUID is a valid WorkspaceId
const newWorkspaceId = () => randomUUID() as WorkspaceId

export const runStrategy = (
  plan: Plan,
  strategy: Strategy,
  progress: Progress
): Effect.Effect<StrategyReport, never, Service.DatabaseServices> =>
  Effect.gen(function*() {
    const settings = plan.settings
    // core's fault injection, as the service reads it (off unless LAZYDIAL_FAULTS=on): a staging run switches it on
    const faults = yield* Settings.read(Settings.faults).pipe(Effect.orDie)
    const counters = Service.makeCounters()
    const outcomes = emptyOutcomes()
    const latencies: Array<number> = []
    // every connect of a stopped workspace's chat (each fails, with no_agent): how fast the failure comes
    const stoppedLatencies: Array<number> = []
    const timeline: Array<{ turns: number; lookups: number; rebuilds: number }> = []
    const turnRecords: Array<TurnRecord> = []
    const rebuildRecords: Array<StripRebuild> = []
    const tally = {
      turns: 0,
      turnsOk: 0,
      steadyTurns: 0,
      steadyLookups: 0,
      steadyDials: 0,
      repaired: 0,
      wrongAgent: 0,
      boundToCurrent: 0,
      chatsOnRunning: 0
    }
    const rebuildsDone = { total: 0 }
    // every connection a turn has used: a turn whose connection is not among them had it dialed for itself
    const usedConnections = new Set<string>()
    const runId = randomUUID()
    let defects = 0
    let slowestConnectMs = 0
    let startedAt = 0
    const slice = () => {
      const index = Math.floor((performance.now() - startedAt) / sliceMs)
      while (timeline.length <= index) timeline.push({ turns: 0, lookups: 0, rebuilds: 0 })
      return timeline[index]!
    }
    progress.strategy = strategy
    progress.turns = 0
    progress.lookups = 0
    progress.rebuilds = 0
    progress.totalTurns = plan.chats.length * settings.turns

    const program = Effect.gen(function*() {
      const control = yield* ControlPlane.ControlPlane
      const chats = yield* Chats
      const timeout = Duration.millis(settings.dialTimeoutMs)

      if (settings.notices) {
        // The run starts once the instance listens: `RebuildNotices.layerSql`
        // listens in a fiber of its Layer and does not wait for LISTEN, so
        // the workspaces' first notices could come before it and every
        // workspace's first lazy bind would look up. On Effect 4 they did
        // (8 lookups in the first 500 ms of every default run, one per
        // workspace; 3 with LISTEN in place first). Bounded: a database
        // that never listens shows in the report as lookups, not as a hang.
        const notices = yield* RebuildNotices.RebuildNotices
        yield* notices.status.pipe(
          Effect.repeat({ until: (status) => status.listening, schedule: Schedule.spaced("5 millis") }),
          Effect.timeoutOption("5 seconds")
        )
      }
      const workspaces = Array.from({ length: settings.workspaces }, newWorkspaceId)
      const epochs = workspaces.map(() => 0)
      yield* Effect.forEach(workspaces, (workspaceId, i) =>
        plan.stopped.has(i)
          ? control.setCurrent(workspaceId, Option.none())
          : ControlPlane.startWorkspace(workspaceId), { discard: true })

      const rebuild = (event: RebuildPlan) =>
        Effect.gen(function*() {
          // The epoch moves before the old agent is retired and again once the
          // new one is recorded: a turn that overlaps any part of a rebuild is
          // not a steady-state turn.
          epochs[event.workspace]!++
          const atMs = performance.now() - startedAt
          // a stopped workspace is left as it is (no agent to replace): the rebuild is not made
          const next = yield* ControlPlane.rebuild(workspaces[event.workspace]!, event.mode).pipe(
            Effect.map(Option.some),
            Effect.catchTag("WorkspaceStopped", () => Effect.succeedNone)
          )
          epochs[event.workspace]!++
          if (Option.isNone(next)) return
          rebuildRecords.push({ atMs: round(atMs, 1), workspace: event.workspace, mode: event.mode })
          rebuildsDone.total++
          progress.rebuilds++
          slice().rebuilds++
        })

      const rebuilder = Effect.forEach(plan.rebuilds, (event) =>
        Effect.flatMap(
          Effect.sync(() => Math.max(0, event.atMs - (performance.now() - startedAt))),
          (wait) => Effect.andThen(Effect.sleep(Duration.millis(wait)), rebuild(event))
        ), { discard: true })

      const semaphore = yield* Semaphore.make(settings.concurrency)
      const chatIds = new Map<number, ChatId>()
      const lastEpoch = new Map<number, number>()

      const turn = (chat: ChatPlan) =>
        Effect.gen(function*() {
          const chatId = chatIds.get(chat.index)!
          const workspaceId = workspaces[chat.workspace]!
          const probe = Probe.makeTurnProbe()
          const epoch = epochs[chat.workspace]!
          let turnOutcome: OutcomeName = "failed"
          let turnRepaired = false
          // the connect's start, length and success, for the strip (a turn that never held a permit keeps 0s)
          let began = 0
          let took = 0
          let connected = false
          let dialed = false
          const result = yield* Effect.scoped(Effect.gen(function*() {
            // measured once the turn holds its concurrency permit: queueing is not connecting
            began = performance.now()
            // the strategy is the Chats layer's: `layer` or `layerLatest`
            const connect: Effect.Effect<Connected, ConnectError, Scope.Scope> = chats.connect(chatId)
            const { connection, outcome, repaired } = yield* connect.pipe(
              Effect.ensuring(Effect.sync(() => {
                took = performance.now() - began
                slowestConnectMs = Math.max(slowestConnectMs, took)
                if (plan.stopped.has(chat.workspace)) stoppedLatencies.push(took)
              }))
            )
            connected = true
            dialed = !usedConnections.has(connection.connectionId)
            usedConnections.add(connection.connectionId)
            turnOutcome = outcome
            turnRepaired = repaired
            latencies.push(performance.now() - began)
            // An agent that hangs after the handshake never answers: bound the wait.
            const reply = yield* connection.exchange(`turn ${chatId}`).pipe(
              Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.fail(new NoAnswer()) })
            )
            const [word, agentId, replyWorkspace] = reply.split(" ")
            return word === "ok" && agentId === connection.agentId && replyWorkspace === workspaceId
          })).pipe(
            (effect) => Probe.withTurnProbe(probe, effect),
            semaphore.withPermits(1),
            Effect.result,
            // a defect injected by core's Faults layer ends this turn only; any other defect is a bug
            Effect.catchCause((cause) => isInjectedDefect(cause) ? Effect.succeed(undefined) : Effect.failCause(cause))
          )
          if (result === undefined) defects++

          // Steady state: the chat's previous turn succeeded with no rebuild
          // of its workspace while it ran, and none happened since its start,
          // nor while this turn ran. (A turn that overlaps a rebuild can
          // succeed on the old agent and leave it bound.)
          const quiet = epochs[chat.workspace] === epoch
          const steady = !plan.stopped.has(chat.workspace) && lastEpoch.get(chat.index) === epoch && quiet
          if (result !== undefined && result._tag === "Success" && result.success && quiet) {
            lastEpoch.set(chat.index, epoch)
          } else lastEpoch.delete(chat.index)
          tally.turns++
          progress.turns++
          progress.lookups += probe.lookups
          const bucket = slice()
          bucket.turns++
          bucket.lookups += probe.lookups
          if (steady) {
            tally.steadyTurns++
            tally.steadyLookups += probe.lookups
            if (dialed) tally.steadyDials++
          }
          let ended: OutcomeName = "failed"
          if (result !== undefined && result._tag === "Success") {
            if (!result.success) tally.wrongAgent++
            else tally.turnsOk++
            ended = turnOutcome
            if (turnRepaired) tally.repaired++
          } else if (result !== undefined) {
            const error = result.failure
            const reason = error._tag === "NoAnswer" ? "failed" : failureReason(error)
            // a database fault is counted, and the workload goes on
            if (reason === "no_agent" || reason === "timeout" || reason === "database_unavailable") ended = reason
          }
          outcomes[ended]++
          turnRecords.push({
            atMs: round(Math.max(0, began - startedAt), 1),
            connectMs: round(took, 2),
            outcome: ended,
            stopped: plan.stopped.has(chat.workspace),
            workspace: chat.workspace,
            connected,
            steady,
            dialed
          })
        })

      const runChat = (chat: ChatPlan, turns: number): Effect.Effect<void> =>
        Effect.gen(function*() {
          const children = plan.chats.filter((other) => other.parent === chat.index)
          const forked: Array<Fiber.Fiber<void>> = []
          for (let t = 0; t < turns; t++) {
            yield* Effect.sleep(Duration.millis(chat.thinks[t] ?? 0))
            yield* turn(chat)
            for (const child of children) {
              if (child.spawnAfterTurn !== t + 1) continue
              const created = yield* untilTheDatabaseAnswers(chats.createChild(chatIds.get(chat.index)!))
              chatIds.set(child.index, created.chatId)
              forked.push(yield* Effect.forkChild(runChat(child, turns)))
            }
          }
          yield* Fiber.joinAll(forked)
        })

      for (const chat of plan.chats) {
        if (chat.parent !== undefined) continue
        const created = yield* chats.create(Option.some(workspaces[chat.workspace]!))
        chatIds.set(chat.index, created.chatId)
      }

      startedAt = performance.now()
      const rebuilding = yield* Effect.forkChild(rebuilder)
      const roots = plan.chats.filter((chat) => chat.parent === undefined)
      yield* Effect.forEach(roots, (chat) => runChat(chat, settings.turns - 1), {
        concurrency: "unbounded",
        discard: true
      })
      yield* Fiber.interrupt(rebuilding)
      // One last turn per chat once the fleet is quiet: every chat of a rebuilt
      // workspace must then be bound to its current agent.
      yield* Effect.forEach(
        plan.chats,
        (chat) => Effect.andThen(Effect.sleep(Duration.millis(chat.thinks[0] ?? 0)), turn(chat)),
        {
          concurrency: "unbounded",
          discard: true
        }
      )
      const durationMs = performance.now() - startedAt

      for (const chat of plan.chats) {
        if (plan.stopped.has(chat.workspace)) continue
        tally.chatsOnRunning++
        const view = yield* untilTheDatabaseAnswers(chats.get(chatIds.get(chat.index)!))
        const current = yield* untilTheDatabaseAnswers(control.peek(workspaces[chat.workspace]!))
        if (
          Option.isSome(current) && Option.isSome(view.agentId) && view.agentId.value === current.value.agentId
        ) tally.boundToCurrent++
      }
      return durationMs
    })

    const progressTicker = Effect.forever(Effect.andThen(
      Effect.sleep("100 millis"),
      Effect.sync(() => {
        progress.socketsOpen = counters.dialer.opened - counters.dialer.closed
      })
    ))

    const durationMs = yield* program.pipe(
      Effect.raceFirst(progressTicker),
      Effect.provide(Service.layer(
        {
          validationDelay: Duration.millis(settings.validationDelayMs),
          delayMode: settings.delayMode,
          dialTimeout: Duration.millis(settings.dialTimeoutMs),
          notices: settings.notices,
          sharedConnections: { enabled: wiring[strategy].sharedConnections },
          dialLatency: Duration.millis(settings.dialLatencyMs),
          faults
        },
        counters,
        wiring[strategy].chats
      )),
      Effect.orDie,
      Effect.updateService(Metric.CurrentMetricAttributes, (attributes) => ({ ...attributes, [runLabel]: runId }))
    )

    // The instance is shut down. Sockets close asynchronously: wait (bounded)
    // for their `close` events before counting what is still open.
    for (let i = 0; i < 100; i++) {
      const dialer = SocketDialer.stats(counters.dialer)
      const fleet = fleetSnapshot(counters.fleet)
      if (dialer.stillOpen === 0 && fleet.acceptedOpen === 0) break
      yield* Effect.sleep("20 millis")
    }
    progress.socketsOpen = counters.dialer.opened - counters.dialer.closed

    const dialer = SocketDialer.stats(counters.dialer)
    const fleet = fleetSnapshot(counters.fleet)
    const faultsInjected = yield* readFaults(runId)
    const shared = wiring[strategy].sharedConnections ? yield* readShared(runId) : null
    const sorted = [...latencies].sort((a, b) => a - b)
    const stoppedSorted = [...stoppedLatencies].sort((a, b) => a - b)
    const counts = latencyBuckets.map(() => 0)
    for (const latency of latencies) counts[latencyBuckets.findIndex((bound) => latency < bound)]!++
    const lookups = counters.probe.lookups
    return {
      strategy,
      durationMs: Math.round(durationMs),
      turns: tally.turns,
      turnsOk: tally.turnsOk,
      dials: dialer.dials,
      dialsPerTurn: round(tally.turns === 0 ? 0 : dialer.dials / tally.turns),
      steadyDials: tally.steadyDials,
      steadyDialsPerTurn: round(tally.steadyTurns === 0 ? 0 : tally.steadyDials / tally.steadyTurns),
      steadyConnect: steadyConnect(turnRecords),
      shared,
      lookups,
      lookupsPerTurn: round(tally.turns === 0 ? 0 : lookups / tally.turns),
      steadyTurns: tally.steadyTurns,
      steadyLookups: tally.steadyLookups,
      steadyLookupsPerTurn: round(tally.steadyTurns === 0 ? 0 : tally.steadyLookups / tally.steadyTurns),
      outcomes,
      latency: {
        p50: round(quantile(sorted, 0.5)),
        p99: round(quantile(sorted, 0.99)),
        max: round(sorted.length === 0 ? 0 : sorted[sorted.length - 1]!),
        bucketsMs: latencyBuckets.map((bound) => (bound === Infinity ? -1 : bound)),
        counts
      },
      stoppedTurns: stoppedLatencies.length,
      stoppedConnectP50Ms: round(quantile(stoppedSorted, 0.5)),
      stoppedConnectP99Ms: round(quantile(stoppedSorted, 0.99)),
      afterRebuild: afterRebuild(turnRecords, rebuildRecords),
      connectOrFail: connectOrFail(turnRecords),
      bindingsRepaired: tally.repaired,
      boundToCurrent: wiring[strategy].chats === "lazydial" ? tally.boundToCurrent : null,
      chatsOnRunningWorkspaces: tally.chatsOnRunning,
      dialErrors: dialer.errors,
      faultsInjected,
      defects,
      slowestConnectMs: round(slowestConnectMs),
      connectionsOpened: dialer.opened,
      connectionsClosed: dialer.closed,
      socketsStillOpen: dialer.stillOpen,
      agentSocketsStillOpen: fleet.acceptedOpen,
      wrongAgentTurns: tally.wrongAgent,
      rebuilds: {
        total: rebuildsDone.total,
        died: fleet.died,
        hung: fleet.hung,
        portsReused: fleet.portsReused,
        diedMidHandshake: fleet.diedMidHandshake
      },
      timeline: timeline.map((s, i) => ({ atMs: i * sliceMs, ...s })),
      strip: makeStrip(turnRecords, rebuildRecords)
    }
  })

export const run = (options: Options, progress: Progress = makeProgress()): Effect.Effect<Report> =>
  Effect.gen(function*() {
    const plan = makePlan(options)
    // A short warm-up of both paths, not reported: the first turns of a
    // process pay for JIT compilation and the database's first connections,
    // and whichever strategy ran first would carry that cost.
    const warmup = makePlan({ ...options, chats: 8, turns: 3, thinkMs: 10, rebuildRate: 0 })
    for (const strategy of strategies) yield* runStrategy(warmup, strategy, makeProgress())
    const reports = new Map<Strategy, StrategyReport>()
    for (const strategy of plan.settings.order) reports.set(strategy, yield* runStrategy(plan, strategy, progress))
    // the report lists the strategies in one order, whichever ran first
    return new Report({ settings: plan.settings, strategies: strategies.map((strategy) => reports.get(strategy)!) })
  }).pipe(
    // One database for every strategy: their workspaces and chats have
    // their own ids, and the embedded database takes seconds to start.
    Effect.provide(Service.layerDatabase(options.databaseUrl))
  )

/** @internal */
export const makeProgress = (): Progress => ({
  strategy: "lazydial",
  turns: 0,
  totalTurns: 0,
  lookups: 0,
  rebuilds: 0,
  socketsOpen: 0
})
