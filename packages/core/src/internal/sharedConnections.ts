import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as RcMap from "effect/RcMap"
import type * as Scope from "effect/Scope"
import { type AgentConnection, AgentDialer } from "../AgentDialer.js"
import type { AgentDialError } from "../Errors.js"
import type { AgentId } from "../Ids.js"
import type { SharedConnections } from "../SharedConnections.js"

/** The checked options. @internal */
export interface Settings {
  readonly idleTimeToLive: Duration.Duration
  readonly probeAfterIdle: Duration.Duration
  readonly probeTimeout: Duration.Duration
  readonly probe: ((connection: AgentConnection) => Effect.Effect<unknown, AgentDialError>) | undefined
  readonly capacity: number
}

/** @internal */
export const dials = Metric.counter("lazydial_shared_connection_dials_total", {
  description: "Dials made to open a shared agent connection",
  incremental: true
})
/** @internal */
export const borrows = Metric.counter("lazydial_shared_connection_borrows_total", {
  description: "Turns that borrowed a shared agent connection (the dials included)",
  incremental: true
})
/** @internal */
export const drops = Metric.counter("lazydial_shared_connection_drops_total", {
  description: "Shared agent connections dropped before their idle time: a failed use, a failed probe, or invalidate",
  incremental: true
})

/** One agent's live connection, and when a turn last gave it back. */
interface Entry {
  readonly connection: AgentConnection
  lastUsedMillis: number
}

/** @internal */
export const make = (settings: Settings): Effect.Effect<
  { readonly dialer: AgentDialer["Service"]; readonly shared: SharedConnections["Service"] },
  never,
  AgentDialer | Scope.Scope
> =>
  Effect.gen(function*() {
    const underlying = yield* AgentDialer
    const map = yield* RcMap.make({
      // The connection lives in the entry's Scope: it is closed when the entry is, after its idle time, or when
      // it is invalidated and its last borrower gives it back.
      lookup: (agentId: AgentId) =>
        Effect.andThen(
          Metric.update(dials, 1),
          Effect.map(underlying.dial(agentId), (connection): Entry => ({ connection, lastUsedMillis: 0 }))
        ),
      idleTimeToLive: settings.idleTimeToLive,
      capacity: settings.capacity
    })

    const drop = (agentId: AgentId) => Effect.andThen(Metric.update(drops, 1), RcMap.invalidate(map, agentId))

    // A failed dial is not kept: RcMap keeps a failed lookup's answer for its idle time, and the next borrow
    // must dial again. Over capacity, the dial is the caller's own, unshared.
    const acquire = (agentId: AgentId): Effect.Effect<Entry, AgentDialError, Scope.Scope> =>
      RcMap.get(map, agentId).pipe(
        Effect.catchTag(
          "ExceededCapacityError",
          () => Effect.map(underlying.dial(agentId), (connection): Entry => ({ connection, lastUsedMillis: 0 }))
        ),
        Effect.tapError(() => RcMap.invalidate(map, agentId))
      )

    /** The connection a borrower uses: a failed exchange drops it, so the next turn dials afresh. */
    const lend = (agentId: AgentId, entry: Entry): AgentConnection => ({
      agentId: entry.connection.agentId,
      connectionId: entry.connection.connectionId,
      exchange: (request) =>
        entry.connection.exchange(request).pipe(
          Effect.tapError(() => drop(agentId)),
          Effect.ensuring(Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.sync(() => {
              entry.lastUsedMillis = now
            })))
        )
    })

    /** A connection idle for longer than `probeAfterIdle` is probed before it is lent; a failed probe drops it. */
    const healthy = (agentId: AgentId, entry: Entry): Effect.Effect<boolean> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const probe = settings.probe
        if (probe === undefined || entry.lastUsedMillis === 0) return Effect.succeed(true)
        if (now - entry.lastUsedMillis < Duration.toMillis(settings.probeAfterIdle)) return Effect.succeed(true)
        return probe(entry.connection).pipe(
          Effect.timeoutOption(settings.probeTimeout),
          Effect.flatMap((answered) =>
            Option.isSome(answered)
              ? Effect.sync(() => {
                entry.lastUsedMillis = now
                return true
              })
              : Effect.as(drop(agentId), false)
          ),
          Effect.catch(() => Effect.as(drop(agentId), false))
        )
      })

    const dial = (agentId: AgentId): Effect.Effect<AgentConnection, AgentDialError, Scope.Scope> =>
      Effect.gen(function*() {
        yield* Metric.update(borrows, 1)
        const entry = yield* acquire(agentId)
        if (yield* healthy(agentId, entry)) {
          if (entry.lastUsedMillis === 0) entry.lastUsedMillis = yield* Clock.currentTimeMillis
          return lend(agentId, entry)
        }
        // the probe failed and dropped it: one fresh dial, the caller's race decides what happens if it fails too
        return lend(agentId, yield* acquire(agentId))
      })

    return {
      dialer: AgentDialer.of({ dial }),
      shared: {
        invalidate: (agentId) =>
          RcMap.has(map, agentId).pipe(Effect.flatMap((has) => has ? drop(agentId) : Effect.void)),
        open: Effect.map(RcMap.keys(map), (keys) => Array.from(keys).length)
      }
    }
  })
