/**
 * The service's part of connections kept across turns: the agents' `ping`,
 * the dialer's probe, hang-ups and cut exchanges, the fleet's handshake
 * latency, and the wiring of `Service.layer` (core's `SharedConnections`
 * over the socket dialer, for lazydial only). Real sockets and agents, with
 * an embedded database for the wiring: real time, each wait bounded.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { RebuildNotices } from "@lazydial/binding"
import { AgentDialer, type AgentId, type ChatId, type WorkspaceId } from "@lazydial/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import * as Net from "node:net"
import * as AgentAddresses from "../src/AgentAddresses.js"
import { Chats } from "../src/Chats.js"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Fleet from "../src/Fleet.js"
import * as Handshake from "../src/internal/handshake.js"
import * as Probe from "../src/Probe.js"
import * as Service from "../src/Service.js"
import * as SocketDialer from "../src/SocketDialer.js"

const workspace = "6f1c2a53-7a0e-4d4e-9a9b-2f1f4c1d9a01" as WorkspaceId
// safe: fresh UUIDs are valid ids
const newWorkspace = () => randomUUID() as WorkspaceId

/** A fleet (with `options`) and a socket dialer on its address book, telling hang-ups to a queue of its own. */
const setup = (options?: Fleet.Options) => {
  const dialerCounters = SocketDialer.makeCounters()
  const fleet = Fleet.layerWith(Fleet.makeCounters(), options)
  const addresses = AgentAddresses.layerFleet.pipe(Layer.provideMerge(fleet))
  const hangups = Layer.effect(SocketDialer.Hangups, SocketDialer.makeHangups)
  const layer = SocketDialer.layer(dialerCounters).pipe(
    Layer.provideMerge(Layer.merge(addresses, hangups))
  )
  return { dialerCounters, layer }
}

/** Polls `condition` every 10 ms, for at most 5 seconds. */
const until = <R>(condition: Effect.Effect<boolean, never, R>) =>
  condition.pipe(
    Effect.filterOrFail((met) => met),
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: "5 seconds" })))
  )

const told = Effect.flatMap(SocketDialer.Hangups, ({ queue }) => Effect.map(Queue.size(queue), (n) => n))

/** A raw client of an agent's port: writes lines, and answers each line it reads with the time it took. */
const rawClient = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<Net.Socket>((resume) => {
      const socket = Net.connect({ host: "127.0.0.1", port }, () => resume(Effect.succeed(socket)))
      socket.on("error", () => {})
    }),
    (socket) => Effect.sync(() => socket.destroy())
  ).pipe(Effect.map((socket) => {
    let buffer = ""
    const waiting: Array<(line: string) => void> = []
    socket.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8")
      let newline = buffer.indexOf("\n")
      while (newline >= 0) {
        waiting.shift()?.(buffer.slice(0, newline))
        buffer = buffer.slice(newline + 1)
        newline = buffer.indexOf("\n")
      }
    })
    /** Sends `line`; the reply and how long it took, or None within `within`. */
    const ask = (line: string, within: Duration.Input = "2 seconds") =>
      Effect.callback<{ readonly reply: string; readonly millis: number }>((resume) => {
        const began = performance.now()
        waiting.push((reply) => resume(Effect.succeed({ reply, millis: performance.now() - began })))
        socket.write(`${line}\n`)
      }).pipe(Effect.timeoutOption(within))
    return { ask }
  }))

