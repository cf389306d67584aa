/**
 * Real agent faults on real sockets (127.0.0.1): agents killed in the middle
 * of a handshake, agents that accept and never answer, and a dead agent's port
 * taken by another workspace's agent. The turn path is the service's own
 * (`Chats` over binding's `ChatConnector` and core's `LazyDial`), with an
 * in-memory store and control plane so that each case costs about a second.
 *
 * Every case asserts how the turn ends (an outcome, or a typed error), that it
 * ends within the dial timeout, that no turn reaches a wrong agent, and that
 * every socket, on both sides, is closed at the end.
 */
import { describe, expect, it } from "@effect/vitest"
import { BindingStore, ChatConnector } from "@lazydial/binding"
import { type ChatId, CurrentAgent, LazyDial, type WorkspaceId } from "@lazydial/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { randomUUID } from "node:crypto"
import * as AgentAddresses from "../src/AgentAddresses.js"
import { Chats, layer as chatsLayer } from "../src/Chats.js"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Fleet from "../src/Fleet.js"
import * as SocketDialer from "../src/SocketDialer.js"

const delayMs = 200
const dialTimeoutMs = 800
// the slack a loaded 2-core machine needs on top of the dial timeout
const slackMs = 700

const newWorkspace = () => randomUUID() as WorkspaceId

const setup = () => {
  const fleetCounters = Fleet.makeCounters()
  const dialerCounters = SocketDialer.makeCounters()
  const fleet = Fleet.layerWith(fleetCounters)
  const addresses = AgentAddresses.layerFleet.pipe(Layer.provideMerge(fleet))
  const base = Layer.merge(
    SocketDialer.layer(dialerCounters).pipe(Layer.provideMerge(addresses)),
    ControlPlane.layerMemory
  )
  const connector = ChatConnector.layer({ dialTimeout: Duration.millis(dialTimeoutMs) }).pipe(
    Layer.provide(LazyDial.layer({ delay: Duration.millis(delayMs) })),
    Layer.provideMerge(BindingStore.layerMemory)
  )
  const layer = chatsLayer.pipe(Layer.provide(connector), Layer.provideMerge(base), Layer.orDie)
  return { fleetCounters, dialerCounters, layer }
}

/** One turn: connect, send a turn, check who answered. Ends with the outcome or the typed error. */
const turn = (chatId: ChatId, workspaceId: WorkspaceId) =>
  Effect.gen(function*() {
    const chats = yield* Chats
    return yield* Effect.scoped(Effect.gen(function*() {
      const connected = yield* chats.connect(chatId)
      const reply = yield* connected.connection.exchange("turn hi").pipe(Effect.timeout(Duration.millis(dialTimeoutMs)))
      const [word, agentId, replyWorkspace] = reply.split(" ")
      return {
        outcome: connected.outcome,
        agentId: connected.connection.agentId,
        rightAgent: word === "ok" && agentId === connected.connection.agentId && replyWorkspace === workspaceId
      }
    }))
  }).pipe(Effect.timed, Effect.map(([elapsed, result]) => ({ elapsedMs: Duration.toMillis(elapsed), ...result })))

type Counters = ReturnType<typeof setup>

/** Closes the instance, then checks both sides of every socket. */
const leaksNothing = (counters: Counters) =>
  Effect.gen(function*() {
    for (let i = 0; i < 50; i++) {
      const open = SocketDialer.stats(counters.dialerCounters).stillOpen +
        counters.fleetCounters.accepted - counters.fleetCounters.acceptedClosed
      if (open === 0) break
      yield* Effect.sleep("20 millis")
    }
    expect(SocketDialer.stats(counters.dialerCounters).stillOpen).toBe(0)
    expect(counters.fleetCounters.accepted - counters.fleetCounters.acceptedClosed).toBe(0)
  })

/** A test on a fresh fleet and instance; afterwards, no socket may be left open on either side. */
const onRealAgents = <E>(
  body: (counters: Counters) => Effect.Effect<void, E, Layer.Success<Counters["layer"]>>
) =>
() => {
  const counters = setup()
  return body(counters).pipe(Effect.provide(counters.layer), Effect.andThen(leaksNothing(counters)))
}

/** A chat on a new running workspace, bound by its first turn. */
const boundChat = Effect.gen(function*() {
  const workspaceId = newWorkspace()
  const chats = yield* Chats
  yield* ControlPlane.startWorkspace(workspaceId)
  const chat = yield* chats.create(Option.some(workspaceId))
  const first = yield* turn(chat.chatId, workspaceId)
  expect(first.outcome).toBe("lazy_bind")
  expect(first.rightAgent).toBe(true)
  return { chatId: chat.chatId, agentId: first.agentId, workspaceId }
})

