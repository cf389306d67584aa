/**
 * @since 0.1.0
 */
export * as AgentDialer from "./AgentDialer.js"
export * as AgentLookup from "./AgentLookup.js"
export * as Errors from "./Errors.js"
export * as Faults from "./Faults.js"
export * as Ids from "./Ids.js"
export * as LazyDial from "./LazyDial.js"
export * as Options from "./Options.js"
export * as SharedConnections from "./SharedConnections.js"

export type { AgentConnection } from "./AgentDialer.js"
export { AgentDialError, AgentLookupError, InvalidOption, NoCurrentAgent } from "./Errors.js"
export { AgentId, BuildId, ChatId, CurrentAgent, WorkspaceId } from "./Ids.js"
export { type DialOutcome, type DialResult, dialWithLazyValidation, type LazyDialResult } from "./LazyDial.js"