describe("agents and the socket dialer", () => {
  it.live("an agent answers ping with pong, with no turn; SocketDialer.probe passes on it", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const dialer = yield* AgentDialer.AgentDialer
      const agent = yield* fleet.start(workspace)
      const connection = yield* dialer.dial(agent.agentId)
      expect(yield* connection.exchange(Handshake.ping)).toBe("pong")
      yield* SocketDialer.probe(connection)
      // the connection still serves turns after its probes
      expect(yield* connection.exchange("turn hi")).toBe(`ok ${agent.agentId} ${workspace} hi`)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("SocketDialer.probe: any answer but pong is Protocol; a dead agent's connection is Closed", () =>
    Effect.gen(function*() {
      const agentId = randomUUID() as AgentId
      const talking = (reply: string) => ({
        agentId,
        connectionId: "conn-test",
        exchange: () => Effect.succeed(reply)
      })
      const wrong = yield* Effect.flip(SocketDialer.probe(talking("error unknown request")))
      deepStrictEqual([wrong.reason, wrong.detail], ["Protocol", "unexpected answer to ping: error unknown request"])

      const { layer } = setup()
      const closed = yield* Effect.gen(function*() {
        const fleet = yield* Fleet.Fleet
        const dialer = yield* AgentDialer.AgentDialer
        const agent = yield* fleet.start(workspace)
        const connection = yield* dialer.dial(agent.agentId)
        yield* fleet.retire(agent.agentId, "die")
        return yield* Effect.flip(SocketDialer.probe(connection))
      }).pipe(Effect.scoped, Effect.provide(layer))
      expect(closed.reason).toBe("Closed")
    }))

  it.live("an exchange cut between request and reply closes the socket: its late reply is no one's", () => {
    const { dialerCounters, layer } = setup()
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const dialer = yield* AgentDialer.AgentDialer
      const agent = yield* fleet.start(workspace)
      const connection = yield* dialer.dial(agent.agentId)
      yield* fleet.retire(agent.agentId, "hang")
      const cut = yield* connection.exchange(Handshake.ping).pipe(Effect.timeoutOption("100 millis"))
      expect(Option.isNone(cut)).toBe(true)
      yield* until(Effect.sync(() => dialerCounters.closed === 1))
      expect((yield* Effect.flip(connection.exchange("turn hi"))).reason).toBe("Closed")
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("Hangups: an agent that closes a proven connection is told; a connection its scope closed is not", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const dialer = yield* AgentDialer.AgentDialer
      const { queue } = yield* SocketDialer.Hangups
      const agent = yield* fleet.start(workspace)
      // closed by its own scope: no hang-up
      yield* Effect.scoped(dialer.dial(agent.agentId))
      yield* Effect.sleep("100 millis")
      expect(yield* told).toBe(0)
      // the agent dies under an open connection: told once
      yield* dialer.dial(agent.agentId)
      yield* fleet.retire(agent.agentId, "die")
      expect(yield* Queue.take(queue).pipe(Effect.timeoutOption("5 seconds"))).toEqual(Option.some(agent.agentId))
      yield* Effect.sleep("100 millis")
      expect(yield* told).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("Hangups: a connection cut after a newer dial of its agent began is not told (it was replaced)", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const dialer = yield* AgentDialer.AgentDialer
      const agent = yield* fleet.start(workspace)
      const old = yield* dialer.dial(agent.agentId)
      const fresh = yield* dialer.dial(agent.agentId)
      // a cut exchange closes the old one while the fresh one is open: what a timed-out probe, then the turn's
      // fresh dial, do
      yield* fleet.retire(agent.agentId, "hang")
      yield* old.exchange(Handshake.ping).pipe(Effect.timeoutOption("50 millis"))
      yield* Effect.sleep("100 millis")
      expect(yield* told).toBe(0)
      // the newest one cut is told: nothing replaced it
      yield* fresh.exchange(Handshake.ping).pipe(Effect.timeoutOption("50 millis"))
      yield* until(Effect.map(told, (n) => n === 1))
    }).pipe(Effect.scoped, Effect.provide(layer))
  })
})

describe("the fleet's dial latency", () => {
  it.live("each agent holds its handshake answer back; pings and turns answer at once", () => {
    const { layer } = setup({ dialLatency: "200 millis" })
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const dialer = yield* AgentDialer.AgentDialer
      const agent = yield* fleet.start(workspace)
      const [took, connection] = yield* Effect.timed(dialer.dial(agent.agentId))
      expect(Duration.toMillis(took)).toBeGreaterThanOrEqual(195)
      expect(Duration.toMillis(took)).toBeLessThan(1500)
      const [pinged] = yield* Effect.timed(connection.exchange(Handshake.ping))
      const [turned] = yield* Effect.timed(connection.exchange("turn hi"))
      expect(Duration.toMillis(pinged)).toBeLessThan(100)
      expect(Duration.toMillis(turned)).toBeLessThan(100)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })

  it.live("a line sent behind the held-back hello waits for it, in order; an agent hung meanwhile never answers", () => {
    const { layer } = setup({ dialLatency: "150 millis" })
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const first = yield* fleet.start(workspace)
      const client = yield* rawClient(first.port)
      const [hello, turn] = yield* Effect.all([
        client.ask(Handshake.hello(Handshake.newNonce())),
        Effect.andThen(Effect.sleep("10 millis"), client.ask("turn early"))
      ], { concurrency: "unbounded" })
      expect(Option.map(hello, (answer) => answer.reply.startsWith(`agent ${first.agentId} `))).toEqual(
        Option.some(true)
      )
      expect(Option.map(turn, (answer) => answer.reply)).toEqual(Option.some(`ok ${first.agentId} ${workspace} early`))
      expect(Option.getOrThrow(hello).millis).toBeGreaterThanOrEqual(145)

      const second = yield* fleet.start(workspace)
      const late = yield* rawClient(second.port)
      const answer = yield* Effect.forkChild(late.ask(Handshake.hello(Handshake.newNonce()), "600 millis"))
      yield* Effect.sleep("50 millis")
      yield* fleet.retire(second.agentId, "hang")
      expect(Option.isNone(yield* Fiber.join(answer))).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(layer))
  })
})

