/**
 * The chats the service serves, and the turn path that connects a chat to its
 * agent. This Tag is the seam between the service and the binding package:
 * the service (HTTP handlers, workload) talks only to `Chats`, and a Layer
 * maps it onto `@lazydial/binding`'s `BindingStore` and `ChatConnector`.
 *
 * @since 0.1.0
 */
import type {
  AgentConnection,
  AgentDialError,
  AgentId,
  AgentLookupError,
  BuildId,
  ChatId,
  NoCurrentAgent,
  WorkspaceId
} from "@lazydial/core"
import { ChatId as ChatIdSchema } from "@lazydial/core"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"

/**
 * A chat's binding as the service sees it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ChatView {
  readonly chatId: ChatId
  readonly parentChatId: Option.Option<ChatId>
  readonly workspaceId: Option.Option<WorkspaceId>
  readonly buildId: Option.Option<BuildId>
  readonly agentId: Option.Option<AgentId>
}

/**
 * @since 0.1.0
 * @category errors
 */
export class ChatNotFound extends Schema.TaggedError<ChatNotFound>()("ChatNotFound", {
  chatId: ChatIdSchema
}) {
  override get message(): string {
    return `chat ${this.chatId} does not exist`
  }
}

/**
 * @since 0.1.0
 * @category errors
 */
export class ChatHasNoWorkspace extends Schema.TaggedError<ChatHasNoWorkspace>()("ChatHasNoWorkspace", {
  chatId: ChatIdSchema
}) {
  override get message(): string {
    return `chat ${this.chatId} has no workspace: choose one, then retry`
  }
}

/**
 * @since 0.1.0
 * @category errors
 */
export class DialTimeout extends Schema.TaggedError<DialTimeout>()("DialTimeout", {
  chatId: ChatIdSchema,
  timeoutMillis: Schema.Number
}) {
  override get message(): string {
    return `connecting chat ${this.chatId} to its agent took more than ${this.timeoutMillis} ms`
  }
}

/**
 * Why a turn could not connect.
 *
 * @since 0.1.0
 * @category errors
 */
export type ConnectError =
  | ChatNotFound
  | ChatHasNoWorkspace
  | NoCurrentAgent
  | DialTimeout
  | AgentDialError
  | AgentLookupError

/**
 * @since 0.1.0
 * @category tags
 */
export class Chats extends Context.Tag("@lazydial/service/Chats")<
  Chats,
  {
    readonly create: (workspaceId: Option.Option<WorkspaceId>) => Effect.Effect<ChatView>
    readonly createChild: (parentChatId: ChatId) => Effect.Effect<ChatView, ChatNotFound>
    readonly get: (chatId: ChatId) => Effect.Effect<ChatView, ChatNotFound>
    /** Sets the workspace, and clears build and agent. */
    readonly setWorkspace: (
      chatId: ChatId,
      workspaceId: Option.Option<WorkspaceId>
    ) => Effect.Effect<ChatView, ChatNotFound>
    /** The turn path: a connection to the chat's agent, released with the Scope. */
    readonly connect: (chatId: ChatId) => Effect.Effect<AgentConnection, ConnectError, Scope.Scope>
  }
>() {}
