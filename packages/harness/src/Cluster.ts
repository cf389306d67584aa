/**
 * `cluster`: the comparison at scale, as a deployment runs. For each strategy
 * of the report (`Report.strategies`: lazydial over shared connections,
 * lazydial with a dial per turn, latest) it starts a `fleet` and `replicas` `serve` child
 * processes on one PostgreSQL, creates the chats and binds each with a first
 * turn on each replica (the warm-up, not measured), then drives the measured turns over HTTP:
 * every (chat, turn) pair in a seeded order, at most `concurrency` at a time,
 * turn t of chat c on replica (c + t) mod K, so one chat's turns go to every
 * replica, some of them at the same moment. This first phase has no
 * rebuilds, so every turn of it is a steady-state turn. With `rebuilds`
 * above 0, a second phase of as many turns follows on the same processes
 * while the cluster rebuilds workspaces through the fleet's API: that many
 * rebuilds, each sent as a seeded turn starts (a seeded workspace and mode),
 * the same for both strategies. The phase where rebuild notices, which
 * travel between replicas through PostgreSQL, matter.
 *
 * The fleet's agents hold back each handshake answer by `dialLatencyMs` (a
 * tunnel's cost, `fleet --dial-latency-ms`). Dials are counted by the
 * replicas' own counters (`/metrics`: core's shared-connection dials, borrows
 * and drops). Turns that met a retired agent are counted from the turns'
 * answers (see `PhaseFigures.retiredAgentTurns`).
 *
 * Lookups are counted twice: by every replica's own counters (`/metrics`,
 * `Probe.lookupMetrics`) and at the database (the lookup statements of
 * `pg_stat_statements`, less the fleet's own reads before its rebuilds).
 *
 * SQL statements per turn are measured at the database with
 * `pg_stat_statements` when the role can read it, as the difference of two
 * snapshots around each phase (no reset: `pg_stat_statements_reset` is the
 * superuser's unless granted, and an ordinary role measures all the same);
 * when it cannot, the report says "not measured: " with the database's own
 * error, and the run goes on. The strategies run in the order `first` says. Every child is stopped (SIGTERM, then
 * SIGKILL after 5 s) by the finalizer of the Scope that started it: on
 * success, on failure and on Ctrl-C.
 *
 * @since 0.1.0
 */
import type { LazyDial } from "@lazydial/core"
import type * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import * as internal from "./internal/cluster.js"
import type { Strategy } from "./Report.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ClusterOptions {
  readonly databaseUrl: string
  readonly replicas: number
  readonly workspaces: number
  readonly chats: number
  readonly turns: number
  readonly concurrency: number
  readonly seed: number
  readonly validationDelayMs: number
  /** Passed to every replica (`serve --delay-mode`). */
  readonly delayMode: typeof LazyDial.delayModes[number]
  /** Passed to every replica (`serve --notices on|off`). */
  readonly notices: boolean
  /** Rebuilds during the second measured phase; 0: no such phase. */
  readonly rebuilds: number
  /**
   * The strategy that runs first, the others following in report order,
   * rotated (the later ones meet warmer processes and a warmer database):
   * alternate it.
   */
  readonly first: Strategy
  /** Passed to the fleet (`fleet --dial-latency-ms`): how long each agent holds back its handshake answer. */
  readonly dialLatencyMs: number
}

/**
 * How long after the fleet answered a rebuild a turn of that workspace must
 * start to count in `PhaseFigures.retiredAgentTurns`: by then every replica
 * has heard the rebuild's notice and its prompted read has answered (a few
 * milliseconds on one machine; the margin is for a loaded one).
 *
 * @since 0.3.0
 * @category constants
 */
export const retiredAfterMs: number = internal.retiredAfterMs

/**
 * @since 0.1.0
 * @category models
 */
