/**
 * The turn path: connect a chat to its agent, using the binding the chat
 * remembers, and keep that binding fresh.
 *
 * ## Outcomes (`TurnOutcome`)
 *
 * | outcome | when | lookups | write |
 * |---|---|---|---|
 * | `fast`, `confirmed`, `retried`, `lookup_failed_kept` (core's) | an agent is bound and the dial keeps it | 0 when the agent answers before the validation delay | none |
 * | `switched` | an agent is bound and the dial switched to the workspace's current agent | 1, inside the dial | conditional: `{ buildId, agentId }` of that same lookup |
 * | `lazy_bind` | the chat has a workspace but no agent (new chat, workspace change) | 1; 0 when the view knows the current agent | conditional, then the dial |
 * | `switched_by_notice` | the view knows, from the directory, that the bound build was superseded (a read a rebuild's notice prompted, or a lookup answer): the newer agent is dialed at once, with no delay | 0 unless the newer agent is slow or gone | conditional: the agent that answered |
 *
 * ## The view (with `RebuildNotices`)
 *
 * When a `RebuildNotices` service is in the context, the connector keeps a
 * view: workspace → the latest build it knows (order number, agent or
 * stopped) and the builds before it, from the directory's answers only (the
 * reads that notices prompt, and lookup answers; a notice itself is only a
 * hint to read), in an LRU of `viewSize` workspaces (default 10,000). It
 * moves forward only, by order number. It is a hint: what it picks is still
 * dialed (the identity handshake, and core's validation when slow) and
 * written conditionally. The workspaces of the turns it serves are tracked,
 * so that a notice of one of them makes this replica read it, whoever bound
 * the chat. A workspace the view knows as stopped fails with `NoCurrentAgent`
 * at once, with no dial and no lookup, but only for a lazy bind or a chat
 * bound to a build known superseded (the directory's answers name the 8
 * builds before the latest; a chat bound to a build the view does not know
 * may be newer than the view, and takes the lazy path), and only within 30
 * seconds of the stop being read or confirmed, since a stop makes no dial
 * that could correct it. When listening stops, or starts a new session, the
 * view forgets everything and every turn validates lazily.
 *
 * With a listening view, every dial is given core's `validateNow` signal: an
 * answer of the directory (a read a notice prompted, or an observed lookup)
 * saying the dialed build was superseded, or its workspace stopped, while the
 * dial is pending ends the validation delay at once. Core's lookup and the identity handshake still
 * decide, and the write stays conditional. Without a listening view no
 * signal is passed, and core behaves as without notices.
 *
 * A conditional write that loses to a concurrent writer (a workspace change, or
 * another replica's repair) writes nothing and is counted as `repair_lost`. A
 * write the store refuses (the directory holds no such build and agent for
 * the workspace: the lookup does not read the directory the store checks)
 * fails the turn once with `AgentLookupError`: that agent is not used, and
 * the turn does not look up again. A
 * lost repair keeps the connection it dialed; a lost lazy bind starts again
 * from the row it re-read (at most 3 times), so a chat whose workspace was
 * just changed dials the new workspace.
 *
 * ## Shared connections (with core's `SharedConnections`)
 *
 * When a `SharedConnections` service is in the context (the same one that
 * lends connections to `LazyDial`), a steady-state turn borrows the agent's
 * live connection (core's `fast`, no dial), and the connector drops a
 * connection whose agent the directory retired: the view notes the agents its
 * turns dial, and when a directory answer (a read a notice prompted, or an
 * observed lookup; never a notice alone) shows one superseded or its
 * workspace stopped, it calls `invalidate` at once, with no turn (its reader
 * fiber then runs for the connector's life). A `switched` turn drops the bound
 * agent's connection too. A borrowed connection that turns out dead (its probe
 * fails) is dialed afresh inside the same `LazyDial.dial`: the same outcome
 * table, the same conditional write. Without `SharedConnections` each turn
 * dials, as before.
 *
 * ## Reading a binding (`read`)
 *
 * `read(chatId)` answers the stored row and what this replica's view says of
 * it (`BindingState`: `current`, `stale` with the newer pair, `stopped`,
 * `unknown`, `unbound`): one read of the row, no write, no lookup, no dial.
 *
 * ## Errors
 *
 * - `ChatNotFound`: no such chat.
 * - `ChatHasNoWorkspace`: the chat has no workspace.
 * - `NoCurrentAgent`: the workspace is stopped.
 * - `DialTimeout`: the whole connect, counted from the call, took longer than
 *   the dial timeout (`dialTimeout`, 30 seconds), or, under
 *   overload, the turn was shed while waiting for admission because it could
 *   not have connected in time (its `shed` field is set). An interrupted
 *   caller is interrupted, never a `DialTimeout`.
 * - `AgentDialError`, `AgentLookupError`, `BindingStoreError`, as they come.
 *
 * ## A turn is a Scope
 *
 * The connection lives in the caller's Scope and is released when it closes.
 * Each call of `connect` dials (or borrows a shared connection, above): two
 * calls in one Scope make two dials (no caller shares a Scope between
 * connects, so the sharing of a dial that 0.1 paid on every turn is gone).
 *
 * @since 0.1.0
 */
