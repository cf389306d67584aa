import { AgentId, BuildId, WorkspaceId } from "@lazydial/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Listener } from "../Database.js"
import type { Heard, RebuildNotices, Status } from "../RebuildNotices.js"
import * as metrics from "./noticeMetrics.js"

/** @internal */
export const channel = "lazydial_rebuilds"

/**
 * A change of a workspace's current agent, at the build `order` (the build's
 * number in the directory): `agentId` null when the build stopped it.
 *
 * @internal
 */
export class Notice extends Schema.Class<Notice>("@lazydial/binding/RebuildNotices/Notice")({
  workspaceId: WorkspaceId,
  order: Schema.Int.check(Schema.isGreaterThan(0)),
  buildId: BuildId,
  agentId: Schema.NullOr(AgentId)
}) {}

/** @internal */
export const decodePayload = Schema.decodeUnknownEffect(Schema.fromJsonString(Notice))

/**
 * How many notices a subscriber may lag behind before the oldest are dropped.
 * A dropped notice is a lost notice, which the view tolerates; an unbounded
 * queue of a connector that makes no turns would grow without end.
 *
 * @internal
 */
export const subscriberCapacity = 4096

/** @internal */
export const reconnectDelay: Duration.Duration = Duration.seconds(1)

const make = Effect.gen(function*() {
  const hub = yield* PubSub.sliding<Heard>(subscriberCapacity)
  // stamped when published, not when a reader drains it: a reader that makes
  // no turn for a while must still see how old a notice is
  const publish = (notice: Notice) =>
    Effect.flatMap(Clock.currentTimeMillis, (heardAt) => Effect.asVoid(PubSub.publish(hub, { notice, heardAt })))
  const status = yield* Ref.make<Status>({ listening: false, session: 0 })
  const setListening = (listening: boolean) =>
    Ref.update(status, (current) =>
      current.listening === listening
        ? current
        : { listening, session: listening ? current.session + 1 : current.session })
  const service: RebuildNotices["Service"] = {
    subscribe: PubSub.subscribe(hub),
    status: Ref.get(status),
    observe: publish
  }
  return { service, setListening, publish }
})

/** @internal */
export const makeNone: Effect.Effect<RebuildNotices["Service"]> = Effect.map(make, ({ service }) => ({
  ...service,
  // nothing announces builds here, so lookup answers are not kept either
  observe: () => Effect.void
}))

/** @internal */
export const makeMemory = Effect.map(make, ({ publish, service, setListening }) => ({
  service,
  control: { publish, setListening }
}))

/**
 * Listens on the database, for the Scope's lifetime: `listening` is true
 * while LISTEN is in place; a lost connection sets it false (the session
 * ends), and listening starts again after `reconnectDelay`.
 *
 * @internal
 */
export const makeSql = (
  listener: Listener["Service"]
): Effect.Effect<RebuildNotices["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const { publish, service, setListening } = yield* make
    const handle = (payload: string) =>
      decodePayload(payload).pipe(
        Effect.flatMap((notice) => Effect.andThen(Metric.update(metrics.received, 1), publish(notice))),
        Effect.catchTag("SchemaError", (error) =>
          Effect.logWarning("RebuildNotices: a malformed notice was ignored").pipe(
            Effect.annotateLogs({ payload: payload.slice(0, 200), error: error.message }),
            Effect.andThen(Metric.update(metrics.malformed, 1))
          ))
      )
    const session = Effect.scoped(
      Effect.gen(function*() {
        const payloads = yield* listener.listen(channel)
        yield* setListening(true)
        yield* Metric.update(metrics.sessions, 1)
        yield* Metric.update(metrics.listening, 1)
        yield* Stream.runForEach(payloads, handle)
      })
    ).pipe(
      Effect.ensuring(Effect.andThen(setListening(false), Metric.update(metrics.listening, 0))),
      Effect.catchCause((cause) =>
        Effect.logWarning("RebuildNotices: not listening; turns validate lazily until LISTEN is back", cause)
      )
    )
    yield* Effect.forkScoped(Effect.repeat(session, Schedule.spaced(reconnectDelay)))
    return service
  })

/** @internal */
export const noticeOf = (
  workspaceId: WorkspaceId,
  order: number,
  buildId: BuildId,
  agentId: Option.Option<AgentId>
): Notice => new Notice({ workspaceId, order, buildId, agentId: Option.getOrNull(agentId) })
