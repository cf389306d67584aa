import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Socket from "@effect/platform/Socket"
import { type AgentConnection, AgentDialer, AgentDialError, type AgentId } from "@lazydial/core"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Net from "node:net"
import { AgentAddresses } from "../AgentAddresses.js"
import type { DialerStats } from "../SocketDialer.js"

type Reason = AgentDialError["reason"]

export interface DialerCounters {
  dials: number
  opened: number
  closed: number
  errors: Record<Reason, number>
}

export const makeCounters = (): DialerCounters => ({
  dials: 0,
  opened: 0,
  closed: 0,
  errors: { Unreachable: 0, Refused: 0, WrongAgent: 0, Protocol: 0, Closed: 0 }
})

export const snapshot = (counters: DialerCounters): DialerStats => ({
  dials: counters.dials,
  opened: counters.opened,
  closed: counters.closed,
  stillOpen: counters.opened - counters.closed,
  errors: { ...counters.errors }
})

const isRefused = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "code" in cause && cause.code === "ECONNREFUSED"

export const make = (counters: DialerCounters) =>
  Effect.gen(function*() {
    const addresses = yield* AgentAddresses
    let serial = 0

    // Opens the TCP connection. The socket is counted as opened on `connect`
    // and as closed on its own `close` event, and destroyed by a finalizer of
    // the scope `Socket.run` gives it.
    const open = (host: string, port: number) =>
      Effect.uninterruptibleMask((restore) =>
        restore(Effect.async<Net.Socket, Socket.SocketError>((resume) => {
          const conn = Net.createConnection({ host, port, noDelay: true })
          let settled = false
          conn.on("error", (cause) => {
            if (settled) return
            settled = true
            resume(Effect.fail(new Socket.SocketGenericError({ reason: "Open", cause })))
          })
          conn.once("connect", () => {
            counters.opened++
            conn.once("close", () => {
              counters.closed++
            })
            if (settled) return
            settled = true
            resume(Effect.succeed(conn))
          })
          return Effect.sync(() => conn.destroy())
        })).pipe(Effect.tap((conn) => Effect.addFinalizer(() => Effect.sync(() => conn.destroy()))))
      )

    const dial = (agentId: AgentId) =>
      Effect.gen(function*() {
        counters.dials++
        const fail = (reason: Reason, detail: string, cause?: unknown) =>
          Effect.fail(new AgentDialError({ agentId, reason, detail, cause }))
        // a database fault while resolving is a dial that could not reach the agent
        const address = yield* addresses.resolve(agentId).pipe(
          Effect.catchAll((error) => fail("Unreachable", error.message, error))
        )
        if (Option.isNone(address)) return yield* fail("Unreachable", "no address for this agent")
        const where = `${address.value.host}:${address.value.port}`

        const socket = yield* NodeSocket.fromDuplex(open(address.value.host, address.value.port))
        // `null` marks the end of the stream, after any reply already read.
        const lines = yield* Queue.unbounded<string | null>()
        const ready = yield* Deferred.make<void, Socket.SocketError>()
        const decoder = new TextDecoder()
        let buffer = ""
        yield* socket.run((chunk) => {
          buffer += decoder.decode(chunk, { stream: true })
          let newline = buffer.indexOf("\n")
          while (newline >= 0) {
            Queue.unsafeOffer(lines, buffer.slice(0, newline))
            buffer = buffer.slice(newline + 1)
            newline = buffer.indexOf("\n")
          }
        }, { onOpen: Deferred.succeed(ready, undefined) }).pipe(
          Effect.tapError((error) => Deferred.fail(ready, error)),
          Effect.ensuring(Queue.offer(lines, null)),
          Effect.ignore,
          Effect.forkScoped
        )
        yield* Deferred.await(ready).pipe(
          Effect.catchAll((error) =>
            error.reason === "Open" && isRefused(error.cause)
              ? fail("Refused", `${where} refused the connection`)
              : fail("Unreachable", `${where}: ${error.message}`, error)
          )
        )

        const readLine = Effect.flatMap(
          Queue.take(lines),
          (line) =>
            line === null
              ? Effect.zipRight(Queue.offer(lines, null), fail("Closed", "the agent closed the connection"))
              : Effect.succeed(line)
        )
        const write = yield* socket.writer
        const send = (line: string) =>
          write(`${line}\n`).pipe(Effect.catchAll((error) => fail("Closed", "write failed", error)))

        yield* send("hello")
        const answer = yield* readLine
        if (!answer.startsWith("agent ")) return yield* fail("Protocol", `unexpected handshake answer: ${answer}`)
        const answered = answer.slice("agent ".length)
        if (answered !== agentId) {
          return yield* fail("WrongAgent", `${where} answered as agent ${answered}`)
        }

        const mutex = yield* Effect.makeSemaphore(1)
        const connection: AgentConnection = {
          agentId,
          connectionId: `conn-${++serial}`,
          exchange: (request) => mutex.withPermits(1)(Effect.zipRight(send(request), readLine))
        }
        return connection
      }).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            counters.errors[error.reason]++
          })
        )
      )

    return AgentDialer.AgentDialer.of({ dial })
  })
