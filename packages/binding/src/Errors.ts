/**
 * The errors the binding package raises. Errors of the core package
 * (`NoCurrentAgent`, `AgentDialError`, `AgentLookupError`) pass through as
 * they are.
 *
 * @since 0.1.0
 */
import { ChatId } from "@lazydial/core"
import * as Effect from "effect/Effect"
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
 * The database failed, or holds a row the schema cannot read: the one error
 * of every database fault of this package, raised by the binding store, the
 * agent directory and the migrations alike, so that a caller maps one type
 * (the service answers it with HTTP 503 `database_unavailable`). `operation`
 * names what failed (`BindingStore.createChild`, `AgentDirectory.recordBuild`,
 * `migration`); `cause` keeps the driver's error (an `SqlError`, a
 * `SchemaError`).
 *
 * @since 0.1.0
 * @category errors
 */
export class BindingStoreError extends Schema.TaggedError<BindingStoreError>()("BindingStoreError", {
  operation: Schema.String,
  detail: Schema.String.pipe(Schema.withDecodingDefaultTypeKey(Effect.succeed(""))),
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    const detail = this.detail === "" ? "" : `: ${this.detail}`
    return `${this.operation} failed${detail}; check that the database is reachable and migrated`
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
 * (`dialTimeout`, 30 seconds by default). Raised only by the
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
        "or raise the connector's maxInFlight if the database and agents have room"
    }
    return `connecting chat ${this.chatId} to its agent took more than ${this.timeoutMillis} ms: ` +
      "check that the workspace is running, or raise the connector's dialTimeout"
  }
}

/**
 * The database could not be reached when a `Database` Layer started: the
 * server refused the connection, the host is unknown, the user or password is
 * wrong, or no answer came within the connect timeout. `host`, `port`,
 * `database` and `user` say where it tried; the password is never kept.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseConnectError extends Schema.TaggedError<DatabaseConnectError>()("DatabaseConnectError", {
  host: Schema.String,
  port: Schema.Number,
  database: Schema.String,
  user: Schema.String,
  reason: Schema.Literals(["authentication", "refused", "unknown_host", "unknown_database", "timeout", "other"]),
  detail: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    const where = `PostgreSQL at ${this.host}:${this.port}, database "${this.database}", user "${this.user}"`
    const advice = {
      authentication: "check the user and password of the database URL",
      refused: "check that PostgreSQL runs and listens on that host and port",
      unknown_host: "check the host name of the database URL",
      unknown_database: "create the database, or fix its name in the database URL",
      timeout: "check that the host is reachable, or raise the connect timeout (connectTimeout)",
      other: "check the database URL and that the server accepts connections"
    }[this.reason]
    return `cannot connect to ${where}: ${this.detail}; ${advice}`
  }
}

/**
 * The database was migrated by a newer version of this package: it holds a
 * migration this code does not know, so this code would misread its tables.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseSchemaTooNew extends Schema.TaggedError<DatabaseSchemaTooNew>()("DatabaseSchemaTooNew", {
  /** The latest migration recorded in the database. */
  databaseVersion: Schema.Number,
  /** The latest migration this code knows. */
  codeVersion: Schema.Number
}) {
  override get message(): string {
    return `the database schema is at migration ${this.databaseVersion}, but this version of lazydial knows ` +
      `migrations up to ${this.codeVersion} only: a newer version migrated it; run that version (or newer) ` +
      "against this database, or give this one a database of its own"
  }
}
