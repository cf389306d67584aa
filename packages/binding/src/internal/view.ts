import { type BuildId, CurrentAgent, type SharedConnections, type WorkspaceId } from "@lazydial/core"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
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
 * How long a stop is trusted after it was last read or confirmed. A stop is
 * the one answer that makes no dial: a chat of a workspace whose restart notice
 * was lost would fail with `NoCurrentAgent` for as long as the view says
 * "stopped". Past this window the turn takes the lazy path, whose lookup
 * answer (through the directory) confirms the stop or moves the view on.
 *
 * @internal
 */
export const stoppedTrustMillis = 30_000

interface Entry {
  readonly order: number
  /** When a directory answer (a prompted read, or a lookup) last said this (Effect clock). */
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

/** The first `maxSupersededPerWorkspace` distinct build ids of `lists`, in order, but `except`. */
const superseded = (except: BuildId, ...lists: ReadonlyArray<ReadonlyArray<BuildId>>): ReadonlyArray<BuildId> => {
  const builds = new Set<BuildId>()
  for (const list of lists) {
    for (const buildId of list) {
      if (builds.size === maxSupersededPerWorkspace) return [...builds]
      if (buildId !== except) builds.add(buildId)
    }
  }
  return [...builds]
}

/**
 * The moving-forward rule, on its own so the tests and the simulation's model
 * use the very same one: an answer replaces the entry only with a higher order;
 * an older one only teaches that its build is superseded. The builds an
 * answer names as before it (the directory's, newest first) are superseded
 * too, whichever replica bound them.
 *
 * @internal
 */
export const applyNotice = (entry: Entry | undefined, notice: Notice, heardAt: number): Entry | undefined => {
  const current = notice.agentId === null
    ? Option.none()
    : Option.some(new CurrentAgent({ agentId: notice.agentId, buildId: notice.buildId }))
  if (entry === undefined) {
    return {
      order: notice.order,
      heardAt,
      buildId: notice.buildId,
      current,
      superseded: superseded(notice.buildId, notice.superseded)
    }
  }
  if (notice.order > entry.order) {
    return {
      order: notice.order,
      heardAt,
      buildId: notice.buildId,
      current,
      superseded: superseded(notice.buildId, notice.superseded, [entry.buildId], entry.superseded)
    }
  }
  const known = superseded(
    entry.buildId,
    entry.superseded,
    notice.order < entry.order ? [notice.buildId] : [],
    notice.superseded
  )
  const learned = known.length !== entry.superseded.length
  // the same build again: a confirmation
  if (notice.order === entry.order) return { ...entry, heardAt: Math.max(entry.heardAt, heardAt), superseded: known }
  return learned ? { ...entry, superseded: known } : undefined
}

/**
 * What the view says of a chat of a workspace whose entry is `entry`, bound
 * to `bound` (None: a lazy bind), at `now`: the one rule behind both a turn's
 * hint and the wake-up of a pending dial.
 */
const judge = (entry: Entry | undefined, bound: Option.Option<CurrentAgent>, now: number): Hint => {
  if (entry === undefined) return unknown
  // a chat bound to a build the view never saw superseded may be newer than the view
  if (Option.isSome(bound) && !entry.superseded.includes(bound.value.buildId)) return unknown
  return Option.match(entry.current, {
    onNone: (): Hint => now - entry.heardAt <= stoppedTrustMillis ? { _tag: "Stopped" } : unknown,
    onSome: (current): Hint => ({ _tag: "Current", current })
  })
}

/**
 * Whether the view knows `pair`'s agent is no longer its workspace's: its
 * build superseded, and the latest build not on the same agent.
 */
const retired = (entry: Entry | undefined, pair: CurrentAgent): boolean =>
  entry !== undefined && entry.superseded.includes(pair.buildId) &&
  !(Option.isSome(entry.current) && entry.current.value.agentId === pair.agentId)

/**
 * What the view says of a stored binding, for `ChatConnector.read`.
 *
 * @internal
 */
export interface Judgement {
  readonly state: "current" | "stale" | "stopped" | "unknown"
  readonly current: Option.Option<CurrentAgent>
}

const notJudged: Judgement = { state: "unknown", current: Option.none() }

/** A pending dial of `bound`, to wake when the view learns it is stale. */
interface Waiter {
  readonly bound: CurrentAgent
  readonly wake: () => void
}

/**
 * A connector's view: workspace → the latest (order, current agent or
 * stopped) it knows, in an LRU of `size` workspaces, from the directory's
 * answers only (`RebuildNotices` publishes nothing else). A turn reads the
 * answers queued since the last catch-up when it asks, and the view forgets
 * everything when the notices' session changes or listening stops.
 *
 * It also keeps the pending dials that asked to be woken (`whenStale`), by
 * workspace. Answers must reach them without a turn, so while at least one
 * waits, one fiber of the connector's Scope reads the answers as they come.
 * It is a fiber here, not a callback in `RebuildNotices`' publish path,
 * because (1) `RebuildNotices` stays a plain subscription, shared by every
 * connector of the process; (2) the view's work (the LRU, the waiters) does
 * not run on the LISTEN fiber or inside a lookup that `observe`s its answer;
 * and (3) like the admission sweeper, it lives only while a dial waits, so an
 * idle connector has no fiber, and a pending dial costs one set entry
 * (besides the watcher fiber core runs for its signal).
 *
 * @internal
 */
export const make = (
  notices: RebuildNotices["Service"],
  size: number,
  /** With shared connections, the view drops those of the agents it learns are retired. */
  shared?: SharedConnections.SharedConnections["Service"] | undefined
) =>
  Effect.gen(function*() {
    const queue = yield* notices.subscribe
    // A second subscription, only to learn that something was published: the
    // notices themselves are read from `queue` by `catchUp`, in order, so a
    // turn that asks never misses one that the fiber has taken but not yet
    // applied. Every catch-up empties it too: it never holds more than
    // `queue`, and so never keeps the shared PubSub full.
    const doorbell = yield* notices.subscribe
    const runFork = yield* FiberSet.makeRuntime<never, void, never>()
    const entries = new Map<WorkspaceId, Entry>()
    const waiters = new Map<WorkspaceId, Set<Waiter>>()
    // The workspaces of the turns this view served lately, known or not: a
    // replica that only dialed a chat's bound agent (another replica bound
    // it) must still read the workspace when a notice names it, so that a
    // stop reaches it. An LRU of as many as the view.
    const served = new Set<WorkspaceId>()
    // With shared connections: the agents this connector's turns used lately,
    // by workspace (an LRU of as many workspaces as the view, at most
    // `maxSupersededPerWorkspace` + 1 agents each). When an answer of the
    // directory shows one of them retired, its shared connection is dropped.
    // These are the agents of this process's connections, not a view of the
    // directory: forgetting the view keeps them.
    const used = new Map<WorkspaceId, Array<CurrentAgent>>()
    // A notice of a workspace this view neither holds, waits on nor served
    // lately makes no read: the view could do nothing with the answer.
    yield* notices.track((workspaceId) =>
      entries.has(workspaceId) || waiters.has(workspaceId) || served.has(workspaceId)
    )
    let waiting = 0
    let reader: Fiber.Fiber<void> | undefined
    let session = -1

    const apply = (notice: Notice, now: number) => {
      const before = entries.get(notice.workspaceId)
      const after = applyNotice(before, notice, now)
      if (after === undefined) return
      entries.delete(notice.workspaceId)
      entries.set(notice.workspaceId, after)
      if (entries.size > size) entries.delete(entries.keys().next().value!)
    }

    const stopReaderIfIdle = () => {
      // with shared connections the reader runs for the view's lifetime (below)
      if (waiting > 0 || reader === undefined || shared !== undefined) return
      reader.interruptUnsafe()
      reader = undefined
    }

    const removeWaiter = (workspaceId: WorkspaceId, waiter: Waiter): boolean => {
      const set = waiters.get(workspaceId)
      if (set === undefined || !set.delete(waiter)) return false
      if (set.size === 0) waiters.delete(workspaceId)
      waiting--
      stopReaderIfIdle()
      return true
    }

    /** Wakes the waiters of `workspaces` that the view now judges stale. */
    const wakeStale = (workspaces: Iterable<WorkspaceId>, now: number) => {
      for (const workspaceId of workspaces) {
        const set = waiters.get(workspaceId)
        if (set === undefined) continue
        const entry = entries.get(workspaceId)
        for (const waiter of set) {
          if (judge(entry, Option.some(waiter.bound), now)._tag === "Unknown") continue
          removeWaiter(workspaceId, waiter)
          waiter.wake()
        }
      }
    }

    /** Takes out of `used` the agents of `workspaceId` that `entry` shows retired, and drops their connections. */
    const dropRetired = (workspaceId: WorkspaceId, entry: Entry | undefined): Effect.Effect<void> => {
      const pairs = used.get(workspaceId)
      if (shared === undefined || pairs === undefined || entry === undefined) return Effect.void
      const gone = pairs.filter((pair) => retired(entry, pair))
      if (gone.length === 0) return Effect.void
      if (gone.length === pairs.length) used.delete(workspaceId)
      else used.set(workspaceId, pairs.filter((pair) => !retired(entry, pair)))
      return Effect.forEach(gone, (pair) => shared.invalidate(pair.agentId), { discard: true })
    }

    /** Notes that a turn of `workspaceId` dials, or used, `pair`'s agent (most recent first). */
    const note = (workspaceId: WorkspaceId, pair: CurrentAgent) => {
      const pairs = used.get(workspaceId) ?? []
      used.delete(workspaceId)
      used.set(
        workspaceId,
        [pair, ...pairs.filter((p) => p.agentId !== pair.agentId || p.buildId !== pair.buildId)]
          .slice(0, maxSupersededPerWorkspace + 1)
      )
      if (used.size > size) used.delete(used.keys().next().value!)
    }

    // Uninterruptible: the reader fiber is interrupted when the last waiter
    // leaves, and notices taken from the queue must be applied, not dropped.
    const catchUp = Effect.uninterruptible(Effect.gen(function*() {
      const status = yield* notices.status
      // `takeUpTo`, not `takeAll`: Effect 4's `takeAll` waits for a first notice
      const pending = yield* PubSub.takeUpTo(queue, Number.POSITIVE_INFINITY)
      yield* PubSub.takeUpTo(doorbell, Number.POSITIVE_INFINITY)
      if (!status.listening) {
        entries.clear()
        session = -1
        // The view cannot be trusted, but each answer is still the
        // directory's: the agents it shows retired lose their connections.
        if (shared !== undefined && used.size > 0) {
          for (const heard of pending) {
            yield* dropRetired(heard.notice.workspaceId, applyNotice(undefined, heard.notice, heard.heardAt))
          }
        }
        return undefined
      }
      if (status.session !== session) {
        // Forgetting wakes nobody: it teaches nothing about a bound build.
        entries.clear()
        session = status.session
      }
      const now = yield* Clock.currentTimeMillis
      const touched = new Set<WorkspaceId>()
      for (const heard of pending) {
        apply(heard.notice, heard.heardAt)
        touched.add(heard.notice.workspaceId)
      }
      if (waiting > 0) wakeStale(touched, now)
      if (shared !== undefined && used.size > 0) {
        for (const workspaceId of touched) yield* dropRetired(workspaceId, entries.get(workspaceId))
      }
      return now
    }))

    // Reads notices as they are published, while a dial waits.
    const read: Effect.Effect<void> = Effect.forever(Effect.andThen(PubSub.take(doorbell), catchUp))

    /** What the view knows of `workspaceId` for a chat bound to `bound` (None: a lazy bind). */
    const hint = (workspaceId: WorkspaceId, bound: Option.Option<CurrentAgent>): Effect.Effect<Hint> =>
      Effect.map(catchUp, (now) => {
        served.delete(workspaceId)
        served.add(workspaceId)
        if (served.size > size) served.delete(served.values().next().value!)
        if (now === undefined) return unknown
        const entry = entries.get(workspaceId)
        if (entry === undefined) return unknown
        // a use keeps the workspace in the LRU
        entries.delete(workspaceId)
        entries.set(workspaceId, entry)
        return judge(entry, bound, now)
      })

    /**
     * Notes, before a dial, that a turn of `workspaceId` dials `pair`'s agent:
     * a connection it opens is dropped when the view learns the agent retired,
     * even if the turn does not end (interrupted, timed out) while its dial
     * goes on. Nothing without shared connections.
     */
    const dialing = (workspaceId: WorkspaceId, pair: CurrentAgent): Effect.Effect<void> =>
      shared === undefined ? Effect.void : Effect.sync(() => note(workspaceId, pair))

    /**
     * Notes, after a turn connected, the agent that answered (core may have
     * switched to one the connector did not dial itself); its connection is
     * dropped at once if the view learned meanwhile that it retired.
     */
    const usedAgent = (workspaceId: WorkspaceId, pair: CurrentAgent): Effect.Effect<void> =>
      shared === undefined ? Effect.void : Effect.flatMap(catchUp, (now) => {
        if (now !== undefined && retired(entries.get(workspaceId), pair)) return shared.invalidate(pair.agentId)
        note(workspaceId, pair)
        return Effect.void
      })

    /**
     * What the view says of a stored binding (`bound`; None: no agent), with no
     * side effect but catching up: it neither tracks the workspace nor
     * refreshes it in the LRU (a read is not a turn).
     */
    const judgeStored = (workspaceId: WorkspaceId, bound: Option.Option<CurrentAgent>): Effect.Effect<Judgement> =>
      Effect.map(catchUp, (now): Judgement => {
        if (now === undefined) return notJudged
        const entry = entries.get(workspaceId)
        if (entry === undefined) return notJudged
        if (Option.isSome(bound) && entry.buildId === bound.value.buildId) {
          return { state: "current", current: bound }
        }
        const hint = judge(entry, bound, now)
        return hint._tag === "Current"
          ? { state: "stale", current: Option.some(hint.current) }
          : hint._tag === "Stopped"
          ? { state: "stopped", current: Option.none() }
          : notJudged
      })

    /**
     * Completes when the view learns, from a prompted read or an observed lookup
     * answer, that `bound` is stale: exactly when `hint(workspaceId,
     * Some(bound))` stops being `Unknown`; at once if it already has. Meant
     * as the dial's `validateNow`: an interrupted wait leaves no waiter.
     */
    const whenStale = (workspaceId: WorkspaceId, bound: CurrentAgent): Effect.Effect<void> =>
      Effect.flatMap(catchUp, (now) =>
        now !== undefined && judge(entries.get(workspaceId), Option.some(bound), now)._tag !== "Unknown"
          ? Effect.void
          : Effect.callback<void>((resume) => {
            const waiter: Waiter = {
              bound,
              wake: () => resume(Effect.void)
            }
            const set = waiters.get(workspaceId) ?? new Set()
            set.add(waiter)
            waiters.set(workspaceId, set)
            waiting++
            // The reader belongs to the Scope of the connector's Layer, and runs
            // on its runtime (its Clock: TestClock in tests); interruptible
            // whatever the waiter's region, so that the last waiter stops it.
            if (reader === undefined) reader = runFork(Effect.interruptible(read))
            return Effect.sync(() => {
              removeWaiter(workspaceId, waiter)
            })
          }))

    /**
     * The dial's early-validation signal for `bound`, or none while the view
     * does not listen (`layerNone`, or LISTEN lost as of the last catch-up):
     * such a view learns nothing, and the dial behaves exactly as without one.
     */
    const validateNow = (workspaceId: WorkspaceId, bound: CurrentAgent): Effect.Effect<void> | undefined =>
      session === -1 ? undefined : whenStale(workspaceId, bound)

    // With shared connections, a retired agent's connection is dropped when the
    // directory's answer arrives, not at the next turn of its workspace: the
    // reader runs for the view's lifetime (one fiber of the connector's Scope).
    if (shared !== undefined) reader = runFork(Effect.interruptible(read))

    return {
      hint,
      whenStale,
      dialing,
      usedAgent,
      judgeStored,
      validateNow,
      size: Effect.sync(() => entries.size),
      /** Pending dials waiting for an answer; 0 once every dial has settled. */
      waiters: Effect.sync(() => waiting)
    }
  })

/** @internal */
export type View = Effect.Success<ReturnType<typeof make>>

/** @internal */
export type MakeView = Effect.Effect<View, never, Scope.Scope>
