/**
 * Notices of rebuilds, from the source of truth: the agent directory
 * announces every change of a workspace's current agent (a new build with its
 * agent, or a stop) together with the build's order number, and each
 * connector keeps a bounded view of the latest it knows (see
 * `ChatConnector`).
 *
 * On PostgreSQL and PGlite the directory sends a `NOTIFY` on the channel
 * `lazydial_rebuilds` in the same statement as the build's insert, so a
 * notice exists exactly when its build committed; `layerSql` listens on a
 * connection of its own (`Database.Listener`).
 *
 * | Layer | notices | use |
 * |---|---|---|
 * | `layerSql` | LISTEN on the database; lookup answers of this process too | the service |
 * | `layerMemory` | what a test publishes (`MemoryNotices`) | tests |
 * | `layerNone` | none: `listening` stays false, every turn validates lazily | today's behaviour |
 *
 * Notices are hints, never the truth: they may be lost (a dropped connection,
 * a subscriber that lags by more than `subscriberCapacity`), late, repeated or
 * out of order. A reader must move forward only by order number, and forget
 * what it learned when `status.session` changes or `listening` is false.
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
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Listener } from "./Database.js"
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
 * A change of a workspace's current agent, at build number `order`;
 * `agentId` is null when the build stopped the workspace. The payload of a
 * notice is this class's JSON.
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
 * Decodes a NOTIFY payload; a malformed one is a `SchemaError`, which
 * `layerSql` logs and ignores.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodePayload: (payload: unknown) => Effect.Effect<Notice, Schema.SchemaError> = internal.decodePayload

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
  agentId: Option.Option<AgentId>
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
 * A notice as a subscriber receives it, with the time it was published
 * (Effect clock, milliseconds).
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
   * A subscription to every notice published from now on, until the Scope
   * closes (read it with `PubSub.take`). It keeps the latest
   * `subscriberCapacity`.
   */
  readonly subscribe: Effect.Effect<PubSub.Subscription<Heard>, never, Scope.Scope>
  readonly status: Effect.Effect<Status>
  /** What a lookup answered, passed to subscribers like a notice (a no-op with `layerNone`). */
  readonly observe: (notice: Notice) => Effect.Effect<void>
}>()("@lazydial/binding/RebuildNotices") {}

/**
 * How many notices a subscriber may lag behind before the oldest are
 * dropped (dropped notices are lost notices).
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
 * Notices from the database: LISTEN on `Database.Listener`, which every
 * `Database` Layer provides. The listener fiber belongs to the Layer's Scope.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerSql: Layer.Layer<RebuildNotices, never, Listener> = Layer.effect(
  RebuildNotices,
  Effect.flatMap(Listener, internal.makeSql)
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
 * The controls of `layerMemory`: publish a notice, and start or stop
 * "listening" (each start is a new session).
 *
 * @since 0.1.0
 * @category tags
 */
export class MemoryNotices extends Context.Service<MemoryNotices, {
  readonly publish: (notice: Notice) => Effect.Effect<void>
  readonly setListening: (listening: boolean) => Effect.Effect<void>
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
 * Notices received from the database and decoded.
 *
 * @since 0.1.0
 * @category metrics
 */
export const receivedTotal: Metric.Counter<number> = noticeMetrics.received

/**
 * Payloads on the channel that did not decode, and were ignored.
 *
 * @since 0.1.0
 * @category metrics
 */
export const malformedTotal: Metric.Counter<number> = noticeMetrics.malformed
