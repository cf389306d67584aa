/**
 * Runs one path in a loop, for `node --cpu-prof`:
 * `node .bench-build/bench/profileFastPath.js <calls> <fast|floor|fast-untraced|stale>`.
 */

import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { AgentId, dialWithLazyValidation, WorkspaceId } from "../src/index.js"

const A = AgentId.make("00000000-0000-4000-8000-00000000000a")
const W = WorkspaceId.make("00000000-0000-4000-8000-0000000000f0")
const n = Number(process.argv[2] ?? 100_000)
const which = process.argv[3] ?? "fast"
const dial = (agentId: AgentId) => Effect.acquireRelease(Effect.succeed({ agentId }), () => Effect.void)
const fast = dialWithLazyValidation({
  agentId: A,
  workspaceId: W,
  dial,
  lookup: () => Effect.succeed(Option.some(A)),
  delay: "1 minute"
})
const B = AgentId.make("00000000-0000-4000-8000-00000000000b")
const stale = dialWithLazyValidation({
  agentId: A,
  workspaceId: W,
  dial: (agentId) => agentId === A ? Effect.never : dial(agentId),
  lookup: () => Effect.succeed(Option.some(B)),
  delay: 0
})
const bodies: Record<string, Effect.Effect<unknown, unknown>> = {
  stale: Effect.scoped(stale),
  fast: Effect.scoped(fast),
  floor: Effect.scoped(dial(A)),
  "fast-untraced": Effect.withTracerEnabled(Effect.scoped(fast), false)
}
const body = bodies[which]!
const loop = (count: number) => {
  let i = 0
  return Effect.runPromise(Effect.whileLoop({ while: () => i++ < count, body: () => body, step: () => {} }))
}
await loop(n / 4)
const started = performance.now()
await loop(n)
console.log(`${which}: ${((performance.now() - started) * 1000 / n).toFixed(2)} µs per call`)
