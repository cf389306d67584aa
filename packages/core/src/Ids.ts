/**
 * Branded identifiers. They are plain UUID strings at run time; the brand keeps
 * an `AgentId` from being passed where a `WorkspaceId` is expected, and the
 * Schema is the only way to make one from outside data. Any 128-bit hex id in
 * the 8-4-4-4-12 form is taken (`Schema.isGUID`), as PostgreSQL's `uuid` type
 * takes it; Effect 4's `isUUID` would also demand RFC 9562's version and
 * variant bits, and refuse ids that the Effect 3 version stored.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * A workspace agent: one process of one build of a workspace.
 *
 * @since 0.1.0
 * @category ids
 */
export const AgentId = Schema.String.check(Schema.isGUID({ expected: "an AgentId (a UUID)" })).pipe(
  Schema.brand("AgentId")
).annotate({
  identifier: "AgentId",
  description: "a workspace agent's id (a UUID)"
})

/**
 * @since 0.1.0
 * @category ids
 */
export type AgentId = typeof AgentId.Type

/**
 * A workspace: it keeps its id across rebuilds, while its agent changes.
 *
 * @since 0.1.0
 * @category ids
 */
export const WorkspaceId = Schema.String.check(Schema.isGUID({ expected: "a WorkspaceId (a UUID)" })).pipe(
  Schema.brand("WorkspaceId")
).annotate({
  identifier: "WorkspaceId",
  description: "a workspace's id (a UUID)"
})

/**
 * @since 0.1.0
 * @category ids
 */
export type WorkspaceId = typeof WorkspaceId.Type

/**
 * One build of a workspace. A rebuild makes a new build with a new agent.
 *
 * @since 0.1.0
 * @category ids
 */
export const BuildId = Schema.String.check(Schema.isGUID({ expected: "a BuildId (a UUID)" })).pipe(
  Schema.brand("BuildId")
).annotate({
  identifier: "BuildId",
  description: "a workspace build's id (a UUID)"
})

/**
 * @since 0.1.0
 * @category ids
 */
export type BuildId = typeof BuildId.Type

/**
 * A chat, which keeps its agent binding from turn to turn.
 *
 * @since 0.1.0
 * @category ids
 */
export const ChatId = Schema.String.check(Schema.isGUID({ expected: "a ChatId (a UUID)" })).pipe(
  Schema.brand("ChatId")
).annotate({
  identifier: "ChatId",
  description: "a chat's id (a UUID)"
})

/**
 * @since 0.1.0
 * @category ids
 */
export type ChatId = typeof ChatId.Type

/**
 * The agent a workspace has now, with the build that owns it. A lookup returns
 * both from one query, so the pair is always consistent.
 *
 * @since 0.1.0
 * @category models
 */
export class CurrentAgent extends Schema.Class<CurrentAgent>("@lazydial/core/CurrentAgent")({
  agentId: AgentId,
  buildId: BuildId
}) {}