export interface ReplicaFigures {
  readonly replica: number
  readonly turns: number
  readonly ok: number
  readonly databaseUnavailable: number
  readonly failed: number
  readonly turnsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface PhaseFigures {
  /** `steady`: no rebuilds while measured; `rebuilds`: the fleet rebuilt workspaces meanwhile. */
  readonly phase: "steady" | "rebuilds"
  readonly turns: number
  readonly ok: number
  readonly databaseUnavailable: number
  readonly failed: number
  readonly seconds: number
  readonly turnsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** Rebuilds the fleet made while this phase ran (and the ones it refused). */
  readonly rebuilds: number
  readonly rebuildsFailed: number
  /** Successful turns by the outcome the replica answered (`fast`, `switched_by_notice`, ...). */
  readonly outcomes: Readonly<Record<string, number>>
  /** Failed turns by HTTP status and reason (`503 timeout`, ...), or `no answer`. */
  readonly failures: Readonly<Record<string, number>>
  readonly switchedByNotice: number
  /**
   * Dials per turn that opened a shared connection, by the replicas' own
   * counters (core's `SharedConnections.metrics`, summed over the replicas);
   * null when the strategy does not share connections (the replicas count no
   * other dial: each of its turns dials at least once).
   */
  readonly dialsPerTurn: number | null
  /** Borrows of a shared connection per turn (dials included), and shared connections dropped; null as above. */
  readonly borrowsPerTurn: number | null
  readonly drops: number | null
  /**
   * Turns that met a retired agent after its workspace's notice-prompted
   * read: turns answered by an agent whose rebuild the fleet had answered
   * more than `retiredAfterMs` before the turn started; and failed turns
   * (not `database_unavailable`) of a chat whose workspace's last rebuild
   * was answered more than `retiredAfterMs` before the turn started, with no
   * rebuild of that workspace in flight then nor sent while the turn ran. A retired agent answers no turn
   * (it died or hangs), so such a turn fails at its exchange, on a connection
   * it borrowed; a dial of it would have switched by notice instead.
   */
  readonly retiredAgentTurns: number
  /**
   * Connections the retired agents still held open `retiredAfterMs` after the
   * phase's last turn and rebuild (the fleet's
   * `lazydial_fleet_retired_sockets_open`): a replica that kept a
   * connection to an agent its workspace no longer runs. A hung agent keeps
   * its sockets until the client closes them.
   */
  readonly retiredSocketsOpen: number
  /** Lookups per turn by the replicas' own counters (`Probe.lookupMetrics.directoryLookups`, summed). */
  readonly replicaLookupsPerTurn: number
  /** The SQL queries those lookups took, per turn (concurrent lookups share one). */
  readonly replicaQueriesPerTurn: number
  /** null: pg_stat_statements is not available. */
  readonly statementsPerTurn: number | null
  /** Lookup statements (`Probe.isLookupStatement`) per turn at the database, less the fleet's. */
  readonly lookupsPerTurn: number | null
  readonly byStatement: ReadonlyArray<{ readonly statement: string; readonly perTurn: number }>
  readonly replicas: ReadonlyArray<ReplicaFigures>
}

/**
 * A strategy's steady phase, and its phase with rebuilds when one ran.
 *
 * @since 0.1.0
 * @category models
 */
export interface StrategyFigures extends PhaseFigures {
  readonly strategy: Strategy
  /** 1 when this strategy ran first, 2 when second (`ClusterOptions.first`). */
  readonly ranAs: number
  readonly withRebuilds: PhaseFigures | null
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ClusterReport {
  readonly replicas: number
  readonly chats: number
  readonly turnsPerChat: number
  readonly concurrency: number
  readonly workspaces: number
  readonly seed: number
  readonly validationDelayMs: number
  readonly delayMode: typeof LazyDial.delayModes[number]
  readonly notices: boolean
  readonly rebuilds: number
  /** The strategy that ran first. */
  readonly first: Strategy
  readonly dialLatencyMs: number
  readonly retiredAfterMs: number
  /** How statements were counted, or `not measured: ` and the database's own reason. */
  readonly statements: string
  readonly strategies: ReadonlyArray<StrategyFigures>
}

/**
 * Runs every strategy, one after the other, each on fresh child processes.
 *
 * @since 0.1.0
 * @category running
 */
export const run: (options: ClusterOptions) => Effect.Effect<ClusterReport, Error, SqlClient.SqlClient> = internal.run

/**
 * What a run shows, in two or three sentences with the figures: the first
 * lines of `render`.
 *
 * @since 0.2.0
 * @category rendering
 */
export const conclusions: (report: ClusterReport) => ReadonlyArray<string> = internal.conclusions

/**
 * The report as text.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render: (report: ClusterReport) => string = internal.render
