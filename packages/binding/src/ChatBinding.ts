/**
 * The binding a chat remembers from turn to turn: its workspace, and the build
 * and agent of that workspace it last used.
 *
 * @since 0.1.0
 */
import { AgentId, BuildId, ChatId, WorkspaceId } from "@lazydial/core"
import * as Schema from "effect/Schema"

/**
 * A chat's binding. Unset fields are `Option.none()` in the program and `null`
 * in JSON, so "unset" is never confused with "absent from the payload": a
 * payload that omits a field is rejected.
 *
 * Invariants kept by every store: `buildId` and `agentId` are both set or both
 * unset, and they are only set when `workspaceId` is. `version` grows by one
 * on every write.
 *
 * @example
 * ```ts
 * import { ChatBinding } from "@lazydial/binding"
 * import { Schema } from "effect"
 *
 * declare const binding: ChatBinding.ChatBinding
 * const json = Schema.encodeSync(ChatBinding.ChatBinding)(binding)
 * // { chatId: "…", parentChatId: null, workspaceId: "…", buildId: null, agentId: null, version: 1, updatedAt: "…" }
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export class ChatBinding extends Schema.Class<ChatBinding>("@lazydial/binding/ChatBinding")({
  chatId: ChatId,
  parentChatId: Schema.OptionFromNullOr(ChatId),
  workspaceId: Schema.OptionFromNullOr(WorkspaceId),
  buildId: Schema.OptionFromNullOr(BuildId),
  agentId: Schema.OptionFromNullOr(AgentId),
  /** Grows by one on every write of the row. */
  version: Schema.Int.check(Schema.isGreaterThan(0)),
  /** When the row was last written; an ISO string in JSON. */
  updatedAt: Schema.DateTimeUtcFromString
}) {}

/**
 * The JSON form of the Schema (camelCase, with `version` and `updatedAt`), as
 * stored or sent between processes. It is not the reference service's HTTP
 * shape: that API answers its own snake_case `Chat` (`@lazydial/service`'s
 * `Api.Chat`), without `version` and `updatedAt`.
 *
 * @since 0.1.0
 * @category models
 */
export type ChatBindingJson = typeof ChatBinding.Encoded
