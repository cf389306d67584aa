/**
 * The report of a run, as a Schema: `--json` prints its encoding, tests decode
 * it, and the text and HTML renderings read the same value.
 *
 * @since 0.1.0
 */
import { LazyDial } from "@lazydial/core"
import type * as Chats from "@lazydial/service/Chats"
import { connectOutcomes } from "@lazydial/service/Chats"
import { retireModes } from "@lazydial/service/Fleet"
import * as Schema from "effect/Schema"

/**
 * The strategies a report compares, in report order:
 *
 * - `lazydial`: the service's default, the persisted binding dialed through
 *   core's lazy validation, over shared connections (one live connection per
 *   agent, borrowed by every turn: a steady-state turn makes no dial);
 * - `lazydial_no_reuse`: the same turn path with a dial per turn (the
 *   service with `sharedConnections` off), to show what the reuse is worth;
 * - `latest`: the behaviour before persisted bindings, a lookup and a dial
 *   per turn (the baseline).
 *
 * @since 0.3.0
 * @category models
 */
export const strategies = ["lazydial", "lazydial_no_reuse", "latest"] as const

/**
 * @since 0.3.0
 * @category models
 */
export type Strategy = typeof strategies[number]

/**
 * How the service is wired for each strategy: the `Chats` layer (`Service`'s
 * strategy) and whether connections are shared across turns.
 *
 * @since 0.3.0
 * @category models
 */
export const wiring: Record<Strategy, { readonly chats: Chats.Strategy; readonly sharedConnections: boolean }> = {
  lazydial: { chats: "lazydial", sharedConnections: true },
  lazydial_no_reuse: { chats: "lazydial", sharedConnections: false },
  latest: { chats: "latest", sharedConnections: false }
}

/**
 * The order the strategies run in when `first` runs first: the report order,
 * rotated. Over as many runs as there are strategies, each first in turn,
 * every strategy runs once in every position (`bench:report` does that).
 *
 * @since 0.3.0
 * @category models
 */
export const orderFrom = (first: Strategy): ReadonlyArray<Strategy> => {
  const at = strategies.indexOf(first)
  return [...strategies.slice(at), ...strategies.slice(0, at)]
}

/**
 * How turns ended, in report order: how a turn connected (`Chats`'
 * `connectOutcomes`: core's outcomes of a lazy dial, `lazy_bind` for a turn
 * that bound its chat, `direct` for a successful turn of the "latest"
 * strategy), then the failures: `no_agent`, `timeout`, `database_unavailable`
 * (the database failed during the turn: counted, and the workload goes on),
 * and `failed` (any other).
 *
 * @since 0.1.0
 * @category models
 */
export const outcomeNames = [...connectOutcomes, "no_agent", "timeout", "database_unavailable", "failed"] as const

/**
 * @since 0.1.0
 * @category models
 */
export type OutcomeName = typeof outcomeNames[number]

/**
 * A count per outcome, one field per name of `outcomeNames`.
 *
 * @since 0.1.0
 * @category models
 */
export const Outcomes = Schema.Struct(
  // safe: the entries are exactly the names of `outcomeNames`, each a Number
  Object.fromEntries(outcomeNames.map((name) => [name, Schema.Number])) as {
    readonly [Name in OutcomeName]: typeof Schema.Number
  }
)

/**
 * @since 0.1.0
 * @category models
 */
export type Outcomes = typeof Outcomes.Type

/**
 * @since 0.1.0
 * @category models
 */
export const Latency = Schema.Struct({
  /** Connect latencies of successful turns, in milliseconds. */
  p50: Schema.Number,
  p99: Schema.Number,
  max: Schema.Number,
  /** Counts per bucket; bucket i holds latencies below `bucketsMs[i]` and at or above the previous bound. */
  bucketsMs: Schema.Array(Schema.Number),
  counts: Schema.Array(Schema.Number)
})

/**
 * One slice of the run's timeline.
 *
 * @since 0.1.0
 * @category models
 */
export const Slice = Schema.Struct({
  atMs: Schema.Number,
  turns: Schema.Number,
  lookups: Schema.Number,
  rebuilds: Schema.Number
})

/**
 * One turn of the strip: when it started and how long its connect took,
 * whether it connected or failed.
 *
 * @since 0.1.0
 * @category models
 */
export const StripTurn = Schema.Struct({
  /** When the turn's connect started (it held its concurrency permit), in milliseconds since the run's first turn. */
  atMs: Schema.Number,
  /** From that start to a connection that passed the handshake, or to the connect's failure, in milliseconds. */
  connectMs: Schema.Number,
  outcome: Schema.Literals(outcomeNames),
  /** The chat's workspace is one of the stopped ones. */
  stopped: Schema.Boolean
})

