/**
 * The errors lazydial itself raises. Errors from a caller's own dial and
 * lookup effects pass through untouched.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { AgentId, WorkspaceId } from "./Ids.js"

/**
 * The workspace has no agent now (it is stopped, or being rebuilt). Waiting
 * for the bound agent would hang, so the dial fails at once.
 *
 * @since 0.1.0
 * @category errors
 */
export class NoCurrentAgent extends Schema.TaggedError<NoCurrentAgent>()("NoCurrentAgent", {
  workspaceId: WorkspaceId
}) {
  override get message(): string {
    return `workspace ${this.workspaceId} has no agent now: start the workspace, then retry`
  }
}

/**
 * Dialing an agent failed. `reason` says how, so callers can tell a refused
 * connection from a wrong agent on a reused address.
 *
 * @since 0.1.0
 * @category errors
 */
export class AgentDialError extends Schema.TaggedError<AgentDialError>()("AgentDialError", {
  agentId: AgentId,
  reason: Schema.Literals(["Unreachable", "Refused", "WrongAgent", "Protocol", "Closed"]),
  detail: Schema.String.pipe(
    Schema.withDecodingDefaultTypeKey(Effect.succeed("")),
    Schema.withConstructorDefault(Effect.succeed(""))
  ),
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    const detail = this.detail === "" ? "" : `: ${this.detail}`
    return `dialing agent ${this.agentId} failed (${this.reason})${detail}`
  }
}

/**
 * The source of truth could not say which agent a workspace has now.
 *
 * @since 0.1.0
 * @category errors
 */
export class AgentLookupError extends Schema.TaggedError<AgentLookupError>()("AgentLookupError", {
  workspaceId: WorkspaceId,
  detail: Schema.String.pipe(
    Schema.withDecodingDefaultTypeKey(Effect.succeed("")),
    Schema.withConstructorDefault(Effect.succeed(""))
  ),
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    const detail = this.detail === "" ? "" : `: ${this.detail}`
    return `looking up the current agent of workspace ${this.workspaceId} failed${detail}`
  }
}

/**
 * An option given to a lazydial constructor is out of range. Raised when the
 * Layer is built, so a bad deployment fails at start, not on the first turn.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidOption extends Schema.TaggedError<InvalidOption>()("InvalidOption", {
  option: Schema.String,
  value: Schema.String,
  expected: Schema.String
}) {
  override get message(): string {
    return `invalid ${this.option}: got ${this.value}, expected ${this.expected}`
  }
}
