import { AgentId, BuildId, WorkspaceId } from "@lazydial/core"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as SqlClient from "effect/sql/SqlClient"
import * as Stream from "effect/Stream"
import type { Listener } from "../Database.js"
import type { BindingStoreError } from "../Errors.js"
import type { Heard, RebuildNotices, Status } from "../RebuildNotices.js"
import * as builds from "./builds.js"
import { databaseError, Deadlines } from "./database.js"
import { withDeadline } from "./deadline.js"
import * as metrics from "./noticeMetrics.js"

/** @internal */
export const channel = builds.channel

/**
 * What the directory said of a workspace: its latest build at `order` (the
 * build's number in the directory), with its agent, or `agentId` null when
 * that build stopped the workspace. Only the directory's answers (a lookup, or
 * a read that a notice prompted) are published as `Notice`s.
 *
 * @internal
 */
export class Notice extends Schema.Class<Notice>("@lazydial/binding/RebuildNotices/Notice")({
  workspaceId: WorkspaceId,
  order: Schema.Int.check(Schema.isGreaterThan(0)),
  buildId: BuildId,
  agentId: Schema.NullOr(AgentId),
  /** Builds of the workspace before this one, newest first (at most 8): a chat bound to one is stale. */
  superseded: Schema.Array(BuildId)
}) {}

/**
 * The longest payload looked at: a workspace id is 36 characters. Anything
 * longer is malformed before a character of it is read.
 *
 * @internal
 */
export const maxPayloadLength = 64

const isHex = (code: number): boolean =>
  (code >= 48 && code <= 57) || (code >= 65 && code <= 70) || (code >= 97 && code <= 102)

/**
 * A NOTIFY payload, parsed by hand in O(1) with no allocation: the workspace id
 * in the 8-4-4-4-12 hex form that `WorkspaceId`'s Schema accepts
 * (`Schema.isGUID`), or undefined for anything else. No `JSON.parse`: a
 * payload is written by anyone who can connect, and an arbitrarily nested one
 * overflowed the stack of the Effect 3 listener.
 *
 * @internal
 */
export const parsePayload = (payload: string): WorkspaceId | undefined => {
  if (payload.length > maxPayloadLength || payload.length !== 36) return undefined
  for (let i = 0; i < 36; i++) {
    const code = payload.charCodeAt(i)
    if (i === 8 || i === 13 || i === 18 || i === 23 ? code !== 45 : !isHex(code)) return undefined
  }
  return payload as WorkspaceId // safe: the shape WorkspaceId's Schema checks, checked above
}

/**
 * How many answers a subscriber may lag behind before the oldest are dropped.
 * A dropped answer is a lost notice, which the view tolerates; an unbounded
 * queue of a connector that makes no turns would grow without end.
 *
 * @internal
 */
export const subscriberCapacity = 4096

/** @internal */
export const reconnectDelay: Duration.Duration = Duration.seconds(1)

/**
 * The least time between two reads that notices prompt, per process: at most
 * 10 reads a second, whatever arrives. A rebuild's first notice is read at
 * once; notices that arrive meanwhile wait at most this long, together.
 *
 * @internal
 */
export const readInterval: Duration.Duration = Duration.millis(100)

/**
 * The most workspaces one prompted read asks for (as many as the store's
 * batched row reads): at most 5,000 workspaces a second.
 *
 * @internal
 */
export const maxReadBatch = 500

/**
 * The most workspaces waiting for a prompted read. Only tracked workspaces
 * wait, so this is reached only when more than this many tracked workspaces
 * are named within one read; past it, a notice is dropped, which is a lost
 * notice.
 *
 * @internal
 */
export const maxPending = 10_000

/** @internal */
export const malformedLogInterval: Duration.Duration = Duration.seconds(10)

// A burst (50,000 payloads in one statement arrive as one array) is handled in
// slices of this many, with a yield to the event loop between two.
const sliceSize = 1024

/** What the directory holds now for some workspaces: the reader of prompted reads. */
type Read = (workspaces: ReadonlyArray<WorkspaceId>) => Effect.Effect<ReadonlyArray<Notice>, BindingStoreError>