const counters = Service.makeCounters()

/** An instance of `Service.layer` with `options` over the suite's database, for `use`. */
const onInstance = <A, E>(
  options: Partial<Service.Options>,
  use: Effect.Effect<A, E, Layer.Success<ReturnType<typeof Service.layer>> | Scope.Scope>,
  strategy: "lazydial" | "latest" = "lazydial",
  instanceCounters: Service.Counters = counters
) =>
  Effect.scoped(
    Effect.flatMap(
      Layer.build(
        Service.layer(
          { validationDelay: "300 millis", dialTimeout: "3 seconds", ...options },
          instanceCounters,
          strategy
        )
      ),
      (context) => Effect.provide(use, context)
    )
  )

/** A workspace with a running agent, and a chat on it bound by a first turn. */
const boundChat = Effect.gen(function*() {
  const chats = yield* Chats
  const workspaceId = newWorkspace()
  const agent = yield* ControlPlane.startWorkspace(workspaceId)
  const chat = yield* chats.create(Option.some(workspaceId))
  yield* Effect.scoped(chats.connect(chat.chatId))
  return { workspaceId, chatId: chat.chatId, agentId: agent.agentId }
})

/** A turn: its outcome and the agent's reply, or the tag of its error. */
const turn = (chatId: ChatId) =>
  Effect.flatMap(
    Chats,
    (chats) =>
      Effect.scoped(Effect.flatMap(chats.connect(chatId), (connected) =>
        // bounded, as the server bounds it: a hung agent's turn fails instead of holding the test
        Effect.map(connected.connection.exchange("turn hi").pipe(Effect.timeout("3 seconds")), (reply) => ({
          outcome: connected.outcome,
          agentId: connected.connection.agentId,
          reply
        }))))
  ).pipe(Effect.catch((error) => Effect.succeed({ failed: error._tag })))

const total = (name: string) => Effect.map(PrometheusMetrics.format(), (text) => Probe.counterTotal(text, name))

/** The dials the instance's sockets made while `effect` ran. */
const dialsOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const before = counters.dialer.dials
    const result = yield* effect
    return { result, dials: counters.dialer.dials - before }
  })