/**
 * @since 0.1.0
 * @category models
 */
export type StripTurn = typeof StripTurn.Type

/**
 * One rebuild of the run, as the strip marks it.
 *
 * @since 0.1.0
 * @category models
 */
export const StripRebuild = Schema.Struct({
  /** When the rebuild began to retire the old agent, in milliseconds since the run's first turn. */
  atMs: Schema.Number,
  /** The workspace's index in the plan (0 to workspaces - 1). */
  workspace: Schema.Number,
  /** What the old agent did: `hang` keeps accepting and never answers, so a turn on it waits the validation delay. */
  mode: Schema.Literals(retireModes)
})

/**
 * @since 0.1.0
 * @category models
 */
export type StripRebuild = typeof StripRebuild.Type

/**
 * The most turns (and, apart, rebuilds) a strip keeps. A larger run keeps
 * every `every`-th one, so that `--json` and the HTML page stay a few hundred
 * kilobytes however many turns were asked for.
 *
 * @since 0.1.0
 * @category constants
 */
export const stripLimit = 5_000

/**
 * Every turn and rebuild of a run over time: the data of the HTML page's
 * strip charts. Bounded by `stripLimit`; the figures of the report are
 * computed from every turn, never from the strip.
 *
 * @since 0.1.0
 * @category models
 */
export const Strip = Schema.Struct({
  /** 1 when every turn is kept; k when every k-th turn (in the order they ended) is. */
  turnsEvery: Schema.Number,
  turns: Schema.Array(StripTurn),
  /** 1 when every rebuild is kept; k when every k-th one is. */
  rebuildsEvery: Schema.Number,
  rebuilds: Schema.Array(StripRebuild)
})

/**
 * @since 0.1.0
 * @category models
 */
export type Strip = typeof Strip.Type

/**
 * A set of turns: how many, and the p50 and p99 of their connect times, in
 * milliseconds. The fields of `AfterRebuild` and `ConnectOrFail`.
 *
 * @since 0.1.0
 * @category models
 */
