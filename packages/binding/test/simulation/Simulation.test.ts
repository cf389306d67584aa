/**
 * Deterministic simulation of the whole turn path: ChatConnector, the memory
 * store and core's LazyDial over the scripted agents of
 * `@lazydial/core/testing`, on TestClock, with a schedule drawn from a seeded
 * PRNG. Every seed checks every invariant; a failing seed prints the command
 * that replays it.
 *
 * - `LAZYDIAL_SIM_SEEDS=n`: run seeds 1..n (default 200; the soak runs 10000).
 * - `LAZYDIAL_SIM_SEED=s`: replay seed s alone.
 */
import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { replayCommand, runSeed, type SeedReport, type SimOptions } from "./harness.js"

const options: SimOptions = { chats: 16, workspaces: 3, steps: 70 }

const seeds = (): ReadonlyArray<number> => {
  const one = process.env["LAZYDIAL_SIM_SEED"]
  if (one !== undefined && one !== "") return [Number(one)]
  const count = Number(process.env["LAZYDIAL_SIM_SEEDS"] ?? "200")
  return Array.from({ length: count }, (_, i) => i + 1)
}

const describeFailure = (report: SeedReport) =>
  `seed ${report.seed}: ${report.violations.length} violations, ${report.leaks} leaks\n  ` +
  report.violations.slice(0, 10).join("\n  ") +
  `\n  replay: ${replayCommand(report.seed)}`

describe("Simulation", () => {
  const run = seeds()
  it.effect(
    `${run.length} seeded runs: nothing leaks, no binding crosses workspaces or goes back, every chat converges`,
    () =>
      Effect.gen(function*() {
        const started = Date.now()
        const failed: Array<SeedReport> = []
        const totals = { seeds: 0, chats: 0, turns: 0, faults: 0, leaks: 0 }
        const outcomes: Record<string, number> = {}
        for (const seed of run) {
          const report = yield* runSeed(seed, options)
          totals.seeds++
          totals.chats += report.chats
          totals.turns += report.turns
          totals.faults += report.faults
          totals.leaks += report.leaks
          for (const [key, value] of Object.entries(report.outcomes)) outcomes[key] = (outcomes[key] ?? 0) + value
          if (totals.seeds % 1_000 === 0) {
            console.log(
              `simulation progress: ${totals.seeds} seeds, ${totals.turns} turns, ${totals.faults} faults, ` +
                `${totals.leaks} leaks, ${failed.length} failing seeds, ${((Date.now() - started) / 1000).toFixed(0)} s`
            )
          }
          if (report.violations.length > 0 || report.leaks > 0) {
            failed.push(report)
            console.error(describeFailure(report))
            if (failed.length >= 5) break
          }
        }
        console.log(
          `simulation: ${totals.seeds} seeds, ${totals.chats} chats, ${totals.turns} turns simulated, ` +
            `${totals.faults} faults injected, ${totals.leaks} leaks found, ${failed.length} failing seeds, ` +
            `${((Date.now() - started) / 1000).toFixed(1)} s`
        )
        console.log(
          `simulation outcomes: ${
            Object.entries(outcomes).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(" ")
          }`
        )
        deepStrictEqual(failed.map((report) => report.seed), [], failed.map(describeFailure).join("\n"))
        assert.strictEqual(totals.leaks, 0)
      }),
    { timeout: 120_000 + run.length * 2_000 }
  )

  it.effect(
    "with rebuild notices lost, duplicated, delayed and reordered, forged notices, and a listener that drops and comes back: the invariants hold, and reads and log lines stay bounded",
    () =>
      Effect.gen(function*() {
        const outcomes: Record<string, number> = {}
        for (const seed of run.slice(0, 100)) {
          const report = yield* runSeed(seed, { ...options, notices: true })
          deepStrictEqual(report.violations, [], describeFailure(report))
          assert.strictEqual(report.leaks, 0)
          for (const [key, value] of Object.entries(report.outcomes)) outcomes[key] = (outcomes[key] ?? 0) + value
        }
        console.log(
          `simulation with notices: ${
            Object.entries(outcomes).filter(([k]) =>
              k.includes("notice") || k.includes("listener") || k.includes("forged") || k.startsWith("outcome:") ||
              k.startsWith("turn:") || k.startsWith("error:")
            ).sort().map((
              [k, v]
            ) => `${k}=${v}`).join(" ")
          }`
        )
      }),
    { timeout: 120_000 + run.length * 2_000 }
  )

  it.effect(
    "over shared connections (core's SharedConnections), with and without notices: the invariants hold, no turn uses a connection of an agent retired by an answer that came after the connection opened and before the turn began, and the steady state dials nothing",
    () =>
      Effect.gen(function*() {
        const outcomes: Record<string, number> = {}
        for (const notices of [true, false]) {
          for (const seed of run.slice(0, 100)) {
            const report = yield* runSeed(seed, { ...options, notices, shared: true })
            deepStrictEqual(report.violations, [], describeFailure(report))
            assert.strictEqual(report.leaks, 0)
            for (const [key, value] of Object.entries(report.outcomes)) {
              outcomes[`${notices ? "notices" : "no notices"} ${key}`] =
                (outcomes[`${notices ? "notices" : "no notices"} ${key}`] ?? 0) + value
            }
          }
        }
        console.log(
          `simulation over shared connections: ${
            Object.entries(outcomes).filter(([k]) =>
              k.includes("shared:") || k.includes("connection") || k.includes("outcome:") || k.includes("error:")
            ).sort().map(([k, v]) => `${k}=${v}`).join(" ")
          }`
        )
        for (const notices of ["notices", "no notices"]) {
          const turns = outcomes[`${notices} shared:steady_turns`] ?? 0
          const dials = outcomes[`${notices} shared:steady_dials`] ?? 0
          // the sharing is exercised: steady-state turns borrow
          assert.isAbove(turns, 1_000)
          assert.isAtMost(dials / turns, 0.01)
        }
        // the faults that make connections die or linger happened
        assert.isAbove(outcomes["notices fault:old_agent_connections_linger"] ?? 0, 0)
        assert.isAbove(outcomes["notices fault:connection_drop"] ?? 0, 0)
      }),
    { timeout: 120_000 + run.length * 4_000 }
  )

  it.effect("a seed replays exactly: the same schedule, outcomes, ledger and clock", () =>
    Effect.gen(function*() {
      const first = yield* runSeed(42, options)
      const second = yield* runSeed(42, options)
      assert.strictEqual(second.fingerprint, first.fingerprint)
      assert.notStrictEqual((yield* runSeed(43, options)).fingerprint, first.fingerprint)
    }))

  it.effect("the checks catch a store that writes without its compare-and-set", () =>
    Effect.gen(function*() {
      // A read-then-write store: it ignores what the caller read, so a stale
      // repair lands on a row that moved on (another workspace, a newer build).
      const broken: SimOptions["breakStore"] = (store) => ({
        ...store,
        recordAgent: (chatId, write) =>
          Effect.flatMap(store.get(chatId), (row) =>
            store.recordAgent(chatId, {
              current: write.current,
              expected: {
                workspaceId: Option.getOrElse(row.workspaceId, () => write.expected.workspaceId),
                agentId: row.agentId
              }
            }))
      })
      let caught = 0
      for (let seed = 1; seed <= 30 && caught === 0; seed++) {
        const report = yield* runSeed(seed, { ...options, breakStore: broken })
        caught += report.violations.length
      }
      assert.isAbove(caught, 0)
    }), { timeout: 60_000 })
})
