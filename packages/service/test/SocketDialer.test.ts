import { describe, expect, it } from "@effect/vitest"
import { AgentDialer, type AgentDialError, type AgentId, type WorkspaceId } from "@lazydial/core"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as TestClock from "effect/testing/TestClock"
import { randomUUID } from "node:crypto"
import * as Net from "node:net"
import * as AgentAddresses from "../src/AgentAddresses.js"
import * as Fleet from "../src/Fleet.js"
import * as FleetInternal from "../src/internal/fleet.js"
import * as Handshake from "../src/internal/handshake.js"
import * as SocketDialer from "../src/SocketDialer.js"

const workspace = "6f1c2a53-7a0e-4d4e-9a9b-2f1f4c1d9a01" as WorkspaceId
// safe: a fresh UUID is a valid AgentId
const newAgentId = () => randomUUID() as AgentId

const setup = () => {
  const fleetCounters = Fleet.makeCounters()
  const dialerCounters = SocketDialer.makeCounters()
  const fleet = Fleet.layerWith(fleetCounters)
  const addresses = AgentAddresses.layerFleet.pipe(Layer.provideMerge(fleet))
  const layer = SocketDialer.layer(dialerCounters).pipe(Layer.provideMerge(addresses))
  return { fleetCounters, dialerCounters, layer }
}

describe("SocketDialer", () => {
  it.live("connects, answers a turn, and closes the socket with its scope", () => {
    const { dialerCounters, fleetCounters, layer } = setup()
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const dialer = yield* AgentDialer.AgentDialer
      const agent = yield* fleet.start(workspace)
      const reply = yield* Effect.scoped(
        Effect.flatMap(dialer.dial(agent.agentId), (connection) => connection.exchange("turn hi"))
      )
      expect(reply).toBe(`ok ${agent.agentId} ${workspace} hi`)
    }).pipe(
      Effect.provide(layer),
      Effect.andThen(Effect.sleep("50 millis")),
      Effect.tap(() =>
        Effect.sync(() => {
          expect(SocketDialer.stats(dialerCounters)).toMatchObject({ opened: 1, closed: 1, stillOpen: 0 })
          expect(fleetCounters.accepted - fleetCounters.acceptedClosed).toBe(0)
        })
      )
    )
  })

  it.live("a dead agent refuses, a reused port is a wrong agent, a hung agent never answers", () => {
    const { dialerCounters, layer } = setup()
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const dialer = yield* AgentDialer.AgentDialer
      const dead = yield* fleet.start(workspace)
      yield* fleet.retire(dead.agentId, "die")
      const refused = yield* Effect.flip(Effect.scoped(dialer.dial(dead.agentId)))
      expect(refused.reason).toBe("Refused")

      const old = yield* fleet.start(workspace)
      yield* fleet.retire(old.agentId, "reuse_port")
      const next = yield* fleet.start(workspace, old.port)
      expect(next.port).toBe(old.port)
      const wrong = yield* Effect.flip(Effect.scoped(dialer.dial(old.agentId)))
      expect(wrong.reason).toBe("WrongAgent")

      const hung = yield* fleet.start(workspace)
      yield* fleet.retire(hung.agentId, "hang")
      const result = yield* Effect.scoped(dialer.dial(hung.agentId)).pipe(Effect.timeout("200 millis"), Effect.flip)
      expect(result._tag).toBe("TimeoutError")
    }).pipe(
      Effect.provide(layer),
      Effect.andThen(Effect.sleep("50 millis")),
      Effect.tap(() =>
        Effect.sync(() => {
          expect(SocketDialer.stats(dialerCounters).stillOpen).toBe(0)
        })
      )
    )
  })
})

describe("Fleet", () => {
  it.effect("remembers the most recent dead agents only: an older one's dial finds no address", () =>
    Effect.gen(function*() {
      const fleet = yield* FleetInternal.makeWith(Fleet.makeCounters(), { retainDead: 2 })
      const agents = yield* Effect.forEach([1, 2, 3], () => fleet.start(workspace))
      for (const agent of agents) yield* fleet.retire(agent.agentId, "die")
      expect(agents.map((agent) => Option.isSome(fleet.info(agent.agentId)))).toEqual([false, true, true])
      const dialer = yield* SocketDialer.layer(SocketDialer.makeCounters()).pipe(
        Layer.provide(AgentAddresses.layerFleet),
        Layer.provide(Layer.succeed(Fleet.Fleet, fleet)),
        Layer.build,
        Effect.map(Context.get(AgentDialer.AgentDialer))
      )
      const forgotten = yield* Effect.flip(Effect.scoped(dialer.dial(agents[0]!.agentId)))
      expect(forgotten.reason).toBe("Unreachable")
      const remembered = yield* Effect.flip(Effect.scoped(dialer.dial(agents[2]!.agentId)))
      expect(remembered.reason).toBe("Refused")
    }).pipe(Effect.scoped))
})

