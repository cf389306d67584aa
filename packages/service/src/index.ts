/**
 * @since 0.1.0
 */
export * as AgentAddresses from "./AgentAddresses.js"
export * as Api from "./Api.js"
export * as Auth from "./Auth.js"
export * as ChatOwners from "./ChatOwners.js"
export * as Chats from "./Chats.js"
export * as Cli from "./Cli.js"
export * as ControlPlane from "./ControlPlane.js"
export * as Fleet from "./Fleet.js"
export * as Probe from "./Probe.js"
export * as Processes from "./Processes.js"
export * as Server from "./Server.js"
export * as Service from "./Service.js"
export * as Settings from "./Settings.js"
export * as SocketDialer from "./SocketDialer.js"
