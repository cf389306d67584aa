import { describe, expect, it } from "@effect/vitest"
import { AgentDialer, type WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as AgentAddresses from "../src/AgentAddresses.js"
import * as Fleet from "../src/Fleet.js"
import * as SocketDialer from "../src/SocketDialer.js"

const workspace = "6f1c2a53-7a0e-4d4e-9a9b-2f1f4c1d9a01" as WorkspaceId

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
