/**
 * `cluster`: the comparison at scale, as a deployment runs. For each strategy
 * (lazydial, then latest) it starts a `fleet` and `replicas` `serve` child
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
import type * as Chats from "@lazydial/service/Chats"
import type * as Effect from "effect/Effect"
import type * as SqlClient from "effect/sql/SqlClient"
import * as internal from "./internal/cluster.js"

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
  /** The strategy that runs first (the other meets warmer processes and a warmer database): alternate it. */
  readonly first: Chats.Strategy
}

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
  readonly strategy: Chats.Strategy
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
  readonly first: Chats.Strategy
  /** How statements were counted, or `not measured: ` and the database's own reason. */
  readonly statements: string
  readonly strategies: ReadonlyArray<StrategyFigures>
}

/**
 * Runs both strategies, one after the other, each on fresh child processes.
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
