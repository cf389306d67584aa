/**
 * Instruments the Layers the service wires, without changing them: the
 * `AgentLookup` is wrapped to count latest-agent lookups. A turn provides a
 * `TurnProbe` as the `currentTurn` reference; a lookup made anywhere inside
 * the turn, in core or in binding, is counted on it.
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
