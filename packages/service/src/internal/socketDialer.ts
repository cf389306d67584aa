import { type AgentConnection, AgentDialer, AgentDialError, type AgentId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Semaphore from "effect/Semaphore"
import * as Net from "node:net"
import { AgentAddresses } from "../AgentAddresses.js"
import type { DialerStats } from "../SocketDialer.js"
import * as Handshake from "./handshake.js"

// A reply is one line: a turn's echo is at most the API's body limit (1 MiB
// by default). A peer that sends more with no newline is cut off rather than
// buffered without end.
const maxLineBytes = 8 * 1024 * 1024

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

/** What the socket's `close` needs to know to tell a hang-up from the dialer's own close. */
interface Life {
  readonly agentId: AgentId
  readonly serial: number
  proven: boolean
  released: boolean
}

const isRefused = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && "code" in cause && cause.code === "ECONNREFUSED"

/**
 * `hangups`: where to tell the connections the dialer did not close itself
 * (the agent hung up, or an exchange was cut), once their handshake proved them.
 */
export const make = (counters: DialerCounters, hangups: Option.Option<Queue.Queue<AgentId>> = Option.none()) =>
  Effect.gen(function*() {
    const addresses = yield* AgentAddresses
    let serial = 0

    // The dials of each agent in progress or with an open socket, by serial: a hang-up is told only when no
    // newer dial of the agent is live. A newer one means the closed connection was already replaced (a probe that
    // timed out and cut its exchange, then the turn's fresh dial): telling it would drop its replacement.
    const live = new Map<AgentId, Set<number>>()
    const enter = (life: Life) => {
      const serials = live.get(life.agentId) ?? new Set()
      serials.add(life.serial)
      live.set(life.agentId, serials)
    }
    const leave = (life: Life) => {
      const serials = live.get(life.agentId)
      if (serials === undefined) return
      serials.delete(life.serial)
      if (serials.size === 0) live.delete(life.agentId)
    }
    const replaced = (life: Life) => {
      for (const other of live.get(life.agentId) ?? []) if (other > life.serial) return true
      return false
    }

    // Opens the TCP connection, interruptibly (an address that never answers
    // must not hold the dial). The socket is counted as opened on `connect`
    // and as closed on its own `close` event, and destroyed by a finalizer of
    // the scope the dial runs in.
    const open = (host: string, port: number, life: Life) =>
      Effect.uninterruptibleMask((restore) =>
        restore(Effect.callback<Net.Socket, Error>((resume) => {
          const conn = Net.createConnection({ host, port, noDelay: true })
          const onError = (cause: Error) => resume(Effect.fail(cause))
          conn.once("error", onError)
          conn.once("connect", () => {
            conn.off("error", onError)
            // a reset after the handshake shows as `close`, which ends the reader
            conn.on("error", () => {})
            counters.opened++
            conn.once("close", () => {
              counters.closed++
              leave(life)
              if (life.proven && !life.released && Option.isSome(hangups) && !replaced(life)) {
                Queue.offerUnsafe(hangups.value, life.agentId)
              }
            })
            resume(Effect.succeed(conn))
          })
          return Effect.sync(() => conn.destroy())
        })).pipe(Effect.tap((conn) =>
          Effect.addFinalizer(() =>
            Effect.sync(() => {
              life.released = true
              conn.destroy()
            })
          )
        ))
      )

    const dial = (agentId: AgentId) =>
      Effect.suspend(() => {
        // live from its first step: a hang-up told while this dial still resolves the address would drop it
        const life: Life = { agentId, serial: ++serial, proven: false, released: false }
        enter(life)
        return dialAs(life).pipe(Effect.onError(() => Effect.sync(() => leave(life))))
      })

    const dialAs = (life: Life) =>
      Effect.gen(function*() {
        const agentId = life.agentId
        counters.dials++
        const fail = (reason: Reason, detail: string, cause?: unknown) =>
          Effect.fail(new AgentDialError({ agentId, reason, detail, cause }))
        // a database fault while resolving is a dial that could not reach the agent
        const address = yield* addresses.resolve(agentId).pipe(
          Effect.catch((error) => fail("Unreachable", error.message, error))
        )
        if (Option.isNone(address)) return yield* fail("Unreachable", "no address for this agent")
        const where = `${address.value.host}:${address.value.port}`

        const conn = yield* open(address.value.host, address.value.port, life).pipe(
          Effect.catch((error) =>
            isRefused(error)
              ? fail("Refused", `${where} refused the connection`)
              : fail("Unreachable", `${where}: ${error.message}`, error)
          )
        )
        // `null` marks the end of the stream, after any reply already read.
        const lines = yield* Queue.unbounded<string | null>()
        const decoder = new TextDecoder()
        let buffer = ""
        let handshaking = true
        conn.on("data", (chunk: Buffer) => {
          buffer += decoder.decode(chunk, { stream: true })
          if (buffer.length > (handshaking ? Handshake.maxHandshakeLine : maxLineBytes) && !buffer.includes("\n")) {
            // the close ends the reader: the dial (or the exchange) fails as `Closed`
            return conn.destroy()
          }
          let newline = buffer.indexOf("\n")
          while (newline >= 0) {
            Queue.offerUnsafe(lines, buffer.slice(0, newline))
            buffer = buffer.slice(newline + 1)
            newline = buffer.indexOf("\n")
          }
        })
        conn.once("close", () => Queue.offerUnsafe(lines, null))

        const readLine = Effect.flatMap(
          Queue.take(lines),
          (line) =>
            line === null
              ? Effect.andThen(Queue.offer(lines, null), fail("Closed", "the agent closed the connection"))
              : Effect.succeed(line)
        )
        const send = (line: string) =>
          Effect.callback<void, AgentDialError>((resume) => {
            conn.write(`${line}\n`, (error) => {
              resume(
                error === undefined || error === null
                  ? Effect.void
                  : Effect.fail(new AgentDialError({ agentId, reason: "Closed", detail: "write failed", cause: error }))
              )
            })
          })

        // a fresh nonce per dial: an answer recorded on another dial proves nothing here
        const nonce = Handshake.newNonce()
        yield* send(Handshake.hello(nonce))
        const answer = yield* readLine
        handshaking = false
        const verdict = Handshake.verify(agentId, Redacted.value(address.value.secret), nonce, answer)
        if (verdict._tag !== "Proven") return yield* fail(verdict._tag, `${where} ${verdict.detail}`)
        life.proven = true

        // one exchange at a time: a reply is the next line, so requests must not interleave
        const mutex = yield* Semaphore.make(1)
        const connection: AgentConnection = {
          agentId,
          connectionId: `conn-${life.serial}`,
          // An exchange cut between its request and its reply (a probe's timeout, a turn's deadline) leaves the
          // reply on its way: on a connection shared across turns the next exchange would read it as its own.
          // The socket is closed instead, and every later exchange fails as `Closed`.
          exchange: (request) =>
            Semaphore.withPermit(
              mutex,
              Effect.andThen(send(request), readLine).pipe(Effect.onInterrupt(() => Effect.sync(() => conn.destroy())))
            )
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

/** The probe of a shared connection: `ping`, answered `pong`, with no turn and no identity (proven at the handshake). */
export const probe = (connection: AgentConnection): Effect.Effect<void, AgentDialError> =>
  Effect.flatMap(connection.exchange(Handshake.ping), (reply) =>
    reply === Handshake.pong
      ? Effect.void
      : Effect.fail(
        new AgentDialError({
          agentId: connection.agentId,
          reason: "Protocol",
          detail: `unexpected answer to ${Handshake.ping}: ${reply.length > 80 ? `${reply.slice(0, 80)}...` : reply}`
        })
      ))
