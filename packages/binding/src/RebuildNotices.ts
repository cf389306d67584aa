/**
 * Rebuild notices: a hint that a workspace's current agent may have changed,
 * and the directory's answers that the hint makes a replica read.
 *
 * A notice is a hint, never a fact. On PostgreSQL any role that can connect may
 * `NOTIFY` on any channel, so a payload proves nothing. The directory sends a
 * `NOTIFY` on the channel `lazydial_rebuilds` in the same statement as a
 * build's insert, and its payload is the workspace id alone. A notice may only
 * make a replica look: when a view of this process tracks that workspace, it is
 * read again from the directory, batched with the other workspaces notices
 * named, at most `maxReadBatch` per read and one read per `readInterval`. Only
 * the directory's answers (those reads, and the lookups of `AgentDirectory`)
 * reach subscribers, as `Notice`s. A notice never switches, fails or delays a
 * turn by itself, and costs at most a share of one bounded read.
 *
 * | payload | cost | counted in |
 * |---|---|---|
 * | a workspace id a view tracks | a share of one read | `receivedTotal`, `readsTotal` |
 * | a workspace id no view tracks | a count | `receivedTotal`, `untrackedTotal` |
 * | anything else (over 64 characters, JSON, junk) | a count; one log line per 10 s at most | `malformedTotal` |
 *
 * Payloads are parsed by hand, in O(1) per payload with no allocation, and a
 * burst is handled in slices with a yield to the event loop between two.
 *
 * | Layer | notices | use |
 * |---|---|---|
 * | `layerSql` | LISTEN on the database, reads of the directory's table; lookup answers of this process too | the service |
 * | `layerMemory` | what a test publishes or notifies (`MemoryNotices`) | tests |
 * | `layerNone` | none: `listening` stays false, every turn validates lazily | without notices |
 *
 * Answers may be lost (a dropped connection, a subscriber that lags by more
 * than `subscriberCapacity`), late, repeated or out of order. A reader must
 * move forward only by order number, and forget what it learned when
 * `status.session` changes or `listening` is false.
 *
 * @since 0.1.0
 */
import type { AgentId, BuildId, WorkspaceId } from "@lazydial/core"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import type * as Option from "effect/Option"
import type * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import { Listener, Migrated } from "./Database.js"
import * as noticeMetrics from "./internal/noticeMetrics.js"
import * as internal from "./internal/notices.js"

/**
 * The NOTIFY channel of the directory's notices.
 *
 * @since 0.1.0
 * @category constants
 */
export const channel: string = internal.channel

/**
 * What the directory said of a workspace: its latest build, at build number
 * `order`, with its agent; `agentId` is null when that build stopped the
 * workspace; `superseded` names the builds before it, newest first (at most
 * 8), so that a replica that never saw them knows a chat bound to one is
 * stale. Subscribers receive only these, from the directory's own answers,
 * never from a payload.
 *
 * @since 0.1.0
 * @category models
 */
export const Notice: typeof internal.Notice = internal.Notice

/**
 * @since 0.1.0
 * @category models
 */
export type Notice = internal.Notice

/**
 * Parses a NOTIFY payload: the workspace id it names, or undefined when it is
 * malformed (longer than `maxPayloadLength`, or anything but an id in the
 * 8-4-4-4-12 hex form). By hand, without `JSON.parse` or recursion.
 *
 * @since 0.1.0
 * @category decoding
 */
export const parsePayload: (payload: string) => WorkspaceId | undefined = internal.parsePayload

/**
 * The longest payload looked at; a workspace id is 36 characters.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxPayloadLength: number = internal.maxPayloadLength

/**
 * A notice from its parts.
 *
 * @since 0.1.0
 * @category constructors
 */
export const noticeOf: (
  workspaceId: WorkspaceId,
  order: number,
  buildId: BuildId,
  agentId: Option.Option<AgentId>,
  superseded?: ReadonlyArray<BuildId>
) => Notice = internal.noticeOf

/**
 * Whether notices arrive now, and which listening session this is: it goes up
 * by one each time listening starts, so a reader that sees a new session
 * knows it may have missed notices in between.
 *
 * @since 0.1.0
 * @category models
 */
export interface Status {
  readonly listening: boolean
  readonly session: number
}

/**
 * A directory answer as a subscriber receives it, with the time it was
 * published (Effect clock, milliseconds).
 *
 * @since 0.1.0
 * @category models
 */
export interface Heard {
  readonly notice: Notice
  readonly heardAt: number
}

/**
 * @since 0.1.0
 * @category tags
 */
export class RebuildNotices extends Context.Service<RebuildNotices, {
  /**
   * A subscription to every directory answer published from now on, until
   * the Scope closes (read it with `PubSub.take`). It keeps the latest
   * `subscriberCapacity`.
   */
  readonly subscribe: Effect.Effect<PubSub.Subscription<Heard>, never, Scope.Scope>
  readonly status: Effect.Effect<Status>
  /** What a lookup of the directory answered, passed to subscribers (a no-op with `layerNone`). */
  readonly observe: (notice: Notice) => Effect.Effect<void>
  /**
   * Which workspaces a reader (a connector's view) cares about, until the
   * Scope closes. A notice of a workspace no reader tracks is counted and
   * ignored: nothing is read for it. Called on every notice: keep it O(1).
   */
  readonly track: (tracks: (workspaceId: WorkspaceId) => boolean) => Effect.Effect<void, never, Scope.Scope>
}>()("@lazydial/binding/RebuildNotices") {}

