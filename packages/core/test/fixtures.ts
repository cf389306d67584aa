import { AgentId, BuildId, WorkspaceId } from "@lazydial/core"

/** The bound agent. */
export const A = AgentId.make("00000000-0000-4000-8000-00000000000a")
/** The agent a rebuild brings. */
export const B = AgentId.make("00000000-0000-4000-8000-00000000000b")
export const W = WorkspaceId.make("00000000-0000-4000-8000-0000000000f0")
export const BUILD_1 = BuildId.make("00000000-0000-4000-8000-000000000b01")
export const BUILD_2 = BuildId.make("00000000-0000-4000-8000-000000000b02")
