/**
 * The chats the service serves, and the turn path that connects a chat to its
 * agent. This Tag is the seam between the service and `@lazydial/binding`:
 * the HTTP handlers and the workload talk only to `Chats`, and `layer` maps it
 * onto binding's `BindingStore` and `ChatConnector`. No binding or dial
 * decision is taken here.
 *
 * @since 0.1.0
 */
import { BindingStore, type ChatBinding, ChatConnector, type Errors } from "@lazydial/binding"
import type {
  AgentConnection,
  AgentDialError,
  AgentLookupError,
  ChatId,
  DialOutcome,
  NoCurrentAgent,
  WorkspaceId
} from "@lazydial/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

/**
 * A chat's binding as binding stores it.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatView = ChatBinding.ChatBinding

/**
 * Why a turn could not connect. A failing database is a defect of the
 * service, not an outcome of a turn.
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

/**
 * One turn's connection, with how the turn path got it.
 *
 * @since 0.1.0
 * @category models
 */
export interface TurnConnection {
  readonly connection: AgentConnection
  /** Core's outcome, or `lazy_bind` when the chat had no agent yet. */
  readonly outcome: DialOutcome | "lazy_bind"
  /** The dial switched agents and the new binding was written back. */
  readonly repaired: boolean
  readonly binding: ChatView
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Chats extends Context.Tag("@lazydial/service/Chats")<
  Chats,
  {
    readonly create: (workspaceId: Option.Option<WorkspaceId>) => Effect.Effect<ChatView>
    readonly createChild: (parentChatId: ChatId) => Effect.Effect<ChatView, Errors.ChatNotFound>
    readonly get: (chatId: ChatId) => Effect.Effect<ChatView, Errors.ChatNotFound>
    /** Sets the workspace, and clears build and agent. */
    readonly setWorkspace: (
      chatId: ChatId,
      workspaceId: Option.Option<WorkspaceId>
    ) => Effect.Effect<ChatView, Errors.ChatNotFound>
    /** The turn path: a connection to the chat's agent, released with the Scope. */
    readonly connect: (chatId: ChatId) => Effect.Effect<TurnConnection, ConnectError, Scope.Scope>
  }
>() {}

/**
 * `Chats` over binding's store and connector. Store failures (and the
 * impossible `ChatAlreadyExists`: ids are always fresh) become defects.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<Chats, never, BindingStore.BindingStore | ChatConnector.ChatConnector> = Layer.effect(
  Chats,
  Effect.gen(function*() {
    const store = yield* BindingStore.BindingStore
    const connector = yield* ChatConnector.ChatConnector
    const defect = <A, E extends { readonly _tag: string }>(
      effect: Effect.Effect<A, E | Errors.BindingStoreError | Errors.ChatAlreadyExists>
    ): Effect.Effect<A, Exclude<E, Errors.BindingStoreError | Errors.ChatAlreadyExists>> =>
      // safe: the refinement removes exactly these two tags from the error
      // channel; TypeScript cannot narrow them out of a generic `E` itself
      Effect.catchIf(
        effect,
        (error): error is Errors.BindingStoreError | Errors.ChatAlreadyExists =>
          error._tag === "BindingStoreError" || error._tag === "ChatAlreadyExists",
        Effect.die
      ) as Effect.Effect<A, Exclude<E, Errors.BindingStoreError | Errors.ChatAlreadyExists>>
    return Chats.of({
      create: (workspaceId) => defect(store.createChat({ workspaceId: Option.getOrUndefined(workspaceId) })),
      createChild: (parentChatId) => defect(store.createChild(parentChatId)),
      get: (chatId) => defect(store.get(chatId)),
      setWorkspace: (chatId, workspaceId) => defect(store.setWorkspace(chatId, workspaceId)),
      connect: (chatId) =>
        connector.connect(chatId).pipe(
          Effect.catchTag("BindingStoreError", Effect.die),
          Effect.map((turn): TurnConnection => ({
            connection: turn.connection,
            outcome: turn.path === "lazy_bind" ? "lazy_bind" : turn.outcome,
            repaired: turn.path === "switched" && turn.write === "recorded",
            binding: turn.binding
          }))
        )
    })
  })
)
