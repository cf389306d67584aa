/**
 * The errors the binding package raises. Errors of the core package
 * (`NoCurrentAgent`, `AgentDialError`, `AgentLookupError`) pass through as
 * they are.
 *
 * @since 0.1.0
 */
import { ChatId } from "@lazydial/core"
import * as Schema from "effect/Schema"

/**
 * No chat has this id.
 *
 * @since 0.1.0
 * @category errors
 */
export class ChatNotFound extends Schema.TaggedError<ChatNotFound>()("ChatNotFound", {
  chatId: ChatId
}) {
  override get message(): string {
    return `chat ${this.chatId} does not exist: create it first, or check the id`
  }
}

/**
 * A chat with this id exists already: chat ids are chosen once.
 *
 * @since 0.1.0
 * @category errors
 */
export class ChatAlreadyExists extends Schema.TaggedError<ChatAlreadyExists>()("ChatAlreadyExists", {
  chatId: ChatId
}) {
  override get message(): string {
    return `chat ${this.chatId} exists already: pick a new id, or omit it to get a fresh one`
  }
}

/**
 * The database behind the binding store failed, or holds a row the schema
 * cannot read. `cause` keeps the driver's error (an `SqlError`, a `ParseError`).
 *
 * @since 0.1.0
 * @category errors
 */
export class BindingStoreError extends Schema.TaggedError<BindingStoreError>()("BindingStoreError", {
  operation: Schema.String,
  detail: Schema.optionalWith(Schema.String, { default: () => "" }),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    const detail = this.detail === "" ? "" : `: ${this.detail}`
    return `binding store ${this.operation} failed${detail}; check that the database is reachable and migrated`
  }
}

/**
 * The chat is bound to no workspace, so there is no agent to dial.
 *
 * @since 0.1.0
 * @category errors
 */
export class ChatHasNoWorkspace extends Schema.TaggedError<ChatHasNoWorkspace>()("ChatHasNoWorkspace", {
  chatId: ChatId
}) {
  override get message(): string {
    return `chat ${this.chatId} has no workspace: choose a workspace for the chat, then retry`
  }
}

/**
 * Connecting a chat to its agent took longer than the dial timeout
 * (`LAZYDIAL_DIAL_TIMEOUT`, 30 seconds by default). Raised only by the
 * timeout: an interrupted caller stays interrupted.
 *
 * @since 0.1.0
 * @category errors
 */
export class DialTimeout extends Schema.TaggedError<DialTimeout>()("DialTimeout", {
  chatId: ChatId,
  timeoutMillis: Schema.Number,
  /**
   * Set when the turn was turned away early, while waiting for admission:
   * at the pace the queue was moving it would have been admitted only after
   * its deadline.
   */
  shed: Schema.optional(Schema.Struct({ waitingAhead: Schema.Number, admittedPerSecond: Schema.Number }))
}) {
  override get message(): string {
    if (this.shed !== undefined) {
      return `chat ${this.chatId} was turned away before connecting: ${this.shed.waitingAhead} turns were waiting ` +
        `ahead of it and this process admits about ${this.shed.admittedPerSecond} a second, so it could not ` +
        `connect within ${this.timeoutMillis} ms; the process is overloaded: spread the load over more replicas, ` +
        "or raise LAZYDIAL_MAX_IN_FLIGHT if the database and agents have room"
    }
    return `connecting chat ${this.chatId} to its agent took more than ${this.timeoutMillis} ms: ` +
      "check that the workspace is running, or raise LAZYDIAL_DIAL_TIMEOUT"
  }
}

/**
 * The agent directory could not record a build. `cause` keeps the driver's
 * error.
 *
 * @since 0.1.0
 * @category errors
 */
export class AgentDirectoryError extends Schema.TaggedError<AgentDirectoryError>()("AgentDirectoryError", {
  operation: Schema.String,
  detail: Schema.optionalWith(Schema.String, { default: () => "" }),
  cause: Schema.optional(Schema.Defect)
}) {
  override get message(): string {
    const detail = this.detail === "" ? "" : `: ${this.detail}`
    return `agent directory ${this.operation} failed${detail}; check that the database is reachable and migrated`
  }
}
