/**
 * The workload: N chats over M workspaces run T turns each, at most C at a
 * time, while workspaces are rebuilt. Everything random comes from one seed,
 * so both strategies run the same plan.
 *
 * Strategies (`Report.strategies`):
 * - `lazydial`: the chat's persisted binding, dialed through `Chats.connect`
 *   (the binding package's turn path, which uses core's lazy validation),
 *   over connections shared across turns (core's `SharedConnections`).
 * - `lazydial_no_reuse`: the same, with a dial per turn.
 * - `latest`: the behaviour before persisted bindings: look up the
 *   workspace's current agent on every turn, then dial it.
 *
 * @since 0.1.0
 */
import type { LazyDial } from "@lazydial/core"
import type { RetireMode } from "@lazydial/service/Fleet"
import type * as Service from "@lazydial/service/Service"
import type * as Effect from "effect/Effect"
import * as internal from "./internal/workload.js"
import type { Report, Settings, Strategy as ReportStrategy, StrategyReport } from "./Report.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Strategy = ReportStrategy

/**
 * @since 0.1.0
 * @category models
 */
export interface ChatPlan {
  readonly index: number
  readonly workspace: number
  /** A child chat is spawned by its parent after the parent's turn `spawnAfterTurn`. */
  readonly parent: number | undefined
  readonly spawnAfterTurn: number
  /** Think time before each turn, in milliseconds. */
  readonly thinks: ReadonlyArray<number>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RebuildPlan {
  readonly atMs: number
  readonly workspace: number
  readonly mode: RetireMode
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Plan {
  readonly settings: Settings
  readonly stopped: ReadonlySet<number>
  readonly chats: ReadonlyArray<ChatPlan>
  readonly rebuilds: ReadonlyArray<RebuildPlan>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly seed: number
  readonly chats: number
  readonly workspaces: number
  readonly turns: number
  readonly concurrency: number
  /** Rebuilds per second, over the whole fleet. */
  readonly rebuildRate: number
  readonly thinkMs: number
  readonly validationDelayMs: number
  /** `"adaptive"`: core's learned delay, starting at `validationDelayMs` (see `Service.Options`). Default `"fixed"`. */
  readonly delayMode?: typeof LazyDial.delayModes[number] | undefined
  /** Rebuild notices (LISTEN/NOTIFY); default on. */
  readonly notices?: boolean | undefined
  /**
   * Which strategy runs first; default `"lazydial"`; the others follow in
   * report order, rotated (`Report.orderFrom`). The first one meets a process
   * whose code is less warmed up than the later ones do (its p99 was higher
   * in either order), so fair comparisons alternate it.
   */
  readonly first?: Strategy | undefined
  /**
   * How long every agent delays its handshake's answer, in milliseconds: what
   * a dial costs behind a tunnel. A dial on localhost takes about 1 ms, which
   * hides the cost that shared connections save.
   */
  readonly dialLatencyMs: number
  readonly dialTimeoutMs: number
  /** `postgres://…`; unset: the embedded PGlite database, in memory. Never printed. */
  readonly databaseUrl?: string | undefined
}

/**
 * @since 0.1.0
 * @category constants
 */
export const defaults: Options = {
  seed: 1,
  chats: 40,
  workspaces: 8,
  turns: 10,
  concurrency: 16,
  rebuildRate: 2,
  thinkMs: 350,
  validationDelayMs: 500,
  // a handshake across a tunnel to a workspace in another region: see docs/performance.md
  dialLatencyMs: 50,
  dialTimeoutMs: 2000
}

/**
 * What a running workload shows on its progress line.
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  strategy: Strategy
  turns: number
  totalTurns: number
  lookups: number
  rebuilds: number
  socketsOpen: number
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeProgress: () => Progress = internal.makeProgress

/**
 * The plan, from the seed alone.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePlan: (options: Options) => Plan = internal.makePlan

/**
 * Runs the plan with one strategy, on a fresh instance of the service, and
 * reports once every socket of that instance is closed.
 *
 * @since 0.1.0
 * @category running
 */
export const runStrategy: (
  plan: Plan,
  strategy: Strategy,
  progress: Progress
) => Effect.Effect<StrategyReport, never, Service.DatabaseServices> = internal.runStrategy

/**
 * Runs every strategy on the same plan, one after the other, in the order
 * `Report.orderFrom(first)`.
 *
 * @since 0.1.0
 * @category running
 */
export const run: (options: Options, progress?: Progress) => Effect.Effect<Report> = internal.run