/**
 * A peer on 127.0.0.1 that answers each line it reads with `reply(line)`
 * (nothing when that is undefined), and keeps every line it read. Closed
 * with its scope.
 */
const peer = (reply: (line: string) => string | undefined) => {
  const lines: Array<string> = []
  const heard = Deferred.makeUnsafe<string>()
  return Effect.acquireRelease(
    Effect.callback<{ server: Net.Server; sockets: Set<Net.Socket>; port: number }>((resume) => {
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => {})
        let buffer = ""
        socket.on("data", (chunk: Buffer) => {
          buffer += chunk.toString("utf8")
          let newline = buffer.indexOf("\n")
          while (newline >= 0) {
            const line = buffer.slice(0, newline)
            buffer = buffer.slice(newline + 1)
            lines.push(line)
            Deferred.doneUnsafe(heard, Effect.succeed(line))
            const answer = reply(line)
            if (answer !== undefined) socket.write(answer)
            newline = buffer.indexOf("\n")
          }
        })
      })
      server.listen({ host: "127.0.0.1", port: 0 }, () => {
        const address = server.address()
        resume(Effect.succeed({ server, sockets, port: typeof address === "object" && address ? address.port : 0 }))
      })
    }),
    ({ server, sockets }) =>
      Effect.callback<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ port }) => ({ port, lines, heard })))
}

const secretOf = (bytes: Uint8Array) => Redacted.make(bytes)

/** A book that knows one agent: `agentId` at `port`, with `secret`. */
const bookOf = (agentId: AgentId, port: number, secret: Uint8Array) =>
  Layer.succeed(
    AgentAddresses.AgentAddresses,
    AgentAddresses.AgentAddresses.of({
      record: () => Effect.void,
      resolve: (id) =>
        Effect.succeed(
          id === agentId
            ? Option.some({ agentId, workspaceId: workspace, host: "127.0.0.1", port, secret: secretOf(secret) })
            : Option.none()
        ),
      addWorkspace: () => Effect.void,
      workspaces: Effect.succeed([]),
      ownerOf: () => Effect.succeed(Option.none())
    })
  )

const withDialer = (agentId: AgentId, secret: Uint8Array, port: number) =>
  Effect.provide(SocketDialer.layer(SocketDialer.makeCounters()).pipe(Layer.provide(bookOf(agentId, port, secret))))

/** Dials `agentId`, listed at the peer's port with `secret`, sends a turn, and answers its reply. */
const dialPeer = (agentId: AgentId, secret: Uint8Array, port: number) =>
  Effect.gen(function*() {
    const dialer = yield* AgentDialer.AgentDialer
    return yield* Effect.scoped(Effect.flatMap(dialer.dial(agentId), (connection) => connection.exchange("turn hi")))
  }).pipe(withDialer(agentId, secret, port))

const nonceOfLine = (line: string) => Handshake.nonceOf(line)

