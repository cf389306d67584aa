import { AgentId, BuildId, ChatId, CurrentAgent, WorkspaceId } from "@lazydial/core"

/** Fresh ids, so tests that share one database never see each other's rows. */
export const chatId = (): ChatId => ChatId.make(crypto.randomUUID())
export const workspaceId = (): WorkspaceId => WorkspaceId.make(crypto.randomUUID())
export const agentId = (): AgentId => AgentId.make(crypto.randomUUID())
export const buildId = (): BuildId => BuildId.make(crypto.randomUUID())

/** A new build of some workspace, with its agent. */
export const build = (): CurrentAgent => new CurrentAgent({ agentId: agentId(), buildId: buildId() })
