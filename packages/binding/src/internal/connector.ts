import type { AgentLookup, ChatId, LazyDial, WorkspaceId } from "@lazydial/core"
import { AgentLookupError, CurrentAgent, NoCurrentAgent } from "@lazydial/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { BindingStore, Expected, RecordResult } from "../BindingStore.js"
import type { ChatBinding } from "../ChatBinding.js"
import type { ChatConnection, ChatConnector, ConnectError } from "../ChatConnector.js"
import { type BindingStoreError, ChatHasNoWorkspace, type ChatNotFound, DialTimeout } from "../Errors.js"
import { makeAdmission, type Shed } from "./admission.js"
import { timeoutDetached } from "./deadline.js"
import { decide, lookupsTotal, type WriteResult } from "./decisions.js"
import { makeTurnSharing } from "./turnSharing.js"
import type { Hint, View } from "./view.js"

const unknownHint: Hint = { _tag: "Unknown" }

type Written = Exclude<RecordResult, { readonly _tag: "Refused" }>

// A lazy bind that loses its write re-reads and starts again; this bounds
// the restarts when the row keeps changing under it.
const maxLazyBinds = 3

/**
 * The turn path: read the row, dial the bound agent or bind lazily, and write
 * a switch or a bind back conditionally. Admission and per-turn sharing wrap
 * it; the admission sweeper lives in the Scope this runs in (the Layer's).
 *
 * @internal
 */
