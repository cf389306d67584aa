/**
 * The chats the service serves, and the turn path that connects a chat to its
 * agent. This module is the seam between the service and `@lazydial/binding`:
 * the HTTP handlers and the workload talk only to `Chats`, and import its
 * error vocabulary (`ConnectError`, `FailureReason`, `DatabaseUnavailable`)
 * from here, never binding's `Errors`. `layer` maps it onto binding's
 * `BindingStore` and `ChatConnector`. No binding or dial decision is taken
 * here.
 *
 * A database fault is a typed failure (`DatabaseUnavailable`), never a defect:
 * a replica keeps serving through an outage and answers 503 meanwhile.
 *
 * @since 0.1.0
 */
import { BindingStore, type ChatBinding, ChatConnector, Errors } from "@lazydial/binding"
import {
  type AgentConnection,
  AgentDialer,
  type AgentDialError,
  AgentLookup,
  type AgentLookupError,
  type ChatId,
  NoCurrentAgent,
  type WorkspaceId
} from "@lazydial/core"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

/**
 * A chat's binding as binding stores it.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatView = ChatBinding.ChatBinding

/**
 * A chat's stored binding, with what this replica's view says of it
 * (binding's `ChatConnector.ChatRead`): `state` is one of `bindingStates`,
 * `current` the workspace's current pair as the view knows it.
 *
 * @since 0.2.0
 * @category models
 */
export type ChatRead = ChatConnector.ChatRead

/**
 * What this replica's view says of a chat's stored binding: binding's
 * `ChatConnector.bindingStates` (`current`, `stale`, `stopped`, `unknown`,
 * `unbound`), derived, not copied: the HTTP API's `binding` field, in the
 * OpenAPI document too, is this literal union.
 *
 * @since 0.2.0
 * @category models
 */
export const bindingStates: typeof ChatConnector.bindingStates = ChatConnector.bindingStates

/**
 * `bindingStates` as a Schema, for the API.
 *
 * @since 0.2.0
 * @category schemas
 */
export const BindingState: typeof ChatConnector.BindingState = ChatConnector.BindingState

/**
 * No chat has this id.
 *
 * @since 0.1.0
 * @category errors
 */
export type ChatNotFound = Errors.ChatNotFound

/**
 * The error of a chat that does not exist, as the store raises it: also
 * what a chat of another user is, to the caller.
 *
 * @since 0.2.0
 * @category errors
 */
export const chatNotFound = (chatId: ChatId): ChatNotFound => new Errors.ChatNotFound({ chatId })

/**
 * The database did not answer (or answered with an error) while the service
 * served a request. The replica keeps running; the request may be retried.
 * `cause` keeps the store's error.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  operation: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `the database failed during ${this.operation}: retry shortly; if it persists, check that PostgreSQL ` +
      "is up and reachable from this replica (GET /ready answers 503 until it is)"
  }
}

/**
 * Why a turn could not connect.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectError =
  | Errors.ChatNotFound
  | Errors.ChatHasNoWorkspace
  | NoCurrentAgent
  | Errors.DialTimeout
  | AgentDialError
  | AgentLookupError
  | DatabaseUnavailable

/**
 * Every way a turn can fail, by name: the HTTP API's `reason` and the
 * report's outcome names are these.
 *
 * @since 0.1.0
 * @category models
 */
export const failureReasons = [
  "not_found",
  "no_workspace",
  "no_agent",
  "timeout",
  "dial_failed",
  "database_unavailable"
] as const

/**
 * @since 0.1.0
 * @category models
 */
export type FailureReason = typeof failureReasons[number]

const reasonOf: { readonly [Tag in ConnectError["_tag"]]: FailureReason } = {
  ChatNotFound: "not_found",
  ChatHasNoWorkspace: "no_workspace",
  NoCurrentAgent: "no_agent",
  DialTimeout: "timeout",
  AgentDialError: "dial_failed",
  AgentLookupError: "dial_failed",
  DatabaseUnavailable: "database_unavailable"
}

/**
 * The one mapping from a turn's error to its reason.
 *
 * @since 0.1.0
 * @category errors
 */
export const failureReason = (error: ConnectError): FailureReason => reasonOf[error._tag]

