/**
 * @since 0.1.0
 */
export * as AgentDirectory from "./AgentDirectory.js"
export * as BindingStore from "./BindingStore.js"
export * as ChatBinding from "./ChatBinding.js"
export * as ChatConnector from "./ChatConnector.js"
export * as Database from "./Database.js"
export * as Errors from "./Errors.js"
export * as RebuildNotices from "./RebuildNotices.js"
