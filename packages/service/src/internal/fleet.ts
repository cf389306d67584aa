import type { AgentId, BuildId, WorkspaceId } from "@lazydial/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { randomUUID } from "node:crypto"
import * as Net from "node:net"
import type { AgentInfo, Fleet, FleetStats, RetireMode } from "../Fleet.js"
import * as Handshake from "./handshake.js"

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
  /** Accepted sockets of agents no longer serving (hung, crashing, dead), not yet closed. */
  retiredOpen: number
  listening: number
  workspaceLocks: number
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
  retiredOpen: 0,
  listening: 0,
  workspaceLocks: 0
})

interface Agent {
  readonly info: AgentInfo
  readonly secret: Uint8Array
  /** Its own listener, and any listener taken over from a retired agent (`reuse_port`). */
  readonly listeners: Set<Listener>
  readonly sockets: Set<Net.Socket>
  state: "serving" | "hung" | "crashing" | "dead"
}

/** A listening server and the agent that answers on it now. */
interface Listener {
  readonly server: Net.Server
  agent: Agent | undefined
}

// safe: ids minted here are UUIDs, which is all the branded schemas check
const newAgentId = (): AgentId => randomUUID() as AgentId
const newBuildId = (): BuildId => randomUUID() as BuildId

// A client that sends this much without a newline is not speaking the
// protocol: a turn's line is at most the API's body limit (1 MiB by default).
const maxLineBytes = 8 * 1024 * 1024

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

const closeListener = (listener: Listener) =>
  Effect.callback<void>((resume) => {
    listener.agent = undefined
    if (!listener.server.listening) return resume(Effect.void)
    listener.server.close(() => resume(Effect.void))
  })

const closeAgent = (agent: Agent) =>
  Effect.suspend(() => {
    for (const socket of agent.sockets) socket.destroy()
    const listeners = [...agent.listeners]
    agent.listeners.clear()
    return Effect.forEach(listeners, closeListener, { discard: true, concurrency: "unbounded" })
  })

/**
 * How many dead agents the fleet remembers (for its address book: a dial of
 * one is refused, as a dead process's port refuses). Older ones are
 * forgotten, so that a fleet that rebuilds for days does not grow without
 * end: a dial of a forgotten agent finds no address.
 */
export const retainDead = 10_000

export const maxDialLatency = Duration.minutes(1)