export const TurnTimes = Schema.Struct({
  turns: Schema.Number,
  p50: Schema.Number,
  p99: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type TurnTimes = typeof TurnTimes.Type

/**
 * The connects of the turns that started within `windowMs` after a rebuild
 * of their own workspace began, and connected: the turns that can meet the
 * retired agent.
 *
 * @since 0.1.0
 * @category models
 */
export const AfterRebuild = Schema.Struct({
  windowMs: Schema.Number,
  ...TurnTimes.fields
})

/**
 * @since 0.1.0
 * @category models
 */
export type AfterRebuild = typeof AfterRebuild.Type

/**
 * Every turn of a running workspace, connected or not: the time until its
 * connection or its failure, in milliseconds. `latency` holds connected
 * turns only, so a strategy whose slowest turns fail (a dial of a hung agent
 * that times out) looks faster there than one whose slowest turns wait and
 * connect; this figure counts both alike.
 *
 * @since 0.1.0
 * @category models
 */
export const ConnectOrFail = Schema.Struct({
  ...TurnTimes.fields,
  /** Of `turns`: ended without a connection (a timeout counts its full dial timeout here). */
  failed: Schema.Number
})

/**
 * @since 0.1.0
 * @category models
 */
export type ConnectOrFail = typeof ConnectOrFail.Type

/**
 * @since 0.1.0
 * @category models
 */
export const StrategyReport = Schema.Struct({
  strategy: Schema.Literals(strategies),
  durationMs: Schema.Number,
  turns: Schema.Number,
  /** Turns that reached their agent and got its answer. */
  turnsOk: Schema.Number,
  /**
   * Dials the service made, counted at its `SocketDialer` (every attempt to
   * open a connection to an agent and pass its handshake, failed ones
   * included), and per turn.
   */
  dials: Schema.Number,
  dialsPerTurn: Schema.Number,
  /**
   * Steady-state turns (see `steadyTurns`) whose connection was dialed for
   * them: a connection no earlier turn had used. A borrowed shared
   * connection is not one; every dial-per-turn connection is.
   */
  steadyDials: Schema.Number,
  steadyDialsPerTurn: Schema.Number,
  /** The connects of the steady-state turns that connected: p50 and p99 in milliseconds. */
  steadyConnect: TurnTimes,
  /**
   * core's `SharedConnections` counters for this run (dials that opened a
   * shared connection, borrows, dials included, and drops before the idle
   * time); null when the strategy does not share connections.
   */
  shared: Schema.NullOr(Schema.Struct({ dials: Schema.Number, borrows: Schema.Number, drops: Schema.Number })),
  lookups: Schema.Number,
  lookupsPerTurn: Schema.Number,
  /**
   * Turns on a running workspace whose chat's previous turn succeeded, with no
   * rebuild of the workspace from the start of that turn to the end of this one.
   */
  steadyTurns: Schema.Number,
  steadyLookups: Schema.Number,
  steadyLookupsPerTurn: Schema.Number,
  outcomes: Outcomes,
  latency: Latency,
  /**
   * Turns of chats on stopped workspaces (each ends `no_agent`), and the p50
   * and p99 of their connect (until it fails), in milliseconds.
   */
  stoppedTurns: Schema.Number,
  stoppedConnectP50Ms: Schema.Number,
  stoppedConnectP99Ms: Schema.Number,
  afterRebuild: AfterRebuild,
  connectOrFail: ConnectOrFail,
  /** Turns whose dial switched to a new agent, and whose binding was written back. */
  bindingsRepaired: Schema.Number,
  /** Chats of running workspaces bound to the current agent at the end; null when the strategy keeps no binding. */
  boundToCurrent: Schema.NullOr(Schema.Number),
  chatsOnRunningWorkspaces: Schema.Number,
  dialErrors: Schema.Struct({
    Unreachable: Schema.Number,
    Refused: Schema.Number,
    WrongAgent: Schema.Number,
    Protocol: Schema.Number,
    Closed: Schema.Number
  }),
  /**
   * Faults injected by core's `Faults` layer during the run (all 0 unless
   * `LAZYDIAL_FAULTS=on`). An injected dial failure is a dial error that no
   * socket saw, so it is counted here and not in `dialErrors`.
   */
  faultsInjected: Schema.Struct({
    dialFailure: Schema.Number,
    hang: Schema.Number,
    ignoreInterruption: Schema.Number,
    dialDefect: Schema.Number,
    latencySpike: Schema.Number,
    lookupFailure: Schema.Number,
    noAgent: Schema.Number,
    lookupDefect: Schema.Number
  }),
  /** Turns that ended with an injected defect (`InjectedDefect`); any other defect stops the run. */
  defects: Schema.Number,
  /** The slowest connect of the run, successful or not, in milliseconds: bounded by the dial timeout. */
  slowestConnectMs: Schema.Number,
  connectionsOpened: Schema.Number,
  connectionsClosed: Schema.Number,
  socketsStillOpen: Schema.Number,
  agentSocketsStillOpen: Schema.Number,
  wrongAgentTurns: Schema.Number,
  rebuilds: Schema.Struct({
    total: Schema.Number,
    died: Schema.Number,
    hung: Schema.Number,
    portsReused: Schema.Number,
    diedMidHandshake: Schema.Number
  }),
  timeline: Schema.Array(Slice),
  strip: Strip
})

/**
 * @since 0.1.0
 * @category models
 */
export type StrategyReport = typeof StrategyReport.Type

/**
 * @since 0.1.0
 * @category models
 */
export const Settings = Schema.Struct({
  seed: Schema.Number,
  chats: Schema.Number,
  childChats: Schema.Number,
  workspaces: Schema.Number,
  stoppedWorkspaces: Schema.Number,
  turns: Schema.Number,
  concurrency: Schema.Number,
  rebuildRate: Schema.Number,
  thinkMs: Schema.Number,
  validationDelayMs: Schema.Number,
  /** `adaptive`: core's learned delay, starting at `validationDelayMs` (its range is `Service`'s). */
  delayMode: Schema.Literals(LazyDial.delayModes),
  /** Rebuild notices (LISTEN/NOTIFY) on: turns switch or fail at once after a rebuild or stop. */
  notices: Schema.Boolean,
  /** The strategy that ran first in the process (see `Workload.Options.first`). */
  first: Schema.Literals(strategies),
  /** The order the strategies ran in: `orderFrom(first)`. */
  order: Schema.Array(Schema.Literals(strategies)),
  /** How long every agent of the fleet delays its handshake's answer: a tunnel's cost, paid by every dial. */
  dialLatencyMs: Schema.Number,
  dialTimeoutMs: Schema.Number,
  database: Schema.String
})

/**
 * @since 0.1.0
 * @category models
 */
export type Settings = typeof Settings.Type

/**
 * @since 0.1.0
 * @category models
 */
export class Report extends Schema.Class<Report>("@lazydial/harness/Report")({
  settings: Settings,
  strategies: Schema.Array(StrategyReport)
}) {}
