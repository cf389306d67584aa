import type { AgentLookup, ChatId, LazyDial, SharedConnections, WorkspaceId } from "@lazydial/core"
import { AgentLookupError, CurrentAgent, NoCurrentAgent } from "@lazydial/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type { BindingStore, Expected, RecordResult } from "../BindingStore.js"
import type { ChatBinding } from "../ChatBinding.js"
import type { ChatConnection, ChatConnector, ChatRead, ConnectError } from "../ChatConnector.js"
import { type BindingStoreError, ChatHasNoWorkspace, type ChatNotFound, DialTimeout } from "../Errors.js"
import { makeAdmission } from "./admission.js"
import { countTurn, lookupsTotal, type TurnOutcome, type WriteResult } from "./decisions.js"
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
  /** Control of the shared connections under `LazyDial`; none when each dial is the turn's own. */
  readonly shared?: SharedConnections.SharedConnections["Service"] | undefined
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
            : Effect.succeed(result)
      )

    // With shared connections and a view, the view learns which agents this
    // connector's turns use, to drop their connections when it learns they
    // retired.
    const usedAgent = deps.shared !== undefined && deps.view !== undefined ? deps.view.usedAgent : undefined

    const writeResult = (result: Written): WriteResult => result._tag === "Recorded" ? "recorded" : "lost"

    // Dials `agent` of `workspaceId`. With a view that listens, an answer of
    // the directory (a read a notice prompted, or an observed lookup) saying
    // that `agent`'s build was superseded, or its workspace stopped, while the
    // dial is pending ends the validation delay at once. That is safe: the signal only moves core's lookup
    // earlier; the lookup and the identity handshake still decide, and any
    // write that follows is conditional. Without a view, no signal: core
    // behaves exactly as it would without notices.
    const dialAgent = (workspaceId: WorkspaceId, agent: CurrentAgent) => {
      const dial = lazyDial.dial({
        agentId: agent.agentId,
        workspaceId,
        validateNow: deps.view?.validateNow(workspaceId, agent)
      })
      return usedAgent === undefined ? dial : Effect.andThen(deps.view!.dialing(workspaceId, agent), dial)
    }

    // Dials `agentId`, and persists a switch conditionally on `agentId` still
    // being the bound agent.
    const dialBound = (
      chatId: ChatId,
      binding: ChatBinding,
      workspaceId: WorkspaceId,
      bound: CurrentAgent,
      lazyBind: boolean,
      write: WriteResult
    ): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> =>
      Effect.flatMap(dialAgent(workspaceId, bound), (result) => {
        const outcome: TurnOutcome = lazyBind ? "lazy_bind" : result.outcome
        const base = { chatId, connection: result.connection, workspaceId, outcome }
        if (!result.switched || Option.isNone(result.current)) {
          return Effect.succeed({ ...base, agentId: bound.agentId, buildId: bound.buildId, write, binding })
        }
        const current = result.current.value
        // The dial's own lookup says the bound agent is no longer the
        // workspace's: its shared connection (if one opened) must not serve
        // the next turn of another chat still bound to it.
        const dropBound = deps.shared !== undefined && current.agentId !== bound.agentId
          ? deps.shared.invalidate(bound.agentId)
          : Effect.void
        return Effect.map(
          Effect.andThen(dropBound, record(chatId, { workspaceId, agentId: Option.some(bound.agentId) }, current)),
          (written): ChatConnection => ({
            ...base,
            agentId: current.agentId,
            buildId: current.buildId,
            write: writeResult(written),
            binding: written.binding
          })
        )
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
      Effect.flatMap(dialAgent(workspaceId, newer), (result) => {
        const answered = result.switched && Option.isSome(result.current) ? result.current.value : newer
        return Effect.map(
          record(chatId, { workspaceId, agentId: Option.some(bound.agentId) }, answered),
          (written): ChatConnection => ({
            chatId,
            connection: result.connection,
            workspaceId,
            outcome: "switched_by_notice",
            agentId: answered.agentId,
            buildId: answered.buildId,
            write: writeResult(written),
            binding: written.binding
          })
        )
      })

    const hint = (workspaceId: WorkspaceId, bound: Option.Option<CurrentAgent>): Effect.Effect<Hint> =>
      deps.view === undefined ? Effect.succeed(unknownHint) : deps.view.hint(workspaceId, bound)

    // Written with flatMap, not Effect.gen: a generator suspended in a pending
    // dial holds its frame, about 0.7 KB per turn in flight.
    const fromBinding = (
      chatId: ChatId,
      binding: ChatBinding,
      lazyBindsLeft: number
    ): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> => {
      if (Option.isNone(binding.workspaceId)) return Effect.fail(new ChatHasNoWorkspace({ chatId }))
      const workspaceId = binding.workspaceId.value
      if (Option.isSome(binding.agentId) && Option.isSome(binding.buildId)) {
        const bound = new CurrentAgent({ agentId: binding.agentId.value, buildId: binding.buildId.value })
        return Effect.flatMap(hint(workspaceId, Option.some(bound)), (known) =>
          known._tag === "Stopped"
            ? Effect.fail(new NoCurrentAgent({ workspaceId }))
            : known._tag === "Current"
            ? switchByNotice(chatId, workspaceId, bound, known.current)
            : dialBound(chatId, binding, workspaceId, bound, false, "none"))
      }
      // Lazy bind: the build and agent come from one lookup, or from the view.
      return Effect.flatMap(hint(workspaceId, Option.none()), (known) =>
        known._tag === "Stopped"
          ? Effect.fail(new NoCurrentAgent({ workspaceId }))
          : Effect.flatMap(
            known._tag === "Current"
              ? Effect.succeedSome(known.current)
              : Effect.tap(lookup.current(workspaceId), Metric.update(lookupsTotal, 1)),
            Option.match({
              onNone: () => Effect.fail(new NoCurrentAgent({ workspaceId })),
              onSome: (current) =>
                Effect.flatMap(
                  record(chatId, { workspaceId, agentId: Option.none() }, current),
                  (written) =>
                    written._tag === "Lost" && lazyBindsLeft > 1
                      ? fromBinding(chatId, written.binding, lazyBindsLeft - 1)
                      : dialBound(chatId, written.binding, workspaceId, current, true, writeResult(written))
                )
            })
          ))
    }

    const timeoutMillis = Duration.toMillis(deps.dialTimeout)

    // Admission control: past `maxInFlight` connects, a turn waits for a permit,
    // and the wait counts against its dial timeout. Without it, 10,000 turns at
    // once on one process overran a 10 s timeout by 10-16 s: every turn made
    // progress, slowly, and the timers fired late on a saturated event loop.
    const admission = yield* makeAdmission(deps.maxInFlight, Math.max(1000, timeoutMillis / 4))

    // The timeout counts from the call of `connect`: under load a turn can wait
    // its turn on the event loop for a while, and that wait is part of what the
    // caller experiences. At the deadline the caller gets its DialTimeout at
    // once, waiting or admitted; the turn's fiber is interrupted in the
    // background (see `makeAdmission`).
    const connect = (chatId: ChatId): Effect.Effect<ChatConnection, ConnectError, Scope.Scope> =>
      Effect.clockWith((clock) =>
        admission(
          Effect.flatMap(store.get(chatId), (binding) => fromBinding(chatId, binding, maxLazyBinds)),
          clock.currentTimeMillisUnsafe() + timeoutMillis,
          (shed) => new DialTimeout(shed === undefined ? { chatId, timeoutMillis } : { chatId, timeoutMillis, shed })
        )
      ).pipe(
        Effect.tap((connection) =>
          Effect.andThen(
            usedAgent === undefined
              ? countTurn(connection.outcome, connection.write)
              : Effect.andThen(
                usedAgent(
                  connection.workspaceId,
                  new CurrentAgent({ agentId: connection.agentId, buildId: connection.buildId })
                ),
                countTurn(connection.outcome, connection.write)
              ),
            Effect.annotateCurrentSpan({
              "lazydial.outcome": connection.outcome,
              "lazydial.write": connection.write,
              "lazydial.agent_id": connection.agentId,
              "lazydial.build_id": connection.buildId
            })
          )
        ),
        // no stack trace: capturing one costs about 3 KB per turn in flight
        Effect.withSpan("ChatConnector.connect", { attributes: { "lazydial.chat_id": chatId } }, {
          captureStackTrace: false
        })
      )

    // No admission, no lookup, no write: one read of the row (batched with
    // the turns' reads on the SQL store), judged by the view.
    const read = (chatId: ChatId): Effect.Effect<ChatRead, ChatNotFound | BindingStoreError> =>
      Effect.flatMap(store.get(chatId), (binding): Effect.Effect<ChatRead> => {
        const view = deps.view
        if (Option.isNone(binding.workspaceId)) {
          return Effect.succeed({ binding, state: "unbound", current: Option.none() })
        }
        const workspaceId = binding.workspaceId.value
        if (Option.isNone(binding.agentId) || Option.isNone(binding.buildId)) {
          return view === undefined
            ? Effect.succeed({ binding, state: "unbound", current: Option.none() })
            : Effect.map(view.judgeStored(workspaceId, Option.none()), (judged): ChatRead => ({
              binding,
              state: "unbound",
              current: judged.current
            }))
        }
        if (view === undefined) return Effect.succeed({ binding, state: "unknown", current: Option.none() })
        const bound = new CurrentAgent({ agentId: binding.agentId.value, buildId: binding.buildId.value })
        return Effect.map(view.judgeStored(workspaceId, Option.some(bound)), (judged): ChatRead => ({
          binding,
          state: judged.state,
          current: judged.current
        }))
      }).pipe(Effect.withSpan("ChatConnector.read", { attributes: { "lazydial.chat_id": chatId } }, {
        captureStackTrace: false
      }))

    return { dialTimeout: deps.dialTimeout, connect, read }
  })
