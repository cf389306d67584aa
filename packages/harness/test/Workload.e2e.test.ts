/**
 * End to end: a short workload on real TCP agents and the embedded database.
 * The assertions are the invariants of the report, not timings.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { makeStrip } from "../src/internal/workload.js"
import { stripLimit } from "../src/Report.js"
import * as Workload from "../src/Workload.js"

const options: Workload.Options = {
  ...Workload.defaults,
  seed: 7,
  chats: 20,
  workspaces: 5,
  turns: 6,
  concurrency: 8,
  rebuildRate: 4,
  thinkMs: 200,
  // Generous, so that a loaded CI machine does not turn a slow localhost dial
  // into a validation (a "confirmed" lookup on a steady-state turn): hung
  // agents then take 3 s to be replaced, which the run can afford.
  validationDelayMs: 3000,
  dialTimeoutMs: 8000,
  // a handshake slower than a borrow on a loaded machine, and faster than the validation delay
  dialLatencyMs: 40,
  // latest runs first here (the default is lazydial): the report lists them in one order either way
  first: "latest"
}

describe("the reference service, end to end", () => {
  it("plans rebuilds of every kind from the seed alone", () => {
    const plan = Workload.makePlan(options)
    expect(plan).toEqual(Workload.makePlan(options))
    expect(plan.rebuilds.length).toBeGreaterThan(0)
    expect(plan.stopped.size).toBe(1)
  })

  it("keeps at most stripLimit turns and rebuilds in the strip, every k-th beyond it, and says k", () => {
    const turns = (n: number) =>
      Array.from({ length: n }, (_, i) => ({
        atMs: i,
        connectMs: 1,
        outcome: "fast" as const,
        stopped: false,
        workspace: 0,
        connected: true,
        steady: true,
        dialed: false
      }))
    const rebuild = { atMs: 0, workspace: 0, mode: "hang" as const }
    const small = makeStrip(turns(stripLimit), [rebuild])
    expect(small.turnsEvery).toBe(1)
    expect(small.turns.length).toBe(stripLimit)
    // the strip keeps the report's fields only
    expect(Object.keys(small.turns[0]!).sort()).toEqual(["atMs", "connectMs", "outcome", "stopped"])
    const large = makeStrip(turns(2 * stripLimit + 1), Array.from({ length: 3 * stripLimit }, () => rebuild))
    expect(large.turnsEvery).toBe(3)
    expect(large.turns.length).toBeLessThanOrEqual(stripLimit)
    expect(large.turns.map((t) => t.atMs).slice(0, 3)).toEqual([0, 3, 6])
    expect(large.rebuildsEvery).toBe(3)
    expect(large.rebuilds.length).toBe(stripLimit)
  })

  it.live(
    "heals stale bindings, stops looking up and dialing in the steady state, and leaks nothing",
    () =>
      Effect.gen(function*() {
        const progress = Workload.makeProgress()
        const report = yield* Workload.run(options, progress)
        expect(report.settings.first).toBe("latest")
        // the others follow in report order, rotated; the strategy in progress at the end is the one that ran last
        expect(report.settings.order).toEqual(["latest", "lazydial", "lazydial_no_reuse"])
        expect(progress.strategy).toBe("lazydial_no_reuse")
        expect(report.settings.dialLatencyMs).toBe(40)
        const [lazydial, noReuse, latest] = report.strategies
        expect(report.strategies.map((s) => s.strategy)).toEqual(["lazydial", "lazydial_no_reuse", "latest"])

        // 0 lookups per steady-state turn after warm-up, with or without reuse
        for (const lazy of [lazydial!, noReuse!]) {
          expect(lazy.steadyTurns).toBeGreaterThan(0)
          expect(lazy.steadyLookups).toBe(0)
        }
        // the comparison: one lookup on every turn
        expect(latest!.lookups).toBe(latest!.turns)

        // shared connections: no steady-state turn dials, and every dial the sockets saw opened a shared
        // connection; without them, every steady-state turn dials
        expect(lazydial!.steadyDials).toBe(0)
        expect(lazydial!.shared).not.toBeNull()
        expect(lazydial!.shared!.dials).toBe(lazydial!.dials)
        expect(lazydial!.shared!.borrows).toBeGreaterThanOrEqual(lazydial!.connectOrFail.turns)
        expect(lazydial!.dials).toBeLessThan(lazydial!.connectOrFail.turns / 4)
        for (const dialing of [noReuse!, latest!]) {
          expect(dialing.shared).toBeNull()
          expect(dialing.steadyDials).toBe(dialing.steadyTurns)
          expect(dialing.dials).toBeGreaterThanOrEqual(dialing.connectOrFail.turns - dialing.connectOrFail.failed)
        }
        // a dial waits out the handshake's latency (a timer: never less); a borrow does not
        expect(noReuse!.steadyConnect.turns).toBe(noReuse!.steadyTurns)
        expect(noReuse!.steadyConnect.p50).toBeGreaterThanOrEqual(options.dialLatencyMs)
        expect(latest!.steadyConnect.p50).toBeGreaterThanOrEqual(options.dialLatencyMs)
        expect(lazydial!.steadyConnect.p50).toBeLessThan(options.dialLatencyMs)

        // every rebuilt workspace's chats end bound to its current agent
        for (const lazy of [lazydial!, noReuse!]) {
          expect(lazy.rebuilds.total).toBeGreaterThan(0)
          expect(lazy.boundToCurrent).toBe(lazy.chatsOnRunningWorkspaces)
        }

        for (const strategy of report.strategies) {
          expect(strategy.turns).toBe(options.chats * options.turns)
          // the strip: every turn, in its outcome, and every rebuild
          const strip = strategy.strip
          expect(strip.turnsEvery).toBe(1)
          expect(strip.turns.length).toBe(strategy.turns)
          for (const [name, n] of Object.entries(strategy.outcomes)) {
            expect([name, strip.turns.filter((t) => t.outcome === name).length]).toEqual([name, n])
          }
          expect(strip.turns.filter((t) => t.stopped).length).toBe(strategy.stoppedTurns)
          expect(strip.rebuilds.length).toBe(strategy.rebuilds.total)
          for (const turn of strip.turns) {
            expect(turn.atMs).toBeGreaterThanOrEqual(0)
            expect(turn.atMs).toBeLessThanOrEqual(strategy.durationMs)
          }
          expect(strategy.stoppedConnectP50Ms).toBeLessThanOrEqual(strategy.stoppedConnectP99Ms)
          expect(strategy.afterRebuild.turns).toBeGreaterThan(0)
          expect(strategy.afterRebuild.p50).toBeLessThanOrEqual(strategy.afterRebuild.p99)
          // failures included: every turn of a running workspace, and exactly the ones that never connected
          const running = strip.turns.filter((t) => !t.stopped)
          expect(strategy.connectOrFail.turns).toBe(running.length)
          expect(strategy.connectOrFail.failed).toBe(
            running.length - strategy.latency.counts.reduce((a, b) => a + b, 0)
          )
          expect(strategy.connectOrFail.p99).toBeGreaterThanOrEqual(strategy.connectOrFail.p50)
          // 0 sockets left open, on either side
          expect(strategy.socketsStillOpen).toBe(0)
          expect(strategy.agentSocketsStillOpen).toBe(0)
          expect(strategy.connectionsOpened).toBe(strategy.connectionsClosed)
          // 0 wrong-agent turns
          expect(strategy.wrongAgentTurns).toBe(0)
        }
      }),
    { timeout: 90_000 }
  )
})