/** The handshake's outcomes, on real sockets and the Effect test clock: no test sleeps. */
describe("SocketDialer handshake: an agent proves its identity", () => {
  it.effect("the right secret: the dial is accepted, and the turn reaches the agent", () =>
    Effect.gen(function*() {
      const agentId = newAgentId()
      const secret = Handshake.newSecret()
      const { lines, port } = yield* peer((line) => {
        const nonce = nonceOfLine(line)
        if (nonce !== undefined) return `${Handshake.answer(secret, nonce, agentId)}\n`
        return line.startsWith("turn ") ? `ok ${agentId} ${workspace} ${line.slice(5)}\n` : undefined
      })
      const reply = yield* dialPeer(agentId, secret, port)
      expect(reply).toBe(`ok ${agentId} ${workspace} hi`)
      expect(lines).toHaveLength(2)
      expect(lines[1]).toBe("turn hi")
    }).pipe(Effect.scoped))

  it.effect("a wrong secret: WrongAgent, and no turn is sent to it", () =>
    Effect.gen(function*() {
      const agentId = newAgentId()
      const secret = Handshake.newSecret()
      const impostorSecret = Handshake.newSecret()
      const { lines, port } = yield* peer((line) => {
        const nonce = nonceOfLine(line)
        return nonce === undefined ?
          `ok ${agentId} ${workspace} stolen\n` :
          `${Handshake.answer(impostorSecret, nonce, agentId)}\n`
      })
      const error: AgentDialError = yield* Effect.flip(dialPeer(agentId, secret, port))
      expect(error.reason).toBe("WrongAgent")
      expect(error.detail).toContain("proof made without its secret")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^hello [0-9a-f]{64}$/)
    }).pipe(Effect.scoped))

  it.effect("the bare claim `agent <id>` (an impostor on a freed port): WrongAgent", () =>
    Effect.gen(function*() {
      const agentId = newAgentId()
      const { lines, port } = yield* peer((line) =>
        line.startsWith("hello") ? `agent ${agentId}\n` : `ok ${agentId} x y\n`
      )
      const error = yield* Effect.flip(dialPeer(agentId, Handshake.newSecret(), port))
      expect(error.reason).toBe("WrongAgent")
      expect(error.detail).toContain("no valid proof")
      expect(lines.filter((line) => line.startsWith("turn"))).toEqual([])
    }).pipe(Effect.scoped))

  it.effect("a replayed answer (recorded from a real dial of the agent): WrongAgent, each dial has a fresh nonce", () =>
    Effect.gen(function*() {
      const agentId = newAgentId()
      const secret = Handshake.newSecret()
      // the genuine agent answers once; its answer is recorded
      let recorded: string | undefined
      const { lines, port } = yield* peer((line) => {
        const nonce = nonceOfLine(line)
        if (nonce === undefined) return line.startsWith("turn ") ? `ok ${agentId} ${workspace} hi\n` : undefined
        // the first answer is the genuine one; later dials get it again, replayed by whoever holds the port now
        recorded ??= `${Handshake.answer(secret, nonce, agentId)}\n`
        return recorded
      })
      expect(yield* dialPeer(agentId, secret, port)).toBe(`ok ${agentId} ${workspace} hi`)
      const replayed = yield* Effect.flip(dialPeer(agentId, secret, port))
      expect(replayed.reason).toBe("WrongAgent")
      const nonces = lines.filter((line) => line.startsWith("hello"))
      expect(nonces).toHaveLength(2)
      expect(nonces[0]).not.toBe(nonces[1])
    }).pipe(Effect.scoped))

  it.effect("an answer with another agent's id and its valid proof (a reused port): WrongAgent", () =>
    Effect.gen(function*() {
      const dialed = newAgentId()
      const other = newAgentId()
      const otherSecret = Handshake.newSecret()
      const { port } = yield* peer((line) => {
        const nonce = nonceOfLine(line)
        return nonce === undefined ? undefined : `${Handshake.answer(otherSecret, nonce, other)}\n`
      })
      const error = yield* Effect.flip(dialPeer(dialed, otherSecret, port))
      expect(error.reason).toBe("WrongAgent")
      expect(error.detail).toContain(`answered as agent ${other}`)
    }).pipe(Effect.scoped))

  it.effect("no answer: the dial waits (it neither succeeds nor fails) until its caller's deadline", () =>
    Effect.gen(function*() {
      const agentId = newAgentId()
      const { heard, port } = yield* peer(() => undefined)
      const fiber = yield* Effect.gen(function*() {
        const dialer = yield* AgentDialer.AgentDialer
        return yield* Effect.scoped(dialer.dial(agentId))
      }).pipe(
        withDialer(agentId, Handshake.newSecret(), port),
        Effect.timeout("1 second"),
        Effect.flip,
        Effect.forkChild
      )
      // the hello reached the peer: the dial is past its connect, waiting for the answer
      expect(yield* Deferred.await(heard)).toMatch(/^hello [0-9a-f]{64}$/)
      expect(fiber.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust("999 millis")
      expect(fiber.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust("1 millis")
      const ended = yield* Fiber.join(fiber)
      expect(ended._tag).toBe("TimeoutError")
    }).pipe(Effect.scoped))

  it.effect("a malformed answer is Protocol; an endless line is cut off as Closed", () =>
    Effect.gen(function*() {
      const agentId = newAgentId()
      const first = yield* peer(() => "welcome\n")
      const malformed = yield* Effect.flip(dialPeer(agentId, Handshake.newSecret(), first.port))
      expect(malformed.reason).toBe("Protocol")
      const endless = yield* peer(() => "a".repeat(Handshake.maxHandshakeLine + 1))
      const cut = yield* Effect.flip(dialPeer(agentId, Handshake.newSecret(), endless.port))
      expect(cut.reason).toBe("Closed")
    }).pipe(Effect.scoped))

  it.effect("the fleet's agents prove themselves; after reuse_port the successor answers the old id's port and is refused", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const dialer = yield* AgentDialer.AgentDialer
      const old = yield* fleet.start(workspace)
      const next = yield* fleet.start(workspace)
      expect(yield* Effect.scoped(Effect.flatMap(dialer.dial(old.agentId), (c) => c.exchange("turn a")))).toBe(
        `ok ${old.agentId} ${workspace} a`
      )
      yield* fleet.retire(old.agentId, "reuse_port", next.agentId)
      // the old port is still open, and the successor answers on it
      const wrong = yield* Effect.flip(Effect.scoped(dialer.dial(old.agentId)))
      expect(wrong.reason).toBe("WrongAgent")
      expect(wrong.detail).toContain(`127.0.0.1:${old.port} answered as agent ${next.agentId}`)
      expect(yield* Effect.scoped(Effect.flatMap(dialer.dial(next.agentId), (c) => c.exchange("turn b")))).toBe(
        `ok ${next.agentId} ${workspace} b`
      )
      expect(fleet.serving(workspace).map((agent) => agent.agentId)).toEqual([next.agentId])
    }).pipe(Effect.provide(layer))
  })
})
