/**
 * The source of truth for "which agent does this workspace have now?".
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type { AgentLookupError } from "./Errors.js"
import type { CurrentAgent, WorkspaceId } from "./Ids.js"

/**
 * Answers with the workspace's current agent and the build that owns it, from
 * one query, or `None` when the workspace has no agent (it is stopped).
 * Answers must not be cached beyond one query: a stale answer defeats the
 * validation it exists for.
 *
 * @since 0.1.0
 * @category tags
 */
export class AgentLookup extends Context.Service<AgentLookup, {
  readonly current: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<CurrentAgent>, AgentLookupError>
}>()("@lazydial/core/AgentLookup") {}