/**
 * A turn that did not connect within `timeoutMillis`: for turn paths other
 * than `connect` (the workload's "latest" strategy) that bound their own wait.
 *
 * @since 0.1.0
 * @category errors
 */
export const dialTimeout = (chatId: ChatId, timeoutMillis: number): ConnectError =>
  new Errors.DialTimeout({ chatId, timeoutMillis })

/**
 * The two ways a turn finds its agent, compared by the workload: `lazydial`
 * (`layer`: the persisted binding, validated lazily) and `latest`
 * (`layerLatest`: a lookup of the current agent on every turn). Every other
 * list of them is derived from this one.
 *
 * @since 0.1.0
 * @category models
 */
export const strategies = ["lazydial", "latest"] as const

/**
 * @since 0.1.0
 * @category models
 */
export type Strategy = typeof strategies[number]

/**
 * How a turn connected: binding's `TurnOutcome` (core's outcomes of a dial of
 * the bound agent, then `lazy_bind` and `switched_by_notice`), or `direct`
 * for the "latest" strategy (`layerLatest`). Derived from binding's list, not
 * a copy: a name renamed there fails to compile here, in the HTTP API (whose
 * `TurnResult.outcome` is this literal union, in the OpenAPI document too) and
 * in the harness's report.
 *
 * @since 0.1.0
 * @category models
 */
export const connectOutcomes: readonly [...typeof ChatConnector.turnOutcomes, "direct"] = [
  ...ChatConnector.turnOutcomes,
  "direct"
]

/**
 * @since 0.1.0
 * @category models
 */
export type ConnectOutcome = typeof connectOutcomes[number]

/**
 * `ConnectOutcome` as a Schema, for the API and the report.
 *
 * @since 0.2.0
 * @category schemas
 */
export const ConnectOutcome: Schema.Literals<typeof connectOutcomes> = Schema.Literals(connectOutcomes)

/**
 * One turn's connection, with how the turn path got it.
 *
 * @since 0.1.0
 * @category models
 */
