/**
 * Changes of a workspace's agents (ControlPlane's operations) on the Effect
 * test clock: real agents on 127.0.0.1, an in-memory control plane whose
 * record can be made to fail, and no test sleeps.
 *
 * The rule under test: the directory never names a retired agent. A rebuild
 * starts the new agent, records it, and only then retires the old one; a
 * record that fails leaves the old agent serving, and `settle` makes the
 * agents agree with whatever the directory holds.
 */
import { describe, expect, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { AgentDialer, type AgentId, type CurrentAgent, type WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/testing/TestClock"
import { randomUUID } from "node:crypto"
import * as AgentAddresses from "../src/AgentAddresses.js"
import { DatabaseUnavailable } from "../src/Chats.js"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Fleet from "../src/Fleet.js"
import * as SocketDialer from "../src/SocketDialer.js"

// safe: a fresh UUID is a valid WorkspaceId
const newWorkspace = () => randomUUID() as WorkspaceId

/**
 * How the next records of a current agent end: `ok`; `fails` (nothing
 * recorded); `commits_then_fails` (recorded, and the answer lost, like a
 * statement that timed out on the client and committed on the server);
 * `down`: reads fail too. `onRecord` sees each record before it happens.
 */
interface Faults {
  mode: "ok" | "fails" | "commits_then_fails" | "down"
  onRecord: (workspaceId: WorkspaceId, current: Option.Option<CurrentAgent>) => void
  /** Reads of the current agent asked, answered or not. */
  peeks: number
}

const makeFaults = (): Faults => ({ mode: "ok", onRecord: () => {}, peeks: 0 })

const layerFaulty = (faults: Faults) =>
  Layer.effect(
    ControlPlane.ControlPlane,
    Effect.gen(function*() {
      const inner = yield* ControlPlane.ControlPlane
      return ControlPlane.ControlPlane.of({
        ...inner,
        peek: (workspaceId) =>
          Effect.suspend(() => {
            faults.peeks++
            return faults.mode === "down"
              ? Effect.fail(new DatabaseUnavailable({ operation: "ControlPlane.peek" }))
              : inner.peek(workspaceId)
          }),
        setCurrent: (workspaceId, current) =>
          Effect.suspend(() => {
            faults.onRecord(workspaceId, current)
            const lost = Effect.fail(new DatabaseUnavailable({ operation: "ControlPlane.setCurrent" }))
            if (faults.mode === "fails" || faults.mode === "down") return lost
            if (faults.mode === "commits_then_fails") {
              return Effect.andThen(inner.setCurrent(workspaceId, current), lost)
            }
            return inner.setCurrent(workspaceId, current)
          })
      })
    })
  ).pipe(Layer.provide(ControlPlane.layerMemory))

/** A fleet, its address book and a dialer, over a control plane given from outside (so it outlives the fleet). */
const fleetLayer = SocketDialer.layer(SocketDialer.makeCounters()).pipe(
  Layer.provideMerge(AgentAddresses.layerFleet),
  Layer.provideMerge(Fleet.layer)
)

const setup = () => {
  const faults = makeFaults()
  return { faults, layer: fleetLayer.pipe(Layer.provideMerge(layerFaulty(faults))) }
}

const agentOf = (workspaceId: WorkspaceId) =>
  Effect.gen(function*() {
    const control = yield* ControlPlane.ControlPlane
    return Option.map(yield* control.peek(workspaceId), (current) => current.agentId)
  })

const servingIds = (workspaceId: WorkspaceId) =>
  Effect.gen(function*() {
    const fleet = yield* Fleet.Fleet
    return fleet.serving(workspaceId).map((agent) => agent.agentId)
  })

/** A turn through the real dialer: which agent answered it. */
const turnOn = (agentId: AgentId) =>
  Effect.gen(function*() {
    const dialer = yield* AgentDialer.AgentDialer
    const reply = yield* Effect.scoped(Effect.flatMap(dialer.dial(agentId), (c) => c.exchange("turn hi")))
    return reply.split(" ")[1]
  })

describe("ControlPlane: rebuilds that cannot strand a workspace", () => {
  it.effect("rebuild: the new agent is recorded while the old one still serves; only then is the old one retired", () => {
    const { faults, layer } = setup()
    return Effect.gen(function*() {
      const workspaceId = newWorkspace()
      const first = yield* ControlPlane.startWorkspace(workspaceId)
      const fleet = yield* Fleet.Fleet
      const servingAtRecord: Array<ReadonlyArray<AgentId>> = []
      faults.onRecord = (id) => servingAtRecord.push(fleet.serving(id).map((agent) => agent.agentId))
      const next = yield* ControlPlane.rebuild(workspaceId, "die")
      expect(servingAtRecord).toEqual([[first.agentId, next.agentId]])
      expect(yield* servingIds(workspaceId)).toEqual([next.agentId])
      deepStrictEqual(yield* agentOf(workspaceId), Option.some(next.agentId))
      expect(yield* turnOn(next.agentId)).toBe(next.agentId)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a record that fails leaves the old agent current and serving; settle then retires the new one", () => {
    const { faults, layer } = setup()
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const workspaceId = newWorkspace()
      const old = yield* ControlPlane.startWorkspace(workspaceId)
      faults.mode = "fails"
      const error = yield* Effect.flip(ControlPlane.rebuild(workspaceId, "die"))
      expect(error._tag).toBe("DatabaseUnavailable")
      deepStrictEqual(yield* agentOf(workspaceId), Option.some(old.agentId))
      expect(yield* turnOn(old.agentId)).toBe(old.agentId)
      expect(yield* fleet.unsettled).toEqual([workspaceId])
      const [, stray] = yield* servingIds(workspaceId)
      expect(stray).toBeDefined()

      faults.mode = "ok"
      deepStrictEqual(yield* ControlPlane.settle(workspaceId), Option.some(old.agentId))
      expect(yield* servingIds(workspaceId)).toEqual([old.agentId])
      expect(yield* fleet.unsettled).toEqual([])
      expect(yield* turnOn(old.agentId)).toBe(old.agentId)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a record that committed but whose answer was lost: settle keeps the new agent and retires the old", () => {
    const { faults, layer } = setup()
    return Effect.gen(function*() {
      const workspaceId = newWorkspace()
      const old = yield* ControlPlane.startWorkspace(workspaceId)
      faults.mode = "commits_then_fails"
      yield* Effect.flip(ControlPlane.rebuild(workspaceId, "die"))
      // the directory names the new agent, which still serves: no moment without a serving current agent
      const current = Option.getOrThrow(yield* agentOf(workspaceId))
      expect(current).not.toBe(old.agentId)
      expect(yield* servingIds(workspaceId)).toEqual([old.agentId, current])
      expect(yield* turnOn(current)).toBe(current)

      faults.mode = "ok"
      deepStrictEqual(yield* ControlPlane.settle(workspaceId), Option.some(current))
      expect(yield* servingIds(workspaceId)).toEqual([current])
    }).pipe(Effect.provide(layer))
  })

  it.effect("keepSettled settles an unsettled workspace on its interval, and keeps trying while the directory fails", () => {
    const { faults, layer } = setup()
    return Effect.gen(function*() {
      const fleet = yield* Fleet.Fleet
      const workspaceId = newWorkspace()
      const old = yield* ControlPlane.startWorkspace(workspaceId)
      yield* Effect.forkChild(ControlPlane.keepSettled("1 second"))
      faults.mode = "commits_then_fails"
      yield* Effect.flip(ControlPlane.rebuild(workspaceId, "die"))
      const recorded = Option.getOrThrow(yield* agentOf(workspaceId))
      // the database is down at the first try: settled only once the directory answers
      faults.mode = "down"
      const peeks = faults.peeks
      yield* TestClock.adjust("1 second")
      expect(faults.peeks).toBe(peeks + 1)
      expect(yield* fleet.unsettled).toEqual([workspaceId])
      faults.mode = "ok"
      yield* TestClock.adjust("999 millis")
      expect(faults.peeks).toBe(peeks + 1)
      expect(yield* fleet.unsettled).toEqual([workspaceId])
      yield* TestClock.adjust("1 millis")
      yield* untilSettled
      expect(yield* servingIds(workspaceId)).toEqual([recorded])
      expect(recorded).not.toBe(old.agentId)
    }).pipe(Effect.provide(layer))
  })

  it.effect("two rebuilds of one workspace at once run one after the other: one agent serves, the current one", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const workspaceId = newWorkspace()
      yield* ControlPlane.startWorkspace(workspaceId)
      const fleet = yield* Fleet.Fleet
      const both = Effect.all([ControlPlane.rebuild(workspaceId, "die"), ControlPlane.rebuild(workspaceId, "die")], {
        concurrency: 2
      })
      const running = yield* Effect.forkChild(both)
      yield* Effect.yieldNow
      // one lock for the workspace, held by one rebuild and waited for by the other
      expect((yield* fleet.stats).workspaceLocks).toBe(1)
      yield* Fiber.join(running)
      expect((yield* fleet.stats).workspaceLocks).toBe(0)
      const current = Option.getOrThrow(yield* agentOf(workspaceId))
      expect(yield* servingIds(workspaceId)).toEqual([current])
    }).pipe(Effect.provide(layer))
  })

  it.effect("stop, then a record that fails: the agent serves until settle finds what the directory holds", () => {
    const { faults, layer } = setup()
    return Effect.gen(function*() {
      const workspaceId = newWorkspace()
      const agent = yield* ControlPlane.startWorkspace(workspaceId)
      faults.mode = "commits_then_fails"
      yield* Effect.flip(ControlPlane.stop(workspaceId, "die"))
      expect(yield* servingIds(workspaceId)).toEqual([agent.agentId])
      faults.mode = "ok"
      deepStrictEqual(yield* ControlPlane.settle(workspaceId), Option.none())
      expect(yield* servingIds(workspaceId)).toEqual([])
    }).pipe(Effect.provide(layer))
  })
})

describe("ControlPlane: start, and the typed errors of a workspace in the wrong state", () => {
  it.effect("start of a stopped workspace: a new agent, recorded, that answers turns", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const workspaceId = newWorkspace()
      const first = yield* ControlPlane.startWorkspace(workspaceId)
      yield* ControlPlane.stop(workspaceId, "die")
      deepStrictEqual(yield* agentOf(workspaceId), Option.none())
      const started = yield* ControlPlane.start(workspaceId)
      expect(started.agentId).not.toBe(first.agentId)
      deepStrictEqual(yield* agentOf(workspaceId), Option.some(started.agentId))
      expect(yield* servingIds(workspaceId)).toEqual([started.agentId])
      expect(yield* turnOn(started.agentId)).toBe(started.agentId)
    }).pipe(Effect.provide(layer))
  })

  it.effect("start of a running workspace is WorkspaceNotStopped, and changes nothing", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const workspaceId = newWorkspace()
      const agent = yield* ControlPlane.startWorkspace(workspaceId)
      const error = yield* Effect.flip(ControlPlane.start(workspaceId))
      expect(error._tag).toBe("WorkspaceNotStopped")
      expect(error.message).toContain(workspaceId)
      expect(yield* servingIds(workspaceId)).toEqual([agent.agentId])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a start whose record fails leaves the workspace stopped once settled", () => {
    const { faults, layer } = setup()
    return Effect.gen(function*() {
      const workspaceId = newWorkspace()
      yield* ControlPlane.startWorkspace(workspaceId)
      yield* ControlPlane.stop(workspaceId, "die")
      faults.mode = "fails"
      yield* Effect.flip(ControlPlane.start(workspaceId))
      faults.mode = "ok"
      deepStrictEqual(yield* ControlPlane.settle(workspaceId), Option.none())
      expect(yield* servingIds(workspaceId)).toEqual([])
      deepStrictEqual(yield* agentOf(workspaceId), Option.none())
    }).pipe(Effect.provide(layer))
  })

  it.effect("rebuild of a stopped workspace is WorkspaceStopped; an unknown workspace is UnknownWorkspace", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const workspaceId = newWorkspace()
      yield* ControlPlane.startWorkspace(workspaceId)
      yield* ControlPlane.stop(workspaceId, "hang")
      const stopped = yield* Effect.flip(ControlPlane.rebuild(workspaceId, "die"))
      expect(stopped._tag).toBe("WorkspaceStopped")
      expect(stopped.message).toContain("start it first")
      const unknown = newWorkspace()
      for (
        const error of [
          yield* Effect.flip(ControlPlane.rebuild(unknown, "die")),
          yield* Effect.flip(ControlPlane.start(unknown)),
          yield* Effect.flip(ControlPlane.stop(unknown, "die"))
        ]
      ) {
        expect(error._tag).toBe("UnknownWorkspace")
      }
      expect(yield* servingIds(unknown)).toEqual([])
      // no lock is left behind for the ids asked for: a map of them would grow with the requests
      const fleet = yield* Fleet.Fleet
      expect((yield* fleet.stats).workspaceLocks).toBe(0)
    }).pipe(Effect.provide(layer))
  })
})

