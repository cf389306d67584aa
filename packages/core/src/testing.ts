/**
 * A test kit: scripted agents and lookups on the Effect clock, with a ledger of
 * every connection acquired and released. Run it under `TestClock` to test a
 * service built on lazydial without sockets, databases or real time.
 *
 * @example
 * ```ts
 * import { Effect, TestClock } from "effect"
 * import { LazyDial } from "@lazydial/core"
 * import { TestAgents, layerTest } from "@lazydial/core/testing"
 *
 * const program = Effect.gen(function*() {
 *   const agents = yield* TestAgents
 *   // ... script agents, run turns, advance TestClock, then:
 *   const open = yield* agents.unreleased
 *   return open.length // 0 when nothing leaked
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Arbitrary from "effect/Arbitrary"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { AssertionError } from "node:assert"
import { type AgentConnection, AgentDialer } from "./AgentDialer.js"
import { AgentLookup } from "./AgentLookup.js"
import { AgentDialError, AgentLookupError } from "./Errors.js"
import { type AgentId, CurrentAgent, type WorkspaceId } from "./Ids.js"

/**
 * How one dial of an agent behaves. `interruptible: false` makes the whole
 * acquisition ignore interruption, as an `acquireRelease` acquire does: such a
 * dial delivers its connection late even after it was abandoned.
 *
 * @since 0.1.0
 * @category models
 */
export interface DialScript {
  readonly latency?: Duration.Input | undefined
  readonly result: "connect" | "fail" | "hang"
  readonly interruptible?: boolean | undefined
}

/**
 * How one lookup of a workspace behaves.
 *
 * @since 0.1.0
 * @category models
 */
export interface LookupScript {
  readonly latency?: Duration.Input | undefined
  readonly result: "current" | "fail"
}

/**
 * @since 0.1.0
 * @category models
 */
