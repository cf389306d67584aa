/**
 * Testing your own service with the kit from `@lazydial/core/testing`: script
 * agents on TestClock, then check the connection ledger.
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/testing/TestClock"
import { AgentId, BuildId, LazyDial, WorkspaceId } from "../src/index.js"
import { currentAgent, layerTest, TestAgents } from "../src/testing.js"

const bound = AgentId.make("00000000-0000-4000-8000-00000000000a")
const rebuilt = AgentId.make("00000000-0000-4000-8000-00000000000b")
const workspace = WorkspaceId.make("00000000-0000-4000-8000-0000000000f0")
const build = BuildId.make("00000000-0000-4000-8000-000000000b02")

export const switchesAfterARebuild = Effect.gen(function*() {
  const agents = yield* TestAgents
  // The bound agent hangs, ignoring interruption: its connection arrives at 5 s.
  yield* agents.script(bound, { latency: "5 seconds", result: "connect", interruptible: false })
  yield* agents.script(rebuilt, { latency: "10 millis", result: "connect" })
  yield* agents.setCurrent(workspace, Option.some(currentAgent({ agentId: rebuilt, buildId: build })))

  const lazyDial = yield* LazyDial.LazyDial
  const turn = yield* Effect.forkChild(Effect.scoped(lazyDial.dial({ agentId: bound, workspaceId: workspace })))
  yield* TestClock.adjust("110 millis")
  const result = yield* Fiber.join(turn)
  yield* TestClock.adjust("5 seconds")

  const unreleased = yield* agents.unreleased // the late connection was released on arrival
  const releasedTwice = yield* agents.releasedTwice
  return { switchedTo: result.agentId, unreleased: unreleased.length, releasedTwice: releasedTwice.length }
}).pipe(Effect.provide(LazyDial.layer({ delay: "100 millis" }).pipe(Layer.provideMerge(layerTest))))
