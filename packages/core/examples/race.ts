/**
 * The race with real timings: `pnpm --filter @lazydial/core run example`.
 *
 * Three turns against agents that live in this process: a healthy bound agent
 * (fast), a bound agent that hangs after a rebuild (switched after the delay),
 * and a bound agent that refuses at once (switched without waiting for the delay).
 */

import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { AgentDialError, AgentId, dialWithLazyValidation, WorkspaceId } from "../src/index.js"

const workspace = WorkspaceId.make("00000000-0000-4000-8000-0000000000f0")
const oldAgent = AgentId.make("00000000-0000-4000-8000-00000000000a")
const newAgent = AgentId.make("00000000-0000-4000-8000-00000000000b")

const turn = (label: string, behaviour: "healthy" | "hangs" | "refuses") =>
  Effect.gen(function*() {
    const started = Date.now()
    const elapsed = () => `${String(Date.now() - started).padStart(4)} ms`
    const dial = (agentId: AgentId) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const stale = agentId === oldAgent && behaviour !== "healthy"
          if (stale && behaviour === "refuses") {
            return yield* new AgentDialError({ agentId, reason: "Refused", detail: "the old build is gone" })
          }
          yield* Effect.sleep(stale ? "10 seconds" : "20 millis")
          yield* Console.log(
            `  ${elapsed()}  connected to ${agentId === oldAgent ? "the bound agent" : "the new agent"}`
          )
          return { agentId }
        }),
        ({ agentId }) => Console.log(`  ${elapsed()}  released the connection to ${agentId.slice(-1)}`)
      )
    const lookup = () =>
      Effect.gen(function*() {
        yield* Console.log(`  ${elapsed()}  lookup: which agent does the workspace have now?`)
        yield* Effect.sleep("5 millis")
        return Option.some(behaviour === "healthy" ? oldAgent : newAgent)
      })
    yield* Console.log(`\n${label}`)
    const result = yield* dialWithLazyValidation({
      agentId: oldAgent,
      workspaceId: workspace,
      dial,
      lookup,
      delay: "200 millis"
    })
    yield* Console.log(`  ${elapsed()}  outcome ${result.outcome}, switched: ${result.switched}`)
  }).pipe(Effect.scoped)

Effect.runPromise(Effect.gen(function*() {
  yield* Console.log("dialWithLazyValidation, validation delay 200 ms")
  yield* turn("1. the bound agent is healthy: no lookup at all", "healthy")
  yield* turn("2. the bound agent hangs (its workspace was rebuilt): lookup at 200 ms, then switch", "hangs")
  yield* turn("3. the bound agent refuses at once: lookup at once, then switch", "refuses")
  yield* Console.log(
    "\nThe abandoned dial of turn 2 is an acquireRelease, whose acquire ignores interruption: its connection" +
      "\narrives at 10 s, nobody waits for it, and its own finalizer releases it at once:"
  )
})).catch((error) => {
  console.error(error)
  process.exit(1)
})