export interface TurnConnection {
  readonly connection: AgentConnection
  readonly outcome: ConnectOutcome
  /** The dial switched agents and the new binding was written back. */
  readonly repaired: boolean
  /** The chat's row as the turn path last read or wrote it: no second read needed. */
  readonly binding: ChatView
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Chats extends Context.Service<
  Chats,
  {
    /** A new chat; a fresh id unless `chatId` is given. */
    readonly create: (
      workspaceId: Option.Option<WorkspaceId>,
      chatId?: ChatId
    ) => Effect.Effect<ChatView, DatabaseUnavailable>
    /** A child chat of `parentChatId`; a fresh id unless `chatId` is given. */
    readonly createChild: (
      parentChatId: ChatId,
      chatId?: ChatId
    ) => Effect.Effect<ChatView, ChatNotFound | DatabaseUnavailable>
    readonly get: (chatId: ChatId) => Effect.Effect<ChatView, ChatNotFound | DatabaseUnavailable>
    /**
     * The stored binding and what this replica's view says of it (binding's
     * `ChatConnector.read`): one read of the row, no write, no lookup, no dial.
     */
    readonly read: (chatId: ChatId) => Effect.Effect<ChatRead, ChatNotFound | DatabaseUnavailable>
    /** Sets the workspace, and clears build and agent. */
    readonly setWorkspace: (
      chatId: ChatId,
      workspaceId: Option.Option<WorkspaceId>
    ) => Effect.Effect<ChatView, ChatNotFound | DatabaseUnavailable>
    /** The turn path: a connection to the chat's agent, released with the Scope. */
    readonly connect: (chatId: ChatId) => Effect.Effect<TurnConnection, ConnectError, Scope.Scope>
  }
>()("@lazydial/service/Chats") {}

// binding's one database-fault error, raised by its store, directory and migrations
type StoreFault = Errors.BindingStoreError

const isStoreFault = (error: { readonly _tag: string }): error is StoreFault => error._tag === "BindingStoreError"

/**
 * Maps the store's database fault into the service's vocabulary, keeping it
 * as the cause.
 *
 * @since 0.1.0
 * @category errors
 */
export const databaseUnavailable = (operation: string) =>
<A, E extends { readonly _tag: string }, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, StoreFault> | DatabaseUnavailable, R> =>
  // safe: the refinement removes exactly the store-fault tags from the error
  // channel; TypeScript cannot narrow them out of a generic `E` itself
  Effect.catchIf(
    effect,
    isStoreFault,
    (cause) => Effect.fail(new DatabaseUnavailable({ operation, cause }))
  ) as Effect.Effect<A, Exclude<E, StoreFault> | DatabaseUnavailable, R>

/**
 * `Chats` over binding's store and connector. A database fault becomes
 * `DatabaseUnavailable`; the impossible `ChatAlreadyExists` (ids are always
 * fresh, or minted by the caller as UUIDs) is a defect.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Chats, never, BindingStore.BindingStore | ChatConnector.ChatConnector> = Layer.effect(
  Chats,
  Effect.gen(function*() {
    const store = yield* BindingStore.BindingStore
    const connector = yield* ChatConnector.ChatConnector
    return Chats.of({
      create: (workspaceId, chatId) =>
        store.createChat({ workspaceId: Option.getOrUndefined(workspaceId), chatId }).pipe(
          Effect.catchTag("ChatAlreadyExists", Effect.die),
          databaseUnavailable("Chats.create")
        ),
      createChild: (parentChatId, chatId) =>
        store.createChild(parentChatId, { chatId }).pipe(
          Effect.catchTag("ChatAlreadyExists", Effect.die),
          databaseUnavailable("Chats.createChild")
        ),
      get: (chatId) => databaseUnavailable("Chats.get")(store.get(chatId)),
      read: (chatId) => databaseUnavailable("Chats.read")(connector.read(chatId)),
      setWorkspace: (chatId, workspaceId) =>
        databaseUnavailable("Chats.setWorkspace")(store.setWorkspace(chatId, workspaceId)),
      connect: (chatId) =>
        connector.connect(chatId).pipe(
          databaseUnavailable("Chats.connect"),
          Effect.map((turn): TurnConnection => ({
            connection: turn.connection,
            outcome: turn.outcome,
            repaired: (turn.outcome === "switched" || turn.outcome === "switched_by_notice") &&
              turn.write === "recorded",
            binding: turn.binding
          }))
        )
    })
  })
)

/**
 * `Chats` whose turn path is the behaviour before persisted bindings ("latest",
 * the strategy lazydial is compared with): read the chat, look up the
 * workspace's current agent on every turn, then dial it. Nothing is written
 * back. The rest is `layer`'s.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLatest = (options: { readonly dialTimeout: Duration.Input }): Layer.Layer<
  Chats,
  never,
  BindingStore.BindingStore | ChatConnector.ChatConnector | AgentLookup.AgentLookup | AgentDialer.AgentDialer
> =>
  Layer.effect(
    Chats,
    Effect.gen(function*() {
      const chats = yield* Effect.provide(Chats, layer)
      const lookup = yield* AgentLookup.AgentLookup
      const dialer = yield* AgentDialer.AgentDialer
      const timeout = Duration.fromInputUnsafe(options.dialTimeout)
      return Chats.of({
        ...chats,
        connect: (chatId) =>
          Effect.gen(function*() {
            const binding = yield* chats.get(chatId)
            if (Option.isNone(binding.workspaceId)) return yield* new Errors.ChatHasNoWorkspace({ chatId })
            const current = yield* lookup.current(binding.workspaceId.value)
            if (Option.isNone(current)) return yield* new NoCurrentAgent({ workspaceId: binding.workspaceId.value })
            // In a fiber of its own: a dial that ignores interruption (a fault
            // core's Faults layer can inject) must not hold the turn past its
            // timeout, so the turn gives it up without waiting for it. It
            // dials in the turn's scope: a connection that arrives late is
            // closed at once by that scope, which is closed by then.
            const dial = yield* Effect.forkDetach(dialer.dial(current.value.agentId))
            const connection = yield* Fiber.join(dial).pipe(
              Effect.onInterrupt(() => Effect.forkDetach(Fiber.interrupt(dial)))
            )
            return { connection, outcome: "direct", repaired: false, binding } satisfies TurnConnection
          }).pipe(
            Effect.timeoutOrElse({
              duration: timeout,
              orElse: () => Effect.fail(dialTimeout(chatId, Duration.toMillis(timeout)))
            })
          )
      })
    })
  )