describe("ControlPlane: owners, and a fleet that takes workspaces back", () => {
  it.effect("a workspace keeps the owner it was created with; one recorded without is defaultOwner's", () => {
    const { layer } = setup()
    return Effect.gen(function*() {
      const control = yield* ControlPlane.ControlPlane
      const alice = newWorkspace()
      const bare = newWorkspace()
      yield* ControlPlane.startWorkspace(alice, "alice")
      yield* control.addWorkspace(alice, "mallory")
      yield* control.setCurrent(bare, Option.none())
      deepStrictEqual(yield* control.ownerOf(alice), Option.some("alice"))
      deepStrictEqual(yield* control.ownerOf(bare), Option.some(ControlPlane.defaultOwner))
      deepStrictEqual(yield* control.ownerOf(newWorkspace()), Option.none())
      const listed = yield* control.list
      expect(listed.map(([id, current, owner]) => [id, Option.isSome(current), owner])).toEqual([
        [alice, true, "alice"],
        [bare, false, ControlPlane.defaultOwner]
      ])
    }).pipe(Effect.provide(layer))
  })

  it.effect("after a fleet restart: running workspaces get new agents, recorded; stopped ones stay stopped", () =>
    Effect.gen(function*() {
      // the control plane outlives the first fleet, as the database does
      const control = yield* Layer.build(ControlPlane.layerMemory)
      const inFleet = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        effect.pipe(Effect.provide(fleetLayer), Effect.provide(control), Effect.scoped)
      const running = newWorkspace()
      const stopped = newWorkspace()
      const before = yield* inFleet(Effect.gen(function*() {
        const agent = yield* ControlPlane.startWorkspace(running, "alice")
        yield* ControlPlane.startWorkspace(stopped, "bob")
        yield* ControlPlane.stop(stopped, "die")
        return agent.agentId
      }))
      // the first fleet is gone, and its agents with it
      yield* inFleet(Effect.gen(function*() {
        const takenBack = yield* ControlPlane.takeBack
        expect(takenBack).toEqual([running])
        const now = Option.getOrThrow(yield* agentOf(running))
        expect(now).not.toBe(before)
        expect(yield* servingIds(running)).toEqual([now])
        expect(yield* turnOn(now)).toBe(now)
        deepStrictEqual(yield* agentOf(stopped), Option.none())
        expect(yield* servingIds(stopped)).toEqual([])
        const plane = yield* ControlPlane.ControlPlane
        deepStrictEqual(yield* plane.ownerOf(running), Option.some("alice"))
      }))
    }).pipe(Effect.scoped))
})

/** Waits, without the clock, until the fleet has no unsettled workspace: a settle ends with agents' sockets closing. */
const untilSettled = Effect.gen(function*() {
  const fleet = yield* Fleet.Fleet
  for (let i = 0; i < 1000; i++) {
    if ((yield* fleet.unsettled).length === 0) return
    yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
  }
  expect.fail("still unsettled after 1000 turns of the event loop")
})