import type { InvalidOption } from "@lazydial/core"
import {
  type AgentConnection,
  type AgentDialError,
  type AgentId,
  AgentLookup,
  type AgentLookupError,
  type BuildId,
  type ChatId,
  type CurrentAgent,
  LazyDial,
  type NoCurrentAgent,
  SharedConnections,
  type WorkspaceId
} from "@lazydial/core"
import { Options as CoreOptions } from "@lazydial/core"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { BindingStore } from "./BindingStore.js"
import type { ChatBinding } from "./ChatBinding.js"
import type { BindingStoreError, ChatHasNoWorkspace, ChatNotFound, DialTimeout } from "./Errors.js"
import * as internal from "./internal/connector.js"
import * as internalDecisions from "./internal/decisions.js"
import * as internalView from "./internal/view.js"
import { RebuildNotices } from "./RebuildNotices.js"

/**
 * How a turn that connected ended: the one list of these names. Core's
 * outcomes of a dial of the bound agent come first (`fast`, `confirmed`,
 * `lookup_failed_kept`, `retried`: the bound agent answered and was kept;
 * `switched`: the dial switched to the workspace's current agent, and the
 * repair was written conditionally), then binding's own paths, where the
 * connector chose the agent before it dialed: `lazy_bind` (the chat had no
 * agent: looked up, or known from the view, and recorded) and
 * `switched_by_notice` (the view knew the bound build was superseded). It is
 * derived from core's `LazyDial.outcomes`, so a name changed there changes
 * here; the `TurnOutcome` type and Schema, the `outcome` label of
 * `turnsTotal` and the `lazydial.outcome` attribute of the
 * `ChatConnector.connect` span are derived from it.
 *
 * @since 0.2.0
 * @category vocabulary
 */
export const turnOutcomes: readonly [...typeof LazyDial.outcomes, "lazy_bind", "switched_by_notice"] =
  internalDecisions.turnOutcomes

/**
 * `TurnOutcome` as a Schema: for an API, a report or a log that carries it.
 *
 * @since 0.2.0
 * @category schemas
 */
export const TurnOutcome: Schema.Literals<typeof turnOutcomes> = Schema.Literals(turnOutcomes)

/**
 * @since 0.2.0
 * @category models
 */
export type TurnOutcome = typeof TurnOutcome.Type

/**
 * What the last binding write of the connect did.
 *
 * @since 0.1.0
 * @category vocabulary
 */
export const writeResults: typeof internalDecisions.writeResults = internalDecisions.writeResults

/**
 * @since 0.1.0
 * @category models
 */
export const WriteResult: Schema.Literals<typeof writeResults> = Schema.Literals(writeResults)

/**
 * @since 0.1.0
 * @category models
 */
export type WriteResult = typeof WriteResult.Type

/**
 * A chat's connection for one turn.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChatConnection {
  readonly chatId: ChatId
  /** Owned by the turn's Scope. */
  readonly connection: AgentConnection
  readonly workspaceId: WorkspaceId
  /** The agent that answered, and the build that owns it. */
  readonly agentId: AgentId
  readonly buildId: BuildId
  /** How the turn ended. */
  readonly outcome: TurnOutcome
  readonly write: WriteResult
  /** The binding as last read or written. After a lost write, the row as the winner left it. */
  readonly binding: ChatBinding
}