export const makeWith = (
  counters: FleetCounters,
  options: { readonly retainDead?: number; readonly dialLatency?: Duration.Input | undefined } = {}
): Effect.Effect<Fleet["Service"], never, Scope.Scope> =>
  Effect.gen(function*() {
    // clamped: a value past the range is the caller's bug, and a timer of days would hold every dial
    const dialLatencyMillis = options.dialLatency === undefined ? 0 : Math.min(
      Duration.toMillis(maxDialLatency),
      Math.max(0, Duration.toMillis(Duration.fromInputUnsafe(options.dialLatency)))
    )
    const agents = new Map<AgentId, Agent>()
    // the dead ones, oldest first (a Set iterates in insertion order)
    const dead = new Set<AgentId>()
    const bury = (agentId: AgentId) => {
      dead.add(agentId)
      if (dead.size <= (options.retainDead ?? retainDead)) return
      const oldest = dead.values().next().value!
      dead.delete(oldest)
      agents.delete(oldest)
    }
    const locks = new Map<WorkspaceId, { readonly semaphore: Semaphore.Semaphore; users: number }>()
    const unsettled = new Set<WorkspaceId>()

    const handle = (agent: Agent, socket: Net.Socket) => {
      counters.accepted++
      // a hung agent still accepts: its sockets count as retired from the start
      if (agent.state !== "serving") counters.retiredOpen++
      socket.setNoDelay(true)
      agent.sockets.add(socket)
      // the handshake answer held back by `dialLatency`; the lines after it wait for it, in order
      let delayed: ReturnType<typeof setTimeout> | undefined
      socket.on("close", () => {
        counters.acceptedClosed++
        if (agent.state !== "serving") counters.retiredOpen--
        agent.sockets.delete(socket)
        if (delayed !== undefined) clearTimeout(delayed)
      })
      socket.on("error", () => {
        // a client that resets the connection is not an agent failure
      })
      let buffer = ""
      // Answers the lines read so far, in order, up to a held-back handshake answer.
      const drain = (): void => {
        let newline = buffer.indexOf("\n")
        while (newline >= 0 && delayed === undefined) {
          // a hung agent accepts and reads, and never answers
          if (agent.state === "hung" || agent.state === "dead") return
          const line = buffer.slice(0, newline)
          buffer = buffer.slice(newline + 1)
          if (agent.state === "crashing") {
            // killed between reading the hello and answering it: the client
            // sees a reset (or an end) and no answer
            if (line.startsWith("hello")) counters.handshakesCut++
            socket.resetAndDestroy()
            return
          }
          const nonce = Handshake.nonceOf(line)
          if (nonce !== undefined) {
            const answer = `${Handshake.answer(agent.secret, nonce, agent.info.agentId)}\n`
            if (dialLatencyMillis > 0) {
              // the tunnel's cost of a handshake: the answer, and whatever follows it, waits
              delayed = setTimeout(() => {
                delayed = undefined
                if (socket.destroyed) return
                // retired while the answer was held back: it answers as it now would (a hung or dead agent
                // never, a crashing one cuts the handshake)
                if (agent.state === "crashing") {
                  counters.handshakesCut++
                  return socket.resetAndDestroy()
                }
                if (agent.state !== "serving") return
                socket.write(answer)
                drain()
              }, dialLatencyMillis)
              return
            }
            socket.write(answer)
          } else if (line === Handshake.ping) {
            // the probe of a connection shared across turns: no turn, no identity (proven at the handshake)
            socket.write(`${Handshake.pong}\n`)
          } else if (line.startsWith("turn ")) {
            socket.write(`ok ${agent.info.agentId} ${agent.info.workspaceId} ${line.slice(5)}\n`)
          } else if (line.startsWith("hello")) {
            socket.write(`error hello needs a nonce: hello <hex>\n`)
          } else {
            socket.write(`error unknown request\n`)
          }
          newline = buffer.indexOf("\n")
        }
      }
      socket.on("data", (chunk: Buffer) => {
        if (agent.state === "hung" || agent.state === "dead") return
        buffer += chunk.toString("utf8")
        if (buffer.length > maxLineBytes) return socket.destroy()
        drain()
      })
    }

    const start = (workspaceId: WorkspaceId, port?: number) =>
      Effect.gen(function*() {
        const listener: Listener = {
          server: Net.createServer((socket) => {
            if (listener.agent === undefined) return socket.destroy()
            handle(listener.agent, socket)
          }),
          agent: undefined
        }
        const bound = yield* listen(listener.server, port ?? 0).pipe(
          // the old port can still be held (a lingering socket): take any free port instead
          Effect.catch(() => listen(listener.server, 0)),
          Effect.orDie
        )
        if (port !== undefined && bound === port) counters.portsReused++
        const secret = Handshake.newSecret()
        const info: AgentInfo = {
          agentId: newAgentId(),
          buildId: newBuildId(),
          workspaceId,
          port: bound,
          secret: Redacted.make(secret, { label: "agent secret" })
        }
        const agent: Agent = { info, secret, listeners: new Set([listener]), sockets: new Set(), state: "serving" }
        listener.agent = agent
        agents.set(info.agentId, agent)
        counters.agentsStarted++
        counters.listening++
        return info
        // not cut between listening and being registered: a listener no finalizer knows would outlive the fleet
      }).pipe(Effect.uninterruptible)

    const retire = (agentId: AgentId, mode: RetireMode, successor?: AgentId) =>
      Effect.suspend(() => {
        const agent = agents.get(agentId)
        if (agent === undefined || agent.state !== "serving") return Effect.void
        // its open sockets are a retired agent's from now on (each closes, and is counted off, as one)
        counters.retiredOpen += agent.sockets.size
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
        bury(agentId)
        const next = successor === undefined ? undefined : agents.get(successor)
        if (mode === "reuse_port" && next !== undefined && next.state === "serving") {
          // the old process is gone (its connections with it) and the next one
          // holds its port: the listener is handed over, never closed
          for (const socket of agent.sockets) socket.destroy()
          for (const listener of agent.listeners) {
            listener.agent = next
            next.listeners.add(listener)
          }
          agent.listeners.clear()
          counters.portsReused++
          return Effect.void
        }
        return closeAgent(agent)
      })

    // A lock lives while someone holds it or waits for it: ids come from
    // requests, and a map that kept one per id ever asked for would grow
    // with them.
    const exclusive = (workspaceId: WorkspaceId) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.suspend(() => {
        let lock = locks.get(workspaceId)
        if (lock === undefined) {
          lock = { semaphore: Semaphore.makeUnsafe(1), users: 0 }
          locks.set(workspaceId, lock)
          counters.workspaceLocks++
        }
        const held = lock
        held.users++
        return Semaphore.withPermit(held.semaphore, effect).pipe(
          Effect.ensuring(Effect.sync(() => {
            if (--held.users > 0) return
            locks.delete(workspaceId)
            counters.workspaceLocks--
          }))
        )
      })

    yield* Effect.addFinalizer(() =>
      Effect.forEach(agents.values(), (agent) => {
        if (agent.state !== "dead") {
          if (agent.state === "serving") counters.retiredOpen += agent.sockets.size
          agent.state = "dead"
          counters.listening--
        }
        return closeAgent(agent)
      }, { discard: true, concurrency: "unbounded" })
    )

    const infoOf = (agentId: AgentId) => Option.map(Option.fromNullishOr(agents.get(agentId)), (agent) => agent.info)

    return {
      start,
      retire,
      portOf: (agentId: AgentId) => Option.map(infoOf(agentId), (info) => info.port),
      info: infoOf,
      serving: (workspaceId: WorkspaceId) =>
        Array.from(agents.values()).filter((agent) =>
          agent.state === "serving" && agent.info.workspaceId === workspaceId
        ).map((agent) => agent.info),
      exclusive,
      unsettle: (workspaceId: WorkspaceId) => Effect.sync(() => void unsettled.add(workspaceId)),
      settled: (workspaceId: WorkspaceId) => Effect.sync(() => void unsettled.delete(workspaceId)),
      unsettled: Effect.sync(() => [...unsettled]),
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
  retiredOpen: counters.retiredOpen,
  listening: counters.listening,
  workspaceLocks: counters.workspaceLocks
})

export const make = Effect.suspend(() => makeWith(makeCounters()))