/**
 * How many answers a subscriber may lag behind before the oldest are
 * dropped (dropped answers are lost notices).
 *
 * @since 0.1.0
 * @category constants
 */
export const subscriberCapacity: number = internal.subscriberCapacity

/**
 * How long `layerSql` waits before it listens again after a lost connection.
 *
 * @since 0.1.0
 * @category constants
 */
export const reconnectDelay: Duration.Duration = internal.reconnectDelay

/**
 * The least time between two prompted reads, per process (100 ms).
 *
 * @since 0.1.0
 * @category constants
 */
export const readInterval: Duration.Duration = internal.readInterval

/**
 * The most workspaces one prompted read asks for (500).
 *
 * @since 0.1.0
 * @category constants
 */
export const maxReadBatch: number = internal.maxReadBatch

/**
 * The most workspaces waiting for a prompted read (10,000); past it, a notice
 * is dropped.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxPending: number = internal.maxPending

/**
 * At most one log line about malformed payloads per this interval (10 s),
 * with the count since the last line.
 *
 * @since 0.1.0
 * @category constants
 */
export const malformedLogInterval: Duration.Duration = internal.malformedLogInterval

/**
 * Notices from the database: LISTEN on `Database.Listener`, which every
 * `Database` Layer provides, and prompted reads of the directory's table on
 * the `SqlClient`, each within the query deadline (`Database.Deadlines`). The
 * listener and reader fibers belong to the Layer's Scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSql: Layer.Layer<RebuildNotices, never, Listener | SqlClient.SqlClient | Migrated> = Layer.effect(
  RebuildNotices,
  Effect.gen(function*() {
    // the prompted reads read the directory's table, which the migrations create
    yield* Migrated
    return yield* internal.makeSql(yield* Listener, yield* SqlClient.SqlClient)
  })
)

/**
 * No notices: `listening` stays false, so connectors validate every turn
 * lazily, as without this module.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNone: Layer.Layer<RebuildNotices> = Layer.effect(RebuildNotices, internal.makeNone)

/**
 * The controls of `layerMemory`: the in-memory directory that prompted reads
 * read (`record`), payloads heard on the channel (`notify`), a directory
 * answer passed straight to subscribers (`publish`, as a lookup's `observe`),
 * and "listening" (each start is a new session).
 *
 * @since 0.1.0
 * @category tags
 */
export class MemoryNotices extends Context.Service<MemoryNotices, {
  /** A directory answer, passed to subscribers as `observe` passes a lookup's. */
  readonly publish: (notice: Notice) => Effect.Effect<void>
  readonly setListening: (listening: boolean) => Effect.Effect<void>
  /** A payload heard on the channel, as `layerSql` handles it (ignored while not listening). */
  readonly notify: (payload: string) => Effect.Effect<void>
  /** Payloads heard together, as one statement's `NOTIFY`s arrive. */
  readonly notifyAll: (payloads: ReadonlyArray<string>) => Effect.Effect<void>
  /** What the in-memory directory answers for the notice's workspace from now on (a higher order only). */
  readonly record: (notice: Notice) => Effect.Effect<void>
  /** Prompted reads made so far. */
  readonly reads: Effect.Effect<number>
  /** When each prompted read was made (Effect clock, milliseconds). */
  readonly readTimes: Effect.Effect<ReadonlyArray<number>>
}>()("@lazydial/binding/RebuildNotices/MemoryNotices") {}

/**
 * In-memory notices for tests, listening from the start.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<RebuildNotices | MemoryNotices> = Layer.effectContext(
  Effect.gen(function*() {
    const { control, service } = yield* internal.makeMemory
    yield* control.setListening(true)
    return Context.make(RebuildNotices, service).pipe(Context.add(MemoryNotices, control))
  })
)

/**
 * 1 while this process listens for notices (`layerSql`), else 0. While 0,
 * every connector has forgotten its view and turns validate lazily.
 *
 * @since 0.1.0
 * @category metrics
 */
export const listeningGauge: Metric.Gauge<number> = noticeMetrics.listening

/**
 * LISTEN sessions started; each one after the first is a reconnect.
 *
 * @since 0.1.0
 * @category metrics
 */
export const sessionsTotal: Metric.Counter<number> = noticeMetrics.sessions

/**
 * Well-formed notices (a workspace id) received from the database.
 *
 * @since 0.1.0
 * @category metrics
 */
export const receivedTotal: Metric.Counter<number> = noticeMetrics.received

/**
 * Payloads on the channel that are no workspace id, ignored.
 *
 * @since 0.1.0
 * @category metrics
 */
export const malformedTotal: Metric.Counter<number> = noticeMetrics.malformed

/**
 * Well-formed notices of workspaces no view tracks: counted, nothing read.
 *
 * @since 0.1.0
 * @category metrics
 */
export const untrackedTotal: Metric.Counter<number> = noticeMetrics.untracked

/**
 * Notices dropped because `maxPending` workspaces already waited for a read.
 *
 * @since 0.1.0
 * @category metrics
 */
export const droppedTotal: Metric.Counter<number> = noticeMetrics.dropped

/**
 * Reads of the directory that notices prompted.
 *
 * @since 0.1.0
 * @category metrics
 */
export const readsTotal: Metric.Counter<number> = noticeMetrics.reads