/**
 * @since 0.1.0
 * @category models
 */
export type ConnectError =
  | ChatNotFound
  | ChatHasNoWorkspace
  | NoCurrentAgent
  | DialTimeout
  | AgentDialError
  | AgentLookupError
  | BindingStoreError

/**
 * What this replica's view says of a chat's stored binding, as `read` answers
 * it: the one list of these names.
 *
 * - `current`: the view's latest build of the workspace is the bound one.
 * - `stale`: the view knows, from the directory, that the bound build was
 *   superseded; `current` names the newer agent and build.
 * - `stopped`: the view knows that the workspace stopped after the bound
 *   build (read within `stoppedTrust`, as a turn trusts it).
 * - `unknown`: the view cannot judge: no view (no `RebuildNotices`), not
 *   listening, the workspace not in the view, or a bound build the view does
 *   not know (it may be newer than the view).
 * - `unbound`: the chat has no agent (or no workspace); `current` names the
 *   view's current agent of the workspace when it knows one.
 *
 * @since 0.2.0
 * @category vocabulary
 */
export const bindingStates: typeof internalDecisions.bindingStates = internalDecisions.bindingStates

/**
 * `BindingState` as a Schema: for an API that carries it.
 *
 * @since 0.2.0
 * @category schemas
 */
export const BindingState: Schema.Literals<typeof bindingStates> = Schema.Literals(bindingStates)

/**
 * @since 0.2.0
 * @category models
 */
export type BindingState = typeof BindingState.Type

/**
 * A chat's stored binding, judged by this replica's view: `read`'s answer.
 *
 * @since 0.2.0
 * @category models
 */
