/**
 * The default report, run several times: `pnpm --filter @lazydial/harness
 * bench:report [-- <flags of the default command>]`.
 *
 * A p99 of 400 turns is their 4th slowest: one run's "lazydial p99 ≤ latest
 * p99" is decided by a handful of turns and changes from run to run. This
 * runs the default command `LAZYDIAL_REPORT_RUNS` times (default 5), each in a
 * fresh process, and prints every run's figures, their medians, and the
 * same-run ratio lazydial / latest of p50 and p99 with its median, for
 * docs/performance.md. Odd runs run lazydial first and even runs latest
 * first (`--first`), unless the flags choose: the strategy that runs first
 * in a process meets less warmed-up code, and its p99 is higher in either
 * order.
 *
 * It checks that each run measured what the table names before it counts it:
 * every planned turn of both strategies ran, some turns were steady-state,
 * and with notices on, turns did switch by notice (the listener heard them).
 */
import type { Strategy } from "@lazydial/service/Chats"
import * as Schema from "effect/Schema"
import { execFileSync, spawnSync } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import { Report } from "../src/Report.js"

const runs = Schema.decodeUnknownSync(
  Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 50 }))
)(
  process.env.LAZYDIAL_REPORT_RUNS ?? "5"
)
const flags = process.argv.slice(2).filter((flag) => flag !== "--")
const noticesOff = flags.join(" ").includes("--notices off")
const chosenFirst = flags.includes("--first")
const bin = path.join(import.meta.dirname, "..", "src", "bin.ts")

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const fail = (message: string): never => {
  process.stderr.write(`report runs: ${message}\n`)
  process.exit(1)
}

interface Row {
  readonly lookupsPerTurn: number
  readonly steadyLookupsPerTurn: number
  readonly p50: number
  readonly p99: number
  readonly stoppedP99: number
  readonly byNotice: number
  readonly switched: number
  /** Turns of running workspaces that got no connection: their time is in no latency figure. */
  readonly failed: number
  /** The p99 of every turn of a running workspace, failures at their time (`connectOrFail`). */
  readonly p99WithFailures: number
}

const rows: Array<{ readonly lazydial: Row; readonly latest: Row; readonly first: Strategy }> = []
const loadBefore = os.loadavg()[0]!
for (let run = 1; run <= runs; run++) {
  const order = chosenFirst ? [] : ["--first", run % 2 === 1 ? "lazydial" : "latest"]
  const child = spawnSync(process.execPath, ["--import", "tsx", bin, "--json", ...order, ...flags], {
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    timeout: 600_000
  })
  if (child.status !== 0) fail(`run ${run} exited with ${child.status}: ${child.stderr.slice(-2000)}`)
  const report = Schema.decodeUnknownSync(Schema.fromJsonString(Report))(child.stdout)
  const row = (strategy: string): Row => {
    const s = report.strategies.find((candidate) => candidate.strategy === strategy) ??
      fail(`run ${run} has no ${strategy} strategy`)
    const planned = report.settings.chats * report.settings.turns
    if (s.turns !== planned) fail(`run ${run}, ${strategy}: ${s.turns} of ${planned} turns ran`)
    if (s.steadyTurns === 0) fail(`run ${run}, ${strategy}: no steady-state turn, so no steady-state figure`)
    return {
      lookupsPerTurn: s.lookupsPerTurn,
      steadyLookupsPerTurn: s.steadyLookupsPerTurn,
      p50: s.latency.p50,
      p99: s.latency.p99,
      stoppedP99: s.stoppedConnectP99Ms,
      byNotice: s.outcomes.switched_by_notice,
      switched: s.outcomes.switched,
      failed: s.outcomes.timeout + s.outcomes.failed + s.outcomes.database_unavailable,
      p99WithFailures: s.connectOrFail.p99
    }
  }
  const lazydial = row("lazydial")
  if (!noticesOff && lazydial.byNotice === 0) fail(`run ${run}: notices on, yet no turn switched by notice`)
  rows.push({ lazydial, latest: row("latest"), first: report.settings.first })
  process.stderr.write(`report runs: ${run}/${runs} done\n`)
}

const fixed = (n: number, digits = 1) => n.toFixed(digits)
const line = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`
const cpu = os.cpus()[0]?.model ?? "unknown CPU"
console.log(
  `${runs} runs of \`lazydial-service --json ${
    flags.join(" ")
  }\`; ${os.cpus().length} × ${cpu}, Node ${process.version}, ` +
    `load average ${fixed(loadBefore, 2)} before, ${fixed(os.loadavg()[0]!, 2)} after; ` +
    `commit ${execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim()}`
)
console.log("")
console.log(line([
  "run (first)",
  "lookups/turn",
  "steady lookups/turn",
  "p50 lazydial / latest (ms)",
  "p99 lazydial / latest (ms)",
  "p99 ratio",
  "stopped p99 lazydial / latest (ms)",
  "by notice / switched",
  "failed turns lazydial / latest",
  "p99 failures included lazydial / latest (ms)"
]))
console.log(line(Array(10).fill("---")))
const cellsOf = (label: string, l: Row, t: Row, ratio: number) => [
  label,
  fixed(l.lookupsPerTurn, 3),
  fixed(l.steadyLookupsPerTurn, 3),
  `${fixed(l.p50)} / ${fixed(t.p50)}`,
  `${fixed(l.p99)} / ${fixed(t.p99)}`,
  fixed(ratio, 2),
  `${fixed(l.stoppedP99)} / ${fixed(t.stoppedP99)}`,
  `${l.byNotice} / ${l.switched}`,
  `${fixed(l.failed, 0)} / ${fixed(t.failed, 0)}`,
  `${fixed(l.p99WithFailures)} / ${fixed(t.p99WithFailures)}`
]
rows.forEach(({ first, latest, lazydial }, i) =>
  console.log(line(cellsOf(`${i + 1} (${first})`, lazydial, latest, lazydial.p99 / latest.p99)))
)
const med = (pick: (row: Row) => number, strategy: Strategy) => median(rows.map((r) => pick(r[strategy])))
const medianRow = (strategy: Strategy): Row => ({
  lookupsPerTurn: med((r) => r.lookupsPerTurn, strategy),
  steadyLookupsPerTurn: med((r) => r.steadyLookupsPerTurn, strategy),
  p50: med((r) => r.p50, strategy),
  p99: med((r) => r.p99, strategy),
  stoppedP99: med((r) => r.stoppedP99, strategy),
  byNotice: med((r) => r.byNotice, strategy),
  switched: med((r) => r.switched, strategy),
  failed: med((r) => r.failed, strategy),
  p99WithFailures: med((r) => r.p99WithFailures, strategy)
})
const ratios = rows.map((r) => r.lazydial.p99 / r.latest.p99)
console.log(line(cellsOf("**median**", medianRow("lazydial"), medianRow("latest"), median(ratios))))
console.log("")
console.log(
  `p99 lazydial ≤ latest in ${ratios.filter((r) => r <= 1).length} of ${runs} runs; ` +
    `p99 failures included lazydial ≤ latest in ${
      rows.filter((r) => r.lazydial.p99WithFailures <= r.latest.p99WithFailures).length
    } of ${runs}; ` +
    `p50 lazydial ≤ latest in ${rows.filter((r) => r.lazydial.p50 <= r.latest.p50).length} of ${runs}; ` +
    `max steady lookups/turn ${fixed(Math.max(...rows.map((r) => r.lazydial.steadyLookupsPerTurn)), 3)}`
)