export interface LedgerEntry {
  readonly connectionId: string
  readonly agentId: AgentId
  /** Effect clock time, in milliseconds. */
  readonly acquiredAt: number
  readonly releasedAt: ReadonlyArray<number>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface CallRecord<Id> {
  readonly id: Id
  readonly at: number
}

/**
 * Control of the scripted agents, and what they saw.
 *
 * @since 0.1.0
 * @category tags
 */
export class TestAgents extends Context.Service<
  TestAgents,
  {
    /** Scripts the next dials of an agent; the last script repeats. An unscripted agent refuses at once. */
    readonly script: (agentId: AgentId, ...scripts: ReadonlyArray<DialScript>) => Effect.Effect<void>
    /** Sets the workspace's current agent (None: stopped). */
    readonly setCurrent: (workspaceId: WorkspaceId, current: Option.Option<CurrentAgent>) => Effect.Effect<void>
    /** Scripts the next lookups of a workspace; the last script repeats. Default: answers at once. */
    readonly scriptLookup: (workspaceId: WorkspaceId, ...scripts: ReadonlyArray<LookupScript>) => Effect.Effect<void>
    readonly dials: Effect.Effect<ReadonlyArray<CallRecord<AgentId>>>
    readonly lookups: Effect.Effect<ReadonlyArray<CallRecord<WorkspaceId>>>
    readonly ledger: Effect.Effect<ReadonlyArray<LedgerEntry>>
    /** Connections acquired and not yet released. */
    readonly unreleased: Effect.Effect<ReadonlyArray<LedgerEntry>>
    /** Connections released more than once: always a bug. */
    readonly releasedTwice: Effect.Effect<ReadonlyArray<LedgerEntry>>
    /** Every later exchange of the connection fails with `Closed`, as a dead connection's does. */
    readonly breakConnection: (connectionId: string) => Effect.Effect<void>
    readonly reset: Effect.Effect<void>
  }
>()("@lazydial/core/testing/TestAgents") {}

interface MutableLedgerEntry {
  readonly connectionId: string
  readonly agentId: AgentId
  readonly acquiredAt: number
  readonly releasedAt: Array<number>
}

const next = <S>(queue: Array<S> | undefined): S | undefined =>
  queue === undefined ? undefined : queue.length > 1 ? queue.shift() : queue[0]

/**
 * Builds the kit. Each call makes a fresh, independent set of agents.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<
  TestAgents["Service"] & AgentDialer["Service"] & AgentLookup["Service"]
> = Effect.sync(() => {
  const dialScripts = new Map<AgentId, Array<DialScript>>()
  const lookupScripts = new Map<WorkspaceId, Array<LookupScript>>()
  const current = new Map<WorkspaceId, Option.Option<CurrentAgent>>()
  let dials: Array<CallRecord<AgentId>> = []
  let lookups: Array<CallRecord<WorkspaceId>> = []
  let ledger: Array<MutableLedgerEntry> = []
  // Indexed by connection id: a release must not scan the whole ledger, which
  // made the kit the bottleneck of 10,000-turn load runs.
  let byConnectionId = new Map<string, MutableLedgerEntry>()
  let serial = 0
  let broken = new Set<string>()

  const connect = (agentId: AgentId) =>
    Effect.acquireRelease(
      Effect.map(Clock.currentTimeMillis, (now): AgentConnection => {
        const entry: MutableLedgerEntry = {
          connectionId: `test-${++serial}`,
          agentId,
          acquiredAt: now,
          releasedAt: []
        }
        ledger.push(entry)
        byConnectionId.set(entry.connectionId, entry)
        return {
          agentId,
          connectionId: entry.connectionId,
          exchange: (request) =>
            broken.has(entry.connectionId)
              ? Effect.fail(new AgentDialError({ agentId, reason: "Closed", detail: "broken by the test" }))
              : Effect.succeed(`${agentId}:${request}`)
        }
      }),
      (connection) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          byConnectionId.get(connection.connectionId)?.releasedAt.push(now)
        })
    )

  const dial = (agentId: AgentId) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      dials.push({ id: agentId, at: now })
      const script = next(dialScripts.get(agentId))
      if (script === undefined) {
        return Effect.fail(new AgentDialError({ agentId, reason: "Refused", detail: "no such test agent" }))
      }
      const wait = Effect.sleep(script.latency ?? Duration.zero)
      const attempt = script.result === "hang"
        ? Effect.andThen(wait, Effect.never)
        : script.result === "fail"
        ? Effect.andThen(wait, Effect.fail(new AgentDialError({ agentId, reason: "Refused", detail: "scripted" })))
        : Effect.andThen(wait, connect(agentId))
      return script.interruptible === false ? Effect.uninterruptible(attempt) : attempt
    })

  const lookup = (workspaceId: WorkspaceId) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      lookups.push({ id: workspaceId, at: now })
      const script = next(lookupScripts.get(workspaceId)) ?? { result: "current" }
      return Effect.andThen(
        Effect.sleep(script.latency ?? Duration.zero),
        script.result === "fail"
          ? Effect.fail(new AgentLookupError({ workspaceId, detail: "scripted" }))
          : Effect.sync(() => current.get(workspaceId) ?? Option.none())
      )
    })

  const snapshot = (entries: ReadonlyArray<MutableLedgerEntry>): ReadonlyArray<LedgerEntry> =>
    entries.map((entry) => ({ ...entry, releasedAt: [...entry.releasedAt] }))

  return {
    dial,
    current: lookup,
    script: (agentId, ...scripts) => Effect.sync(() => void dialScripts.set(agentId, [...scripts])),
    setCurrent: (workspaceId, agent) => Effect.sync(() => void current.set(workspaceId, agent)),
    scriptLookup: (workspaceId, ...scripts) => Effect.sync(() => void lookupScripts.set(workspaceId, [...scripts])),
    dials: Effect.sync(() => [...dials]),
    lookups: Effect.sync(() => [...lookups]),
    ledger: Effect.sync(() => snapshot(ledger)),
    unreleased: Effect.sync(() => snapshot(ledger.filter((entry) => entry.releasedAt.length === 0))),
    releasedTwice: Effect.sync(() => snapshot(ledger.filter((entry) => entry.releasedAt.length > 1))),
    breakConnection: (connectionId) => Effect.sync(() => void broken.add(connectionId)),
    reset: Effect.sync(() => {
      broken = new Set()
      dialScripts.clear()
      lookupScripts.clear()
      current.clear()
      dials = []
      lookups = []
      ledger = []
      byConnectionId = new Map()
    })
  }
})

/**
 * `AgentDialer`, `AgentLookup` and their control, `TestAgents`, all backed by
 * one scripted fleet.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest: Layer.Layer<TestAgents | AgentDialer | AgentLookup> = Layer.effectContext(
  Effect.map(make, (kit) =>
    Context.make(TestAgents, kit).pipe(
      Context.add(AgentDialer, AgentDialer.of({ dial: kit.dial })),
      Context.add(AgentLookup, AgentLookup.of({ current: kit.current }))
    ))
)

/**
 * A `CurrentAgent`, for scripting lookups.
 *
 * @since 0.1.0
 * @category constructors
 */
export const currentAgent = (fields: ConstructorParameters<typeof CurrentAgent>[0]): CurrentAgent =>
  new CurrentAgent(fields)

/** One of the given Arbitraries, picked uniformly. */
const oneOf = <A>(members: ReadonlyArray<Arbitrary.Arbitrary<A>>): Arbitrary.Arbitrary<A> =>
  Arbitrary.flatMap(
    Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: members.length - 1 }))),
    (index) => members[index]!
  )