export interface ChatRead {
  /** The row as stored; `read` never changes it. */
  readonly binding: ChatBinding
  readonly state: BindingState
  /**
   * The workspace's current agent and build as the view knows them: the bound
   * pair when `current`, the newer pair when `stale`, the view's current pair
   * (if any) when `unbound`; None when `stopped` or `unknown`.
   */
  readonly current: Option.Option<CurrentAgent>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class ChatConnector extends Context.Service<ChatConnector, {
  readonly dialTimeout: Duration.Duration
  readonly connect: (chatId: ChatId) => Effect.Effect<ChatConnection, ConnectError, Scope.Scope>
  /**
   * The stored binding and what this replica's view says of it: one read of
   * the row, no write, no lookup, no dial. The view's answer is a hint, as
   * for a turn: it holds only the directory's answers, and may lag them.
   */
  readonly read: (chatId: ChatId) => Effect.Effect<ChatRead, ChatNotFound | BindingStoreError>
}>()("@lazydial/binding/ChatConnector") {}

/**
 * The default dial timeout.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultDialTimeout: Duration.Duration = Duration.seconds(30)

/**
 * The largest dial timeout a Layer accepts.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxDialTimeout: Duration.Duration = Duration.minutes(10)

/**
 * The default and largest number of connects in progress at once, per
 * connector (admission control).
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxInFlight = 256

/**
 * @since 0.1.0
 * @category constants
 */
export const maxMaxInFlight = 100_000

/**
 * The default number of workspaces in a connector's view of rebuild notices.
 * An entry is a workspace id, an order number, the current agent and build,
 * and up to 8 superseded build ids: well under 1 KiB, so the default view
 * stays under 10 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultViewSize = 10_000

/**
 * @since 0.1.0
 * @category constants
 */
export const maxViewSize = 1_000_000

/**
 * How long a stop the view heard is trusted: within it, a turn of that
 * workspace fails with `NoCurrentAgent` at once; past it, the turn looks up.
 *
 * @since 0.1.0
 * @category constants
 */
export const stoppedTrust: Duration.Duration = Duration.millis(internalView.stoppedTrustMillis)

/**
 * The options of `layer`; each is range-checked when the Layer is built, and
 * a refused value fails it with an `InvalidOption` that names the option.
 *
 * @since 0.2.0
 * @category models
 */
export interface Options {
  /** The whole connect, from the call (above 0, at most 10 minutes). Default 30 seconds. */
  readonly dialTimeout?: Duration.Input | undefined
  /** Connects in progress at once; more wait, within their dial timeout, or are shed under overload. Default 256. */
  readonly maxInFlight?: number | undefined
  /** Workspaces the view of rebuild notices keeps (LRU). Default 10,000; used only with `RebuildNotices`. */
  readonly viewSize?: number | undefined
}

/**
 * Builds the service. The validation delay is the `LazyDial` service's. The
 * admission queue's sweeper fiber belongs to the Scope: closing it stops the
 * sweeper.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: Options): Effect.Effect<
  ChatConnector["Service"],
  InvalidOption,
  BindingStore | LazyDial.LazyDial | AgentLookup.AgentLookup | Scope.Scope
> =>
  Effect.gen(function*() {
    const dialTimeout = yield* CoreOptions.boundedDuration(
      "dialTimeout",
      options?.dialTimeout ?? defaultDialTimeout,
      maxDialTimeout,
      { allowZero: false }
    )
    const count = { min: 1, integer: true }
    const maxInFlight = yield* CoreOptions.boundedNumber(
      "maxInFlight",
      options?.maxInFlight ?? defaultMaxInFlight,
      count.min,
      maxMaxInFlight,
      count
    )
    const viewSize = yield* CoreOptions.boundedNumber(
      "viewSize",
      options?.viewSize ?? defaultViewSize,
      1,
      maxViewSize,
      count
    )
    const notices = yield* Effect.serviceOption(RebuildNotices)
    const shared = yield* Effect.serviceOption(SharedConnections.SharedConnections)
    return yield* internal.make({
      dialTimeout,
      maxInFlight,
      view: Option.isSome(notices)
        ? yield* internalView.make(notices.value, viewSize, Option.getOrUndefined(shared))
        : undefined,
      shared: Option.getOrUndefined(shared),
      store: yield* BindingStore,
      lazyDial: yield* LazyDial.LazyDial,
      lookup: yield* AgentLookup.AgentLookup
    })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<ChatConnector, InvalidOption, BindingStore | LazyDial.LazyDial | AgentLookup.AgentLookup> =>
  Layer.effect(ChatConnector, make(options))

/**
 * `layer`, with its options read from configuration whose names the caller
 * picks, as Effect's own packages take theirs (`PgClient.layerConfig`). Read
 * the timeout with core's `Options.durationConfig` and the counts with
 * `Options.numberConfig`, so that a bad value fails with a `ConfigError`
 * naming its variable, and wrap each in `Options.optional`, so that an unset
 * variable means the default. Provide `LazyDial.layerConfig` for the
 * validation delay.
 *
 * @example
 * ```ts
 * import { ChatConnector } from "@lazydial/binding"
 * import { Options as CoreOptions } from "@lazydial/core"
 *
 * const connector = ChatConnector.layerConfig({
 *   dialTimeout: Options.optional(
 *     Options.durationConfig("MY_DIAL_TIMEOUT", { max: ChatConnector.maxDialTimeout, allowZero: false })
 *   ),
 *   maxInFlight: Options.optional(
 *     Options.numberConfig("MY_MAX_IN_FLIGHT", { min: 1, max: ChatConnector.maxMaxInFlight, integer: true })
 *   )
 * })
 * ```
 *
 * @since 0.2.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Wrap<Options>
): Layer.Layer<
  ChatConnector,
  InvalidOption | Config.ConfigError,
  BindingStore | LazyDial.LazyDial | AgentLookup.AgentLookup
> => Layer.effect(ChatConnector, Effect.flatMap(Config.unwrap(config), make))

/**
 * Turns that connected, by `outcome` (a `TurnOutcome`) and `write` (a
 * `WriteResult`: `lost` is a conditional write that lost to a concurrent
 * writer).
 *
 * @since 0.2.0
 * @category metrics
 */
export const turnsTotal: Metric.Counter<number> = internalDecisions.turnsTotal

/**
 * Latest-agent lookups made by lazy binds. Lookups made while validating a
 * dial are counted by the core (`lazydial_lookups_total`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const lookupsTotal: Metric.Counter<number> = internalDecisions.lookupsTotal
