import { type BuildId, CurrentAgent, type WorkspaceId } from "@lazydial/core"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { Notice, RebuildNotices } from "../RebuildNotices.js"

/**
 * Builds of a workspace the view remembers as superseded. A chat bound to one
 * of them is known to be stale; a chat bound to a build the view never saw is
 * not judged (it might be newer than the view), and validates lazily.
 *
 * @internal
 */
export const maxSupersededPerWorkspace = 8

/**
 * How long a stop is trusted after it was last heard or confirmed. A stop is
 * the one hint that makes no dial: a chat of a workspace whose restart notice
 * was lost would fail with `NoCurrentAgent` for as long as the view says
 * "stopped". Past this window the turn takes the lazy path, whose lookup
 * answer (through the directory) confirms the stop or moves the view on.
 *
 * @internal
 */
export const stoppedTrustMillis = 30_000

interface Entry {
  readonly order: number
  /** When a notice or lookup answer last said this (Effect clock). */
  readonly heardAt: number
  readonly buildId: BuildId
  readonly current: Option.Option<CurrentAgent>
  /** Builds seen with a lower order, newest first. */
  readonly superseded: ReadonlyArray<BuildId>
}

/**
 * What the view says about a chat's workspace and bound build.
 *
 * @internal
 */
export type Hint =
  | { readonly _tag: "Unknown" }
  | { readonly _tag: "Current"; readonly current: CurrentAgent }
  | { readonly _tag: "Stopped" }

const unknown: Hint = { _tag: "Unknown" }

/**
 * The moving-forward rule, on its own so the tests and the simulation's model
 * use the very same one: a notice replaces the entry only with a higher order;
 * an older one only teaches that its build is superseded.
 *
 * @internal
 */
export const applyNotice = (entry: Entry | undefined, notice: Notice, heardAt: number): Entry | undefined => {
  const current = notice.agentId === null
    ? Option.none()
    : Option.some(new CurrentAgent({ agentId: notice.agentId, buildId: notice.buildId }))
  if (entry === undefined) return { order: notice.order, heardAt, buildId: notice.buildId, current, superseded: [] }
  if (notice.order > entry.order) {
    return {
      order: notice.order,
      heardAt,
      buildId: notice.buildId,
      current,
      superseded: [entry.buildId, ...entry.superseded.filter((b) => b !== notice.buildId)].slice(
        0,
        maxSupersededPerWorkspace
      )
    }
  }
  if (notice.order < entry.order && !entry.superseded.includes(notice.buildId)) {
    return { ...entry, superseded: [...entry.superseded, notice.buildId].slice(0, maxSupersededPerWorkspace) }
  }
  // the same build again: a confirmation
  if (notice.order === entry.order) return { ...entry, heardAt: Math.max(entry.heardAt, heardAt) }
  return undefined
}

/**
 * A connector's view: workspace → the latest (order, current agent or
 * stopped) it knows, in an LRU of `size` workspaces. It reads the notices
 * queued since the last turn when a turn asks (no fiber of its own), and
 * forgets everything when the notices' session changes or listening stops.
 *
 * @internal
 */
export const make = (
  notices: Context.Tag.Service<RebuildNotices>,
  size: number
) =>
  Effect.gen(function*() {
    const queue = yield* notices.subscribe
    const entries = new Map<WorkspaceId, Entry>()
    let session = -1

    const apply = (notice: Notice, now: number) => {
      const before = entries.get(notice.workspaceId)
      const after = applyNotice(before, notice, now)
      if (after === undefined) return
      entries.delete(notice.workspaceId)
      entries.set(notice.workspaceId, after)
      if (entries.size > size) entries.delete(entries.keys().next().value!)
    }

    const catchUp = Effect.gen(function*() {
      const status = yield* notices.status
      const pending = yield* Queue.takeAll(queue)
      if (!status.listening) {
        entries.clear()
        session = -1
        return undefined
      }
      if (status.session !== session) {
        entries.clear()
        session = status.session
      }
      for (const heard of pending) apply(heard.notice, heard.heardAt)
      return yield* Clock.currentTimeMillis
    })

    /** What the view knows of `workspaceId` for a chat bound to `bound` (None: a lazy bind). */
    const hint = (workspaceId: WorkspaceId, bound: Option.Option<CurrentAgent>): Effect.Effect<Hint> =>
      Effect.map(catchUp, (now) => {
        if (now === undefined) return unknown
        const entry = entries.get(workspaceId)
        if (entry === undefined) return unknown
        // a use keeps the workspace in the LRU
        entries.delete(workspaceId)
        entries.set(workspaceId, entry)
        if (Option.isSome(bound) && !entry.superseded.includes(bound.value.buildId)) return unknown
        return Option.match(entry.current, {
          onNone: (): Hint => now - entry.heardAt <= stoppedTrustMillis ? { _tag: "Stopped" } : unknown,
          onSome: (current): Hint => ({ _tag: "Current", current })
        })
      })

    return { hint, size: Effect.sync(() => entries.size) }
  })

/** @internal */
export type View = Effect.Effect.Success<ReturnType<typeof make>>

/** @internal */
export type MakeView = Effect.Effect<View, never, Scope.Scope>