describe("agent faults on real sockets", () => {
  it.live(
    "an agent killed mid-handshake is Closed at once, and the turn switches to the new agent",
    onRealAgents((counters) =>
      Effect.gen(function*() {
        const { agentId, chatId, workspaceId } = yield* boundChat
        yield* ControlPlane.rebuild(workspaceId, "die_mid_handshake")

        const next = yield* turn(chatId, workspaceId)
        expect(next.outcome).toBe("switched")
        expect(next.agentId).not.toBe(agentId)
        expect(next.rightAgent).toBe(true)
        // the failure was fast: no wait for the validation delay
        expect(next.elapsedMs).toBeLessThan(delayMs + slackMs)
        expect(counters.fleetCounters.handshakesCut).toBe(1)
        expect(counters.dialerCounters.errors.Closed).toBe(1)
      })
    )
  )

  it.live(
    "an agent killed mid-handshake that is still current fails the turn with a typed Closed error",
    onRealAgents((counters) =>
      Effect.gen(function*() {
        const { agentId, chatId, workspaceId } = yield* boundChat
        const fleet = yield* Fleet.Fleet
        // the control plane has not noticed: the lookup still names the crashing agent
        yield* fleet.retire(agentId, "die_mid_handshake")

        const started = performance.now()
        const error = yield* Effect.flip(turn(chatId, workspaceId))
        expect(error._tag).toBe("AgentDialError")
        expect(error._tag === "AgentDialError" && error.reason).toBe("Closed")
        expect(performance.now() - started).toBeLessThan(dialTimeoutMs + slackMs)
        // core's one retry after the lookup confirmed the agent: two handshakes cut
        expect(counters.fleetCounters.handshakesCut).toBe(2)
      })
    )
  )

  it.live(
    "an agent that accepts and never answers is replaced after the validation delay",
    onRealAgents(() =>
      Effect.gen(function*() {
        const { agentId, chatId, workspaceId } = yield* boundChat
        yield* ControlPlane.rebuild(workspaceId, "hang")

        const next = yield* turn(chatId, workspaceId)
        expect(next.outcome).toBe("switched")
        expect(next.agentId).not.toBe(agentId)
        expect(next.rightAgent).toBe(true)
        expect(next.elapsedMs).toBeGreaterThanOrEqual(delayMs - 5)
        expect(next.elapsedMs).toBeLessThan(dialTimeoutMs + slackMs)
      })
    )
  )

  it.live(
    "an agent that never answers and is still current ends the turn with DialTimeout, not a hang",
    onRealAgents((counters) =>
      Effect.gen(function*() {
        const { agentId, chatId, workspaceId } = yield* boundChat
        const fleet = yield* Fleet.Fleet
        yield* fleet.retire(agentId, "hang")

        // several turns at once, so the shared dial and every waiter are released
        const started = performance.now()
        const errors = yield* Effect.forEach(
          [1, 2, 3],
          () => Effect.flip(turn(chatId, workspaceId)),
          { concurrency: "unbounded" }
        )
        const elapsed = performance.now() - started
        for (const error of errors) expect(error._tag).toBe("DialTimeout")
        expect(elapsed).toBeGreaterThanOrEqual(dialTimeoutMs - 5)
        expect(elapsed).toBeLessThan(dialTimeoutMs + slackMs)
        // the hung connections were closed by the turns' scopes, not by the end of the fleet
        yield* Effect.sleep("50 millis")
        expect(SocketDialer.stats(counters.dialerCounters).stillOpen).toBe(0)
      })
    )
  )

  it.live(
    "a dead agent's port taken by another workspace's agent is caught by the handshake",
    onRealAgents((counters) =>
      Effect.gen(function*() {
        const fleet = yield* Fleet.Fleet
        const chats = yield* Chats
        const workspaceId = newWorkspace()
        const intruderWorkspace = newWorkspace()
        yield* ControlPlane.startWorkspace(workspaceId)
        const bound = yield* Effect.forEach([1, 2, 3, 4, 5, 6], () =>
          Effect.gen(function*() {
            const chat = yield* chats.create(Option.some(workspaceId))
            const first = yield* turn(chat.chatId, workspaceId)
            expect(first.rightAgent).toBe(true)
            return chat.chatId
          }))
        const control = yield* ControlPlane.ControlPlane
        const current = Option.getOrThrow(yield* control.peek(workspaceId))
        const old = Option.getOrThrow(fleet.info(current.agentId))

        // the old agent dies; an agent of another workspace listens on its port
        yield* fleet.retire(old.agentId, "reuse_port")
        const intruder = yield* fleet.start(intruderWorkspace, old.port)
        expect(intruder.port).toBe(old.port)

        // 1. the control plane has not noticed: every turn fails with WrongAgent, none reaches the intruder
        const stale = yield* Effect.forEach(bound, (chatId) => Effect.flip(turn(chatId, workspaceId)), {
          concurrency: "unbounded"
        })
        for (const error of stale) {
          expect(error._tag === "AgentDialError" && error.reason).toBe("WrongAgent")
        }

        // 2. the rebuild is recorded: every chat switches to the workspace's new agent
        const next = yield* fleet.start(workspaceId)
        yield* control.setCurrent(
          workspaceId,
          Option.some(new CurrentAgent({ agentId: next.agentId, buildId: next.buildId }))
        )
        const healed = yield* Effect.forEach(bound, (chatId) => turn(chatId, workspaceId), { concurrency: "unbounded" })
        for (const result of healed) {
          expect(result.outcome).toBe("switched")
          expect(result.agentId).toBe(next.agentId)
          expect(result.rightAgent).toBe(true)
        }
        expect(counters.dialerCounters.errors.WrongAgent).toBeGreaterThanOrEqual(bound.length)
      })
    )
  )
})