export const make = (deps: {
  readonly dialTimeout: Duration.Duration
  readonly maxInFlight: number
  readonly store: BindingStore["Service"]
  readonly lazyDial: LazyDial.LazyDial["Service"]
  readonly lookup: AgentLookup.AgentLookup["Service"]
  /** The view of rebuild notices; none without `RebuildNotices`. */
  readonly view?: View | undefined
}): Effect.Effect<ChatConnector["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const { lazyDial, lookup, store } = deps

    // A refused write (the directory holds no such pair for the workspace)
    // fails the turn, once: the agent is not the workspace's, so its
    // connection is not used, and asking the same lookup again would give the
    // same answer. It happens only when the lookup does not read the
    // directory that the store checks.
    const record = (
      chatId: ChatId,
      expected: Expected,
      current: CurrentAgent
    ): Effect.Effect<Written, ChatNotFound | BindingStoreError | AgentLookupError> =>
      Effect.flatMap(
        store.recordAgent(chatId, { expected, current }),
        (result: RecordResult) =>
          result._tag === "Refused"
            ? Effect.andThen(
              Effect.annotateCurrentSpan("lazydial.repair", "refused"),
              Effect.fail(
                new AgentLookupError({
                  workspaceId: expected.workspaceId,
                  detail: `the directory holds no build ${current.buildId} with agent ${current.agentId} for ` +
                    "this workspace, so the chat was not bound to it and the agent is not used; check that the " +
                    "agent lookup reads the directory the binding store checks"
                })
              )
            )
            : Effect.as(result._tag === "Lost" ? decide("repair_lost") : Effect.void, result)
      )

    const writeResult = (result: Written): WriteResult => result._tag === "Recorded" ? "recorded" : "lost"

    // Dials `agent` of `workspaceId`. With a view that listens, an answer of
    // the directory (a read a notice prompted, or an observed lookup) saying
    // that `agent`'s build was superseded, or its workspace stopped, while the
    // dial is pending ends the validation delay at once. That is safe: the signal only moves core's lookup
    // earlier; the lookup and the identity handshake still decide, and any
    // write that follows is conditional. Without a view, no signal: core
    // behaves exactly as it would without notices.
    const dialAgent = (workspaceId: WorkspaceId, agent: CurrentAgent) =>
      lazyDial.dial({ agentId: agent.agentId, workspaceId, validateNow: deps.view?.validateNow(workspaceId, agent) })

    // Dials `agentId`, and persists a switch conditionally on `agentId` still
    // being the bound agent.
    const dialBound = (
      chatId: ChatId,
      binding: ChatBinding,
      workspaceId: WorkspaceId,
      bound: CurrentAgent,
      path: "hot" | "lazy_bind",
      write: WriteResult
    ): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> =>
      Effect.gen(function*() {
        const result = yield* dialAgent(workspaceId, bound)
        const base = { chatId, connection: result.connection, workspaceId }
        if (!result.switched || Option.isNone(result.current)) {
          if (path === "hot") yield* decide("hot")
          return {
            ...base,
            outcome: path === "hot" ? result.outcome : path,
            agentId: bound.agentId,
            buildId: bound.buildId,
            path,
            write,
            binding
          }
        }
        const current = result.current.value
        if (path === "hot") yield* decide("switched")
        const written = yield* record(chatId, { workspaceId, agentId: Option.some(bound.agentId) }, current)
        return {
          ...base,
          outcome: path === "hot" ? result.outcome : path,
          agentId: current.agentId,
          buildId: current.buildId,
          path: path === "hot" ? "switched" : path,
          write: writeResult(written),
          binding: written.binding
        }
      })

    // The view knows a newer agent than the bound one: dial it at once, with
    // no lookup and no delay. The dial still validates it (a newer agent that
    // is slow or gone makes core look up), and the write is conditional on the
    // bound agent, so a hint never overrides a concurrent writer.
    const switchByNotice = (
      chatId: ChatId,
      workspaceId: WorkspaceId,
      bound: CurrentAgent,
      newer: CurrentAgent
    ): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> =>
      Effect.gen(function*() {
        yield* decide("switched_by_notice")
        const result = yield* dialAgent(workspaceId, newer)
        const answered = result.switched && Option.isSome(result.current) ? result.current.value : newer
        const written = yield* record(chatId, { workspaceId, agentId: Option.some(bound.agentId) }, answered)
        return {
          chatId,
          connection: result.connection,
          workspaceId,
          outcome: "switched_by_notice",
          agentId: answered.agentId,
          buildId: answered.buildId,
          path: "switched_by_notice",
          write: writeResult(written),
          binding: written.binding
        }
      })

    const hint = (workspaceId: WorkspaceId, bound: Option.Option<CurrentAgent>): Effect.Effect<Hint> =>
      deps.view === undefined ? Effect.succeed(unknownHint) : deps.view.hint(workspaceId, bound)

    const fromBinding = (
      chatId: ChatId,
      binding: ChatBinding,
      lazyBindsLeft: number
    ): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> =>
      Effect.gen(function*() {
        if (Option.isNone(binding.workspaceId)) return yield* new ChatHasNoWorkspace({ chatId })
        const workspaceId = binding.workspaceId.value
        if (Option.isSome(binding.agentId) && Option.isSome(binding.buildId)) {
          const bound = new CurrentAgent({ agentId: binding.agentId.value, buildId: binding.buildId.value })
          const known = yield* hint(workspaceId, Option.some(bound))
          if (known._tag === "Stopped") return yield* new NoCurrentAgent({ workspaceId })
          if (known._tag === "Current") return yield* switchByNotice(chatId, workspaceId, bound, known.current)
          return yield* dialBound(chatId, binding, workspaceId, bound, "hot", "none")
        }

        // Lazy bind: the build and agent come from one lookup, or from the view.
        yield* decide("lazy_bind")
        const known = yield* hint(workspaceId, Option.none())
        if (known._tag === "Stopped") return yield* new NoCurrentAgent({ workspaceId })
        const current = known._tag === "Current"
          ? Option.some(known.current)
          : yield* Effect.tap(lookup.current(workspaceId), Metric.update(lookupsTotal, 1))
        if (Option.isNone(current)) return yield* new NoCurrentAgent({ workspaceId })
        const written = yield* record(chatId, { workspaceId, agentId: Option.none() }, current.value)
        if (written._tag === "Lost" && lazyBindsLeft > 1) {
          return yield* fromBinding(chatId, written.binding, lazyBindsLeft - 1)
        }
        return yield* dialBound(chatId, written.binding, workspaceId, current.value, "lazy_bind", writeResult(written))
      })

    const timeoutMillis = Duration.toMillis(deps.dialTimeout)

    // Admission control: past `maxInFlight` connects, a turn waits for a permit,
    // and the wait counts against its dial timeout. Without it, 10,000 turns at
    // once on one process overran a 10 s timeout by 10-16 s: every turn made
    // progress, slowly, and the timers fired late on a saturated event loop.
    const admission = yield* makeAdmission(deps.maxInFlight, Math.max(1000, timeoutMillis / 4))

    // The timeout counts from the call of `connect`, not from the start of the
    // dial's fiber: under load a forked fiber can wait its turn on the event loop
    // for a while, and that wait is part of what the caller experiences. A turn
    // that waits for a permit past its deadline is turned away by the admission
    // queue; an admitted one races the rest of its budget.
    const connectOnce = (
      chatId: ChatId,
      calledAtMillis: number
    ): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> => {
      const deadlineMillis = calledAtMillis + timeoutMillis
      const timedOut = () => new DialTimeout({ chatId, timeoutMillis })
      const turnedAway = (shed: Shed | undefined) =>
        shed === undefined ? timedOut() : new DialTimeout({ chatId, timeoutMillis, shed })
      const dial = Effect.flatMap(store.get(chatId), (binding) => fromBinding(chatId, binding, maxLazyBinds))
      return admission(
        Effect.clockWith((clock) =>
          // At the deadline the caller gets its DialTimeout at once; the dial
          // is interrupted in the background. Waiting for it would add the
          // time to cancel its work: a cancelled PostgreSQL query sends a
          // cancel request and drains its connection, and on Effect 3's pg
          // pool timeouts under load ended seconds late.
          timeoutDetached(dial, Math.max(0, deadlineMillis - clock.currentTimeMillisUnsafe()), timedOut)
        ),
        deadlineMillis,
        turnedAway
      ).pipe(
        Effect.tap((connection) =>
          Effect.annotateCurrentSpan({
            "lazydial.agent_id": connection.agentId,
            "lazydial.build_id": connection.buildId,
            "lazydial.write": connection.write
          })
        ),
        Effect.withSpan("ChatConnector.dial", { attributes: { "lazydial.chat_id": chatId } })
      )
    }

    const connect = makeTurnSharing(connectOnce)

    return { dialTimeout: deps.dialTimeout, connect }
  })