const uuid = Arbitrary.schema(Schema.String.check(Schema.isUUID()))

/**
 * Strings near a UUID as well as far from it, for property tests of a
 * boundary that decodes ids: random strings rarely come close to a UUID, so a
 * decoder that accepts a UUID missing a character, with a space or a newline
 * around it, or with a non-hex digit would otherwise go unnoticed. An Effect
 * `Arbitrary`, for `it.prop` of `@effect/vitest` or `Arbitrary.checkEffect`.
 *
 * @since 0.2.0
 * @category arbitraries
 */
export const idLike: Arbitrary.Arbitrary<string> = oneOf([
  Arbitrary.schema(Schema.String),
  uuid,
  Arbitrary.map(uuid, (id) => id.slice(1)),
  Arbitrary.map(uuid, (id) => id.replace(/-/g, "")),
  Arbitrary.map(uuid, (id) => ` ${id}`),
  Arbitrary.map(uuid, (id) => `${id.slice(0, -1)}g`),
  Arbitrary.map(uuid, (id) => `${id}\n`)
])

/**
 * Any input a boundary may be handed: anything at all, id-like strings, and
 * objects.
 *
 * @since 0.2.0
 * @category arbitraries
 */
export const anyInput: Arbitrary.Arbitrary<unknown> = oneOf<unknown>([
  Arbitrary.schema(Schema.Unknown),
  idLike,
  Arbitrary.schema(Schema.Record(Schema.String, Schema.Unknown))
])

/**
 * Runs a synchronous decoding effect and returns how it ended; throws when it
 * ended in a defect or an interruption, so a property that feeds bad input
 * fails unless every refusal is a typed error.
 *
 * @since 0.2.0
 * @category assertions
 */
export const endsInErrorChannel = <A, E>(effect: Effect.Effect<A, E>): Exit.Exit<A, E> => {
  const exit = Effect.runSyncExit(effect)
  if (Exit.isFailure(exit) && !Cause.hasFails(exit.cause)) {
    throw new AssertionError({
      message: `not a typed failure: ${Cause.pretty(exit.cause)}`,
      operator: "endsInErrorChannel"
    })
  }
  return exit
}
