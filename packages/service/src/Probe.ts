/**
 * Instruments the Layers the service wires, without changing them: the
 * `AgentLookup` is wrapped to count latest-agent lookups. A turn provides a
 * `TurnProbe` as the `currentTurn` reference; a lookup made anywhere inside
 * the turn, in core or in binding, is counted on it. It also names the
 * counters of `GET /metrics` that count a process's lookups, and the lookup
 * statements of `pg_stat_statements`, for whoever counts them from outside.
 *
 * @since 0.1.0
 */
import { AgentLookup } from "@lazydial/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/**
 * What one turn did.
 *
 * @since 0.1.0
 * @category models
 */
export interface TurnProbe {
  lookups: number
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeTurnProbe = (): TurnProbe => ({ lookups: 0 })

/**
 * Counters for a whole run.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProbeCounters {
  lookups: number
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const makeCounters = (): ProbeCounters => ({ lookups: 0 })

/**
 * The probe of the turn the current fiber runs, if any.
 *
 * @since 0.1.0
 * @category references
 */
export const currentTurn: Context.Reference<TurnProbe | undefined> = Context.Reference<TurnProbe | undefined>(
  "@lazydial/service/Probe/currentTurn",
  { defaultValue: () => undefined }
)

/**
 * Runs `effect` as one turn, and returns what the turn did next to its result.
 *
 * @since 0.1.0
 * @category combinators
 */
export const withTurnProbe = <A, E, R>(
  probe: TurnProbe,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => Effect.provideService(effect, currentTurn, probe)

/**
 * Wraps the `AgentLookup` below it: every call is counted, for the run and
 * for the current turn.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLookup = (
  counters: ProbeCounters
): Layer.Layer<AgentLookup.AgentLookup, never, AgentLookup.AgentLookup> =>
  Layer.effect(
    AgentLookup.AgentLookup,
    Effect.map(AgentLookup.AgentLookup, (inner) =>
      AgentLookup.AgentLookup.of({
        current: (workspaceId) =>
          Effect.flatMap(currentTurn, (probe) => {
            counters.lookups++
            if (probe !== undefined) probe.lookups++
            return inner.current(workspaceId)
          })
      }))
  )

/**
 * The counters of `GET /metrics` that count a replica's latest-agent lookups.
 * `directoryLookups` counts every lookup the process made, whoever asked
 * (binding's lazy binds, core's validation, the `latest` strategy's turns);
 * `directoryQueries` the SQL queries they took (concurrent lookups share
 * one); `bindingLookups` and `coreLookups` split lazydial's by who asked.
 * Declared once: the process tests and the harness's `cluster` read the same
 * names.
 *
 * @since 0.2.0
 * @category metrics
 */
export const lookupMetrics = {
  directoryLookups: "lazydial_directory_lookups_total",
  directoryQueries: "lazydial_directory_queries_total",
  bindingLookups: "lazydial_binding_lookups_total",
  coreLookups: "lazydial_lookups_total"
} as const

/**
 * The sum of every series of a counter in Prometheus text; 0 when the
 * process has not touched it yet (Effect registers a metric at its first use).
 *
 * @since 0.2.0
 * @category metrics
 */
export const counterTotal = (metricsText: string, name: string): number => {
  let total = 0
  for (const line of metricsText.split("\n")) {
    // `name 3` or `name{labels} 3`; not `name_bucket`, nor HELP/TYPE comments
    if (line.startsWith(name) && (line[name.length] === " " || line[name.length] === "{")) {
      total += Number(line.slice(line.lastIndexOf(" ") + 1))
    }
  }
  return total
}

/**
 * Whether a statement of `pg_stat_statements` is a latest-agent lookup: a
 * SELECT on the builds table. The fleet's build write (an INSERT that reads
 * the table for the next build number) is not one, nor a read that a rebuild
 * notice prompted (binding gives it a column of its own, `prompted_by_notice`).
 *
 * @since 0.2.0
 * @category metrics
 */
export const isLookupStatement = (query: string): boolean =>
  /^\s*SELECT\b/i.test(query) && /\blazydial_workspace_builds\b/.test(query) && !/\bprompted_by_notice\b/.test(query)