const make = (read: Read, onRead: Effect.Effect<void> = Effect.void) =>
  Effect.gen(function*() {
    const hub = yield* PubSub.sliding<Heard>(subscriberCapacity)
    // stamped when published, not when a reader drains it: a reader that makes
    // no turn for a while must still see how old an answer is
    const publish = (notice: Notice) =>
      Effect.flatMap(Clock.currentTimeMillis, (heardAt) => Effect.asVoid(PubSub.publish(hub, { notice, heardAt })))
    const status = yield* Ref.make<Status>({ listening: false, session: 0 })
    const setListening = (listening: boolean) =>
      Ref.update(status, (current) =>
        current.listening === listening
          ? current
          : { listening, session: listening ? current.session + 1 : current.session })
    const runFork = yield* FiberSet.makeRuntime<never, void, never>()

    // Who cares about which workspace: each view registers what it holds, and
    // a notice for a workspace nobody tracks costs a count, not a read. A view
    // takes in answers only when a turn asks, so the workspaces this process
    // looked up lately count too: a rebuild right after a chat's first lookup
    // must not be missed because no turn came in between. Bounded like a
    // subscriber's queue; prompted answers do not count, or a stream of
    // notices would keep a workspace tracked after every view let it go.
    const trackers = new Set<(workspaceId: WorkspaceId) => boolean>()
    const lookedUp = new Set<WorkspaceId>()
    const tracked = (workspaceId: WorkspaceId): boolean => {
      if (lookedUp.has(workspaceId)) return true
      for (const tracks of trackers) if (tracks(workspaceId)) return true
      return false
    }
    const observe = (notice: Notice) =>
      Effect.andThen(
        Effect.sync(() => {
          lookedUp.delete(notice.workspaceId)
          lookedUp.add(notice.workspaceId)
          if (lookedUp.size > subscriberCapacity) lookedUp.delete(lookedUp.values().next().value!)
        }),
        publish(notice)
      )
    const track = (tracks: (workspaceId: WorkspaceId) => boolean): Effect.Effect<void, never, Scope.Scope> =>
      Effect.acquireRelease(
        Effect.sync(() => {
          trackers.add(tracks)
        }),
        () =>
          Effect.sync(() => {
            trackers.delete(tracks)
          })
      )

    // ---- prompted reads: one reader fiber, only while something waits ----------

    const pending = new Set<WorkspaceId>()
    // Flags, not fibers: a fiber forked here may run to its end before the
    // fork returns, and must still find them set.
    let reading = false
    let reads = 0

    const takeBatch = (): ReadonlyArray<WorkspaceId> => {
      const batch: Array<WorkspaceId> = []
      for (const workspaceId of pending) {
        if (batch.length === maxReadBatch) break
        batch.push(workspaceId)
      }
      for (const workspaceId of batch) pending.delete(workspaceId)
      return batch
    }

    // A failed read drops its batch: a lost notice, after which turns
    // validate lazily. Its warning is bounded by the read interval.
    const readOnce = Effect.suspend(() => {
      const batch = takeBatch()
      reads++
      return Effect.andThen(onRead, read(batch)).pipe(
        Effect.flatMap((answers) => Effect.forEach(answers, publish, { discard: true })),
        // counted once its answers are published, so a reader of the counter knows the views can learn them
        Effect.andThen(Metric.update(metrics.reads, 1)),
        Effect.catchCause((cause) =>
          Effect.logWarning(
            `RebuildNotices: a read of ${batch.length} workspaces that notices prompted failed; ` +
              "they validate lazily until their next notice",
            cause
          )
        )
      )
    })

    // The interval is slept after each read, before the reader may end, so a
    // reader started later also begins at least one interval after the last
    // read. The first yield lets the rest of a burst join the first read.
    const readLoop: Effect.Effect<void> = Effect.andThen(
      readOnce,
      Effect.andThen(
        Effect.sleep(readInterval),
        Effect.suspend(() => {
          if (pending.size > 0) return readLoop
          reading = false
          return Effect.void
        })
      )
    )

    // ---- malformed payloads: counted, and logged at most once per interval ----

    let malformedSinceLine = 0
    let latestMalformed = ""
    let logging = false
    let lastLineAt = Number.NEGATIVE_INFINITY

    const logLine = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const count = malformedSinceLine
      const sample = JSON.stringify(latestMalformed.slice(0, maxPayloadLength))
      malformedSinceLine = 0
      latestMalformed = ""
      lastLineAt = now
      logging = false
      return Effect.logWarning(
        `RebuildNotices: ${count} malformed payload(s) on ${channel} ignored since the last line (the latest ` +
          `starts ${sample}); lazydial sends a workspace id alone: another client, which needs no more than the ` +
          "right to connect, NOTIFYs on this channel"
      )
    })

    const logMalformed = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const wait = lastLineAt + Duration.toMillis(malformedLogInterval) - now
      return wait > 0 ? Effect.andThen(Effect.sleep(wait), logLine) : logLine
    })

    // ---- the consumer: O(1) per payload, counts kept in plain numbers ---------

    let received = 0
    let malformed = 0
    let untracked = 0
    let dropped = 0

    const handle = (payload: string): void => {
      const workspaceId = parsePayload(payload)
      if (workspaceId === undefined) {
        malformed++
        malformedSinceLine++
        latestMalformed = payload
        return
      }
      received++
      if (!tracked(workspaceId)) {
        untracked++
        return
      }
      if (pending.has(workspaceId)) return
      if (pending.size >= maxPending) {
        dropped++
        return
      }
      pending.add(workspaceId)
    }

    const flush = Effect.suspend(() => {
      const counts: ReadonlyArray<readonly [Metric.Counter<number>, number]> = [
        [metrics.received, received],
        [metrics.malformed, malformed],
        [metrics.untracked, untracked],
        [metrics.dropped, dropped]
      ]
      const anyMalformed = malformed > 0
      received = 0
      malformed = 0
      untracked = 0
      dropped = 0
      if (pending.size > 0 && !reading) {
        reading = true
        runFork(Effect.andThen(Effect.yieldNow, readLoop))
      }
      if (anyMalformed && !logging) {
        logging = true
        runFork(logMalformed)
      }
      return Effect.forEach(counts, ([counter, n]) => n > 0 ? Metric.update(counter, n) : Effect.void, {
        discard: true
      })
    })

    /** Payloads as they arrive, in slices with a yield between two: a burst never holds the event loop. */
    const handleAll = (payloads: ReadonlyArray<string>): Effect.Effect<void> =>
      Effect.gen(function*() {
        for (let start = 0; start < payloads.length; start += sliceSize) {
          if (start > 0) yield* Effect.yieldNow
          const end = Math.min(payloads.length, start + sliceSize)
          for (let i = start; i < end; i++) handle(payloads[i]!)
          yield* flush
        }
      })

    const service: RebuildNotices["Service"] = {
      subscribe: PubSub.subscribe(hub),
      status: Ref.get(status),
      observe,
      track
    }
    return { service, setListening, publish, handleAll, reads: Effect.sync(() => reads) }
  })

