import type { AgentId, BuildId, WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { randomUUID } from "node:crypto"
import * as Net from "node:net"
import type { AgentInfo, FleetStats, RetireMode } from "../Fleet.js"

/** Mutable counters that outlive one fleet, so they can be read after its release. */
export interface FleetCounters {
  agentsStarted: number
  died: number
  hung: number
  portsReused: number
  diedMidHandshake: number
  handshakesCut: number
  accepted: number
  acceptedClosed: number
  listening: number
}

export const makeCounters = (): FleetCounters => ({
  agentsStarted: 0,
  died: 0,
  hung: 0,
  portsReused: 0,
  diedMidHandshake: 0,
  handshakesCut: 0,
  accepted: 0,
  acceptedClosed: 0,
  listening: 0
})

interface Agent {
  readonly info: AgentInfo
  readonly server: Net.Server
  readonly sockets: Set<Net.Socket>
  state: "serving" | "hung" | "crashing" | "dead"
}

// safe: ids minted here are UUIDs, which is all the branded schemas check
const newAgentId = (): AgentId => randomUUID() as AgentId
const newBuildId = (): BuildId => randomUUID() as BuildId

const listen = (server: Net.Server, port: number) =>
  Effect.callback<number, Error>((resume) => {
    const onError = (error: Error) => resume(Effect.fail(error))
    server.once("error", onError)
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => {
      server.off("error", onError)
      const address = server.address()
      resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : port))
    })
  })

const closeServer = (agent: Agent) =>
  Effect.callback<void>((resume) => {
    for (const socket of agent.sockets) socket.destroy()
    if (!agent.server.listening) return resume(Effect.void)
    agent.server.close(() => resume(Effect.void))
  })

export const makeWith = (counters: FleetCounters) =>
  Effect.gen(function*() {
    const agents = new Map<AgentId, Agent>()

    const handle = (agent: Agent, socket: Net.Socket) => {
      counters.accepted++
      socket.setNoDelay(true)
      agent.sockets.add(socket)
      socket.on("close", () => {
        counters.acceptedClosed++
        agent.sockets.delete(socket)
      })
      socket.on("error", () => {
        // a client that resets the connection is not an agent failure
      })
      let buffer = ""
      socket.on("data", (chunk: Buffer) => {
        // a hung agent accepts and reads, and never answers
        if (agent.state === "hung" || agent.state === "dead") return
        buffer += chunk.toString("utf8")
        let newline = buffer.indexOf("\n")
        while (newline >= 0) {
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          if (agent.state === "crashing") {
            // killed between reading the hello and answering it: the client
            // sees a reset (or an end) and no answer
            if (line === "hello") counters.handshakesCut++
            socket.resetAndDestroy()
            return
          }
          if (line === "hello") {
            socket.write(`agent ${agent.info.agentId}\n`)
          } else if (line.startsWith("turn ")) {
            socket.write(`ok ${agent.info.agentId} ${agent.info.workspaceId} ${line.slice(5)}\n`)
          } else {
            socket.write(`error unknown request\n`)
          }
          newline = buffer.indexOf("\n")
        }
      })
    }

    const start = (workspaceId: WorkspaceId, port?: number) =>
      Effect.gen(function*() {
        const sockets = new Set<Net.Socket>()
        const holder: { agent?: Agent } = {}
        const server = Net.createServer((socket) => {
          if (holder.agent === undefined) return socket.destroy()
          handle(holder.agent, socket)
        })
        const bound = yield* listen(server, port ?? 0).pipe(
          // the old port can still be held (a lingering socket): take any free port instead
          Effect.catch(() => listen(server, 0)),
          Effect.orDie
        )
        if (port !== undefined && bound === port) counters.portsReused++
        const info: AgentInfo = { agentId: newAgentId(), buildId: newBuildId(), workspaceId, port: bound }
        const agent: Agent = { info, server, sockets, state: "serving" }
        holder.agent = agent
        agents.set(info.agentId, agent)
        counters.agentsStarted++
        counters.listening++
        return info
      })

    const retire = (agentId: AgentId, mode: RetireMode) =>
      Effect.suspend(() => {
        const agent = agents.get(agentId)
        if (agent === undefined || agent.state !== "serving") return Effect.void
        if (mode === "hang") {
          agent.state = "hung"
          counters.hung++
          return Effect.void
        }
        if (mode === "die_mid_handshake") {
          agent.state = "crashing"
          counters.diedMidHandshake++
          return Effect.void
        }
        agent.state = "dead"
        if (mode === "die") counters.died++
        counters.listening--
        return closeServer(agent)
      })

    yield* Effect.addFinalizer(() =>
      Effect.forEach(agents.values(), (agent) => {
        if (agent.state === "dead") return Effect.sync(() => agent.sockets.forEach((s) => s.destroy()))
        agent.state = "dead"
        counters.listening--
        return closeServer(agent)
      }, { discard: true, concurrency: "unbounded" })
    )

    return {
      start,
      retire,
      portOf: (agentId: AgentId) => Option.map(Option.fromNullishOr(agents.get(agentId)), (agent) => agent.info.port),
      info: (agentId: AgentId) => Option.map(Option.fromNullishOr(agents.get(agentId)), (agent) => agent.info),
      stats: Effect.sync((): FleetStats => snapshot(counters))
    }
  })

export const snapshot = (counters: FleetCounters): FleetStats => ({
  agentsStarted: counters.agentsStarted,
  died: counters.died,
  hung: counters.hung,
  portsReused: counters.portsReused,
  diedMidHandshake: counters.diedMidHandshake,
  handshakesCut: counters.handshakesCut,
  accepted: counters.accepted,
  acceptedOpen: counters.accepted - counters.acceptedClosed,
  listening: counters.listening
})

export const make = Effect.suspend(() => makeWith(makeCounters()))