layer(Service.layerDatabase(undefined), { timeout: 120_000, excludeTestServices: true })(
  "Service.layer: connections kept across turns",
  (it) => {
    it.effect(
      "lazydial borrows: three turns of a bound chat dial nothing; latest dials each one",
      () =>
        Effect.gen(function*() {
          const threeTurns = (strategy: "lazydial" | "latest") =>
            onInstance(
              {},
              Effect.flatMap(boundChat, ({ chatId }) =>
                dialsOf(
                  Effect.forEach([1, 2, 3], () => Effect.map(turn(chatId), (t) => "outcome" in t ? t.outcome : t))
                )),
              strategy
            )
          deepStrictEqual(yield* threeTurns("lazydial"), { result: ["fast", "fast", "fast"], dials: 0 })
          deepStrictEqual(yield* threeTurns("latest"), { result: ["direct", "direct", "direct"], dials: 3 })
        }),
      30_000
    )

    it.effect(
      "an agent that dies under a kept connection (notices off): the next turn dials and switches",
      () =>
        onInstance(
          { notices: false },
          Effect.gen(function*() {
            const { agentId, chatId, workspaceId } = yield* boundChat
            const drops = yield* total("lazydial_shared_connection_drops_total")
            // a rebuild whose notice nobody hears: only the hang-up tells this replica the connection is dead
            const next = yield* ControlPlane.rebuild(workspaceId, "die")
            yield* until(Effect.map(total("lazydial_shared_connection_drops_total"), (now) => now > drops))
            const after = yield* dialsOf(turn(chatId))
            expect(after.dials).toBe(2)
            deepStrictEqual(after.result, {
              outcome: "switched",
              agentId: next.agentId,
              reply: `ok ${next.agentId} ${workspaceId} hi`
            })
            expect(next.agentId).not.toBe(agentId)
          })
        ),
      30_000
    )

    it.effect(
      "a rebuild whose old agent hangs, its socket open: the kept connection closes once the notice's read answers",
      () =>
        onInstance(
          {},
          Effect.gen(function*() {
            const notices = yield* RebuildNotices.RebuildNotices
            yield* until(Effect.map(notices.status, (status) => status.listening))
            const fleet = yield* Fleet.Fleet
            const { chatId, workspaceId } = yield* boundChat
            yield* turn(chatId)
            expect((yield* fleet.stats).acceptedOpen).toBe(1)
            // the old agent hangs: it never closes its socket, so no hang-up tells the replica; only the view can
            yield* ControlPlane.rebuild(workspaceId, "hang")
            expect((yield* fleet.stats).retiredOpen).toBe(1)
            // no turn meanwhile: the read the notice prompted drops the connection, and nobody borrows it
            yield* until(Effect.map(fleet.stats, (stats) => stats.retiredOpen === 0))
            expect(yield* turn(chatId)).toMatchObject({ outcome: "switched_by_notice" })
          }),
          "lazydial",
          Service.makeCounters()
        ),
      30_000
    )

    it.effect(
      "notices off: every borrow probes, so a retired agent that hangs with its socket open is raced by the " +
        "validation delay, and the turn switches",
      () =>
        onInstance(
          { notices: false },
          Effect.gen(function*() {
            const { chatId, workspaceId } = yield* boundChat
            const next = yield* ControlPlane.rebuild(workspaceId, "hang")
            const [took, after] = yield* Effect.timed(turn(chatId))
            deepStrictEqual(after, {
              outcome: "switched",
              agentId: next.agentId,
              reply: `ok ${next.agentId} ${workspaceId} hi`
            })
            // the validation delay (300 ms), not the probe's timeout (1 s) nor an exchange's wait
            expect(Duration.toMillis(took)).toBeGreaterThanOrEqual(290)
            expect(Duration.toMillis(took)).toBeLessThan(1000)
          })
        ),
      30_000
    )

    it.effect("the shared connections' counters are on /metrics (Effect's registry)", () =>
      onInstance(
        {},
        Effect.gen(function*() {
          const total = (name: string) =>
            Effect.map(PrometheusMetrics.format(), (text) => Probe.counterTotal(text, name))
          const dials = yield* total("lazydial_shared_connection_dials_total")
          const borrows = yield* total("lazydial_shared_connection_borrows_total")
          const { chatId } = yield* boundChat
          yield* turn(chatId)
          yield* turn(chatId)
          expect((yield* total("lazydial_shared_connection_dials_total")) - dials).toBe(1)
          expect((yield* total("lazydial_shared_connection_borrows_total")) - borrows).toBe(3)
        })
      ), 30_000)

    it.effect("sharing off: each turn dials its own connection, closed when the turn ends", () =>
      onInstance(
        { sharedConnections: { enabled: false } },
        Effect.gen(function*() {
          const { chatId } = yield* boundChat
          const { dials } = yield* dialsOf(Effect.all([turn(chatId), turn(chatId)]))
          expect(dials).toBe(2)
          yield* until(Effect.sync(() => SocketDialer.stats(counters.dialer).stillOpen === 0))
        })
      ), 30_000)

    it.effect(
      "the instance closes every kept connection when it shuts down: no socket left open",
      () =>
        Effect.gen(function*() {
          yield* onInstance(
            {},
            Effect.gen(function*() {
              for (let i = 0; i < 3; i++) yield* turn((yield* boundChat).chatId)
              expect(SocketDialer.stats(counters.dialer).stillOpen).toBe(3)
            })
          )
          yield* until(Effect.sync(() => SocketDialer.stats(counters.dialer).stillOpen === 0))
          expect(Fleet.snapshot(counters.fleet).acceptedOpen).toBe(0)
        }),
      30_000
    )
  }
)