/** @internal */
export const makeNone: Effect.Effect<RebuildNotices["Service"], never, Scope.Scope> = Effect.map(
  make(() => Effect.succeed([])),
  ({ service }) => ({
    ...service,
    // nothing announces builds here, so lookup answers are not kept either
    observe: () => Effect.void,
    track: () => Effect.void
  })
)

/**
 * In memory: a directory of `record`ed answers that prompted reads read, and
 * payloads `notify`ed as if heard on the channel.
 *
 * @internal
 */
export const makeMemory = Effect.gen(function*() {
  const directory = new Map<WorkspaceId, Notice>()
  const readTimes: Array<number> = []
  const made = yield* make(
    (workspaces) =>
      Effect.sync(() =>
        workspaces.flatMap((workspaceId) => Option.toArray(Option.fromUndefinedOr(directory.get(workspaceId))))
      ),
    Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => readTimes.push(now)))
  )
  const { handleAll, publish, reads, service, setListening } = made
  return {
    service,
    control: {
      publish,
      setListening,
      notify: (payload: string) =>
        Effect.flatMap(service.status, (current) => current.listening ? handleAll([payload]) : Effect.void),
      notifyAll: (payloads: ReadonlyArray<string>) =>
        Effect.flatMap(service.status, (current) => current.listening ? handleAll(payloads) : Effect.void),
      record: (notice: Notice) =>
        Effect.sync(() => {
          const known = directory.get(notice.workspaceId)
          if (known === undefined || known.order < notice.order) directory.set(notice.workspaceId, notice)
        }),
      reads,
      readTimes: Effect.sync((): ReadonlyArray<number> => [...readTimes])
    }
  }
})

/**
 * Listens on the database, for the Scope's lifetime: `listening` is true
 * while LISTEN is in place; a lost connection sets it false (the session
 * ends), and listening starts again after `reconnectDelay`. Prompted reads
 * read the latest builds of the directory's table.
 *
 * @internal
 */
export const makeSql = (
  listener: Listener["Service"],
  sql: SqlClient.SqlClient
): Effect.Effect<RebuildNotices["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const deadlines = yield* Deadlines
    const operation = "RebuildNotices.read"
    const read: Read = (workspaces) =>
      builds.latest(sql, workspaces, "notice").pipe(
        Effect.mapError(databaseError(operation)),
        withDeadline(operation, deadlines.query),
        // a row that breaks the schema is no answer; the lookups of that
        // workspace report it, with the column that is wrong
        Effect.flatMap((rows) =>
          Effect.forEach(rows.values(), (raw) =>
            Effect.option(Effect.map(builds.decodeLatestRow(raw), (row) =>
              new Notice({
                workspaceId: row.workspace_id,
                order: row.build_number,
                buildId: row.build_id,
                agentId: row.agent_id,
                superseded: row.superseded
              }))))
        ),
        Effect.map((answers) => answers.flatMap(Option.toArray))
      )
    const { handleAll, service, setListening } = yield* make(read)
    const session = Effect.scoped(
      Effect.gen(function*() {
        const payloads = yield* withDeadline("RebuildNotices.listen", deadlines.query)(listener.listen(channel))
        yield* setListening(true)
        yield* Metric.update(metrics.sessions, 1)
        yield* Metric.update(metrics.listening, 1)
        yield* Stream.runForEachArray(payloads, handleAll)
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
  agentId: Option.Option<AgentId>,
  superseded: ReadonlyArray<BuildId> = []
): Notice => new Notice({ workspaceId, order, buildId, agentId: Option.getOrNull(agentId), superseded })
