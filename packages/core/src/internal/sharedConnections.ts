import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
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
  readonly openTimeout: Duration.Duration
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

/**
 * One agent's connection, open or being opened. The entry exists as soon as its dial starts, so that a borrower
 * knows which open it waits on and since when.
 */
interface Entry {
  readonly opened: Deferred.Deferred<AgentConnection, AgentDialError>
  readonly startedAt: number
  lastUsedMillis: number
  /** Set by the first borrower that gave up on the open: the others must not drop a fresh one in its place. */
  abandoned: boolean
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
      // The dial runs in a fiber of the entry's Scope, and its connection lives there: closing the entry (idle,
      // invalidated and given back, or the Layer's end) interrupts a dial in flight or closes the connection.
      lookup: (agentId: AgentId) =>
        Effect.gen(function*() {
          const startedAt = yield* Clock.currentTimeMillis
          const opened = yield* Deferred.make<AgentConnection, AgentDialError>()
          yield* Metric.update(dials, 1)
          yield* underlying.dial(agentId).pipe(
            Effect.exit,
            Effect.flatMap((exit) => Deferred.done(opened, exit)),
            Effect.ensuring(Deferred.interrupt(opened)),
            Effect.forkScoped
          )
          return { opened, startedAt, lastUsedMillis: 0, abandoned: false } satisfies Entry as Entry
        }),
      idleTimeToLive: settings.idleTimeToLive,
      capacity: settings.capacity
    })

    const drop = (agentId: AgentId) => Effect.andThen(Metric.update(drops, 1), RcMap.invalidate(map, agentId))

    /**
     * The agent's connection: the live one, or the one being opened, waited for at most `openTimeout` from the
     * start of its dial when `bounded`. Past it, the open is dropped (its dial is interrupted once its last
     * waiter leaves) and one fresh open, awaited with no bound of ours (the caller's race bounds it), is shared
     * by the borrowers that gave up. Without the bound one hung handshake held every turn of its agent until
     * their own timeouts, where each turn's own dial used to hang alone. Over capacity, the dial is the
     * caller's own, unshared. A failed dial is not kept: RcMap would keep the entry for its idle time.
     */
    const acquire = (
      agentId: AgentId,
      bounded: boolean
    ): Effect.Effect<
      { readonly connection: AgentConnection; readonly entry: Entry | undefined },
      AgentDialError,
      Scope.Scope
    > =>
      Effect.gen(function*() {
        const entry = yield* RcMap.get(map, agentId).pipe(
          Effect.catchTag("ExceededCapacityError", () => Effect.succeed(undefined))
        )
        if (entry === undefined) return { connection: yield* underlying.dial(agentId), entry }
        const opened = Deferred.await(entry.opened).pipe(Effect.tapError(() => RcMap.invalidate(map, agentId)))
        if (!bounded || Deferred.isDoneUnsafe(entry.opened)) return { connection: yield* opened, entry }
        const now = yield* Clock.currentTimeMillis
        const remaining = entry.startedAt + Duration.toMillis(settings.openTimeout) - now
        const connection = yield* Effect.timeoutOption(opened, Duration.millis(Math.max(0, remaining)))
        if (Option.isSome(connection)) return { connection: connection.value, entry }
        if (!entry.abandoned) {
          entry.abandoned = true
          yield* drop(agentId)
        }
        return yield* acquire(agentId, false)
      })

    /** The connection a borrower uses: a failed exchange drops it, so the next turn dials afresh. */
    const lend = (agentId: AgentId, connection: AgentConnection, entry: Entry | undefined): AgentConnection =>
      entry === undefined ? connection : {
        agentId: connection.agentId,
        connectionId: connection.connectionId,
        exchange: (request) =>
          connection.exchange(request).pipe(
            Effect.tapError(() => drop(agentId)),
            Effect.ensuring(Effect.flatMap(Clock.currentTimeMillis, (now) =>
              Effect.sync(() => {
                entry.lastUsedMillis = now
              })))
          )
      }

    /** A connection idle for longer than `probeAfterIdle` is probed before it is lent; a failed probe drops it. */
    const healthy = (agentId: AgentId, connection: AgentConnection, entry: Entry): Effect.Effect<boolean> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const probe = settings.probe
        if (probe === undefined || entry.lastUsedMillis === 0) return Effect.succeed(true)
        if (now - entry.lastUsedMillis < Duration.toMillis(settings.probeAfterIdle)) return Effect.succeed(true)
        return probe(connection).pipe(
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
        const first = yield* acquire(agentId, true)
        if (first.entry === undefined) return first.connection
        if (yield* healthy(agentId, first.connection, first.entry)) {
          if (first.entry.lastUsedMillis === 0) first.entry.lastUsedMillis = yield* Clock.currentTimeMillis
          return lend(agentId, first.connection, first.entry)
        }
        // the probe failed and dropped it: one fresh dial, the caller's race decides what happens if it fails too
        const fresh = yield* acquire(agentId, false)
        return lend(agentId, fresh.connection, fresh.entry)
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
