/**
 * The default report, run several times: `pnpm --filter @lazydial/harness
 * bench:report [-- <flags of the default command>]`.
 *
 * A p99 of 400 turns is their 4th slowest: one run's "lazydial p99 ≤ latest
 * p99" is decided by a handful of turns and changes from run to run. This
 * runs the default command `LAZYDIAL_REPORT_RUNS` times (default 6), each in a
 * fresh process, and prints every run's figures, their medians, and the
 * same-run ratio lazydial / latest of p50 and p99 with its median, for
 * docs/performance.md, then the goals of issue 20 against those medians.
 * Run i runs the i-th strategy of the report first (`--first`, the others
 * follow in report order, rotated), unless the flags choose: the strategy
 * that runs first in a process meets less warmed-up code, and its p99 is
 * higher in any order; over 6 runs each strategy runs first twice.
 *
 * It checks that each run measured what the table names before it counts it:
 * every planned turn of every strategy ran, some turns were steady-state,
 * and with notices on, turns did switch by notice (the listener heard them).
 */
import * as Schema from "effect/Schema"
import { execFileSync, spawnSync } from "node:child_process"
import * as os from "node:os"
import * as path from "node:path"
import { Report, strategies, type Strategy } from "../src/Report.js"

const runs = Schema.decodeUnknownSync(
  Schema.NumberFromString.check(Schema.isInt(), Schema.isBetween({ minimum: 1, maximum: 50 }))
)(
  process.env.LAZYDIAL_REPORT_RUNS ?? "6"
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
  readonly dialsPerTurn: number
  readonly steadyDialsPerTurn: number
  readonly steadyP50: number
  readonly p50: number
  readonly p99: number
  readonly stoppedP99: number
  readonly byNotice: number
  readonly switched: number
  /** Turns of running workspaces that got no connection: their time is in no latency figure. */
  readonly failed: number
  /** The p99 of every turn of a running workspace, failures at their time (`connectOrFail`). */
  readonly p99WithFailures: number
  /** Sockets open at the end, on either side. */
  readonly socketsOpen: number
}

type Run = Readonly<Record<Strategy, Row>> & { readonly first: Strategy; readonly dialLatencyMs: number }

const rows: Array<Run> = []
const loadBefore = os.loadavg()
for (let run = 1; run <= runs; run++) {
  const order = chosenFirst ? [] : ["--first", strategies[(run - 1) % strategies.length]!]
  const child = spawnSync(process.execPath, ["--import", "tsx", bin, "--json", ...order, ...flags], {
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    timeout: 600_000
  })
  if (child.status !== 0) fail(`run ${run} exited with ${child.status}: ${child.stderr.slice(-2000)}`)
  const report = Schema.decodeUnknownSync(Schema.fromJsonString(Report))(child.stdout)
  const row = (strategy: Strategy): Row => {
    const s = report.strategies.find((candidate) => candidate.strategy === strategy) ??
      fail(`run ${run} has no ${strategy} strategy`)
    const planned = report.settings.chats * report.settings.turns
    if (s.turns !== planned) fail(`run ${run}, ${strategy}: ${s.turns} of ${planned} turns ran`)
    if (s.steadyTurns === 0) fail(`run ${run}, ${strategy}: no steady-state turn, so no steady-state figure`)
    return {
      lookupsPerTurn: s.lookupsPerTurn,
      steadyLookupsPerTurn: s.steadyLookupsPerTurn,
      dialsPerTurn: s.dialsPerTurn,
      steadyDialsPerTurn: s.steadyDialsPerTurn,
      steadyP50: s.steadyConnect.p50,
      p50: s.latency.p50,
      p99: s.latency.p99,
      stoppedP99: s.stoppedConnectP99Ms,
      byNotice: s.outcomes.switched_by_notice,
      switched: s.outcomes.switched,
      failed: s.outcomes.timeout + s.outcomes.failed + s.outcomes.database_unavailable,
      p99WithFailures: s.connectOrFail.p99,
      socketsOpen: s.socketsStillOpen + s.agentSocketsStillOpen
    }
  }
  const figures = { lazydial: row("lazydial"), lazydial_no_reuse: row("lazydial_no_reuse"), latest: row("latest") }
  if (!noticesOff && figures.lazydial.byNotice === 0) fail(`run ${run}: notices on, yet no turn switched by notice`)
  rows.push({ ...figures, first: report.settings.first, dialLatencyMs: report.settings.dialLatencyMs })
  process.stderr.write(`report runs: ${run}/${runs} done\n`)
}

const fixed = (n: number, digits = 1) => n.toFixed(digits)
const line = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`
const cpu = os.cpus()[0]?.model ?? "unknown CPU"
const three = (pick: (row: Row) => number, digits = 1) => (r: Readonly<Record<Strategy, Row>>) =>
  strategies.map((strategy) => fixed(pick(r[strategy]), digits)).join(" / ")
console.log(
  `${runs} runs of \`lazydial-harness --json ${
    flags.join(" ")
  }\`; ${os.cpus().length} × ${cpu}, Node ${process.version}, ` +
    `load average ${loadBefore.map((n) => fixed(n, 2)).join(" ")} before, ${
      os.loadavg().map((n) => fixed(n, 2)).join(" ")
    } after; handshake ${rows[0]?.dialLatencyMs} ms; ` +
    `commit ${execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim()}`
)
console.log("")
console.log(`Figures per strategy in report order: ${strategies.join(" / ")}.`)
console.log("")
const columns: ReadonlyArray<readonly [string, (r: Readonly<Record<Strategy, Row>>) => string]> = [
  ["steady dials/turn", three((r) => r.steadyDialsPerTurn, 3)],
  ["dials/turn", three((r) => r.dialsPerTurn, 3)],
  ["steady connect p50 (ms)", three((r) => r.steadyP50)],
  ["p50 (ms)", three((r) => r.p50)],
  ["p99 (ms)", three((r) => r.p99)],
  ["p99 ratio lazydial / latest", (r) => fixed(r.lazydial.p99 / r.latest.p99, 2)],
  ["steady lookups/turn", three((r) => r.steadyLookupsPerTurn, 3)],
  ["stopped p99 (ms)", three((r) => r.stoppedP99)],
  ["lazydial by notice / switched", (r) => `${r.lazydial.byNotice} / ${r.lazydial.switched}`],
  ["failed turns", three((r) => r.failed, 0)],
  ["p99 failures included (ms)", three((r) => r.p99WithFailures)],
  ["sockets open at the end", three((r) => r.socketsOpen, 0)]
]
console.log(line(["run (first)", ...columns.map(([name]) => name)]))
console.log(line(Array(columns.length + 1).fill("---")))
rows.forEach((r, i) => console.log(line([`${i + 1} (${r.first})`, ...columns.map(([, cell]) => cell(r))])))
const medianRow = (strategy: Strategy): Row => {
  const med = (pick: (row: Row) => number) => median(rows.map((r) => pick(r[strategy])))
  return {
    lookupsPerTurn: med((r) => r.lookupsPerTurn),
    steadyLookupsPerTurn: med((r) => r.steadyLookupsPerTurn),
    dialsPerTurn: med((r) => r.dialsPerTurn),
    steadyDialsPerTurn: med((r) => r.steadyDialsPerTurn),
    steadyP50: med((r) => r.steadyP50),
    p50: med((r) => r.p50),
    p99: med((r) => r.p99),
    stoppedP99: med((r) => r.stoppedP99),
    byNotice: med((r) => r.byNotice),
    switched: med((r) => r.switched),
    failed: med((r) => r.failed),
    p99WithFailures: med((r) => r.p99WithFailures),
    socketsOpen: med((r) => r.socketsOpen)
  }
}
const medians = {
  lazydial: medianRow("lazydial"),
  lazydial_no_reuse: medianRow("lazydial_no_reuse"),
  latest: medianRow("latest")
}
const ratios = rows.map((r) => r.lazydial.p99 / r.latest.p99)
// the ratio column of the median row is the median of the runs' ratios, not the ratio of the medians
console.log(line([
  "**median**",
  ...columns.map(([name, cell]) => name.startsWith("p99 ratio") ? fixed(median(ratios), 2) : cell(medians))
]))
console.log("")
const maxOf = (pick: (r: Run) => number) => Math.max(...rows.map(pick))
const goal = (met: boolean) => met ? "met" : "NOT met"
const steadyDials = maxOf((r) => r.lazydial.steadyDialsPerTurn)
const steadyP50 = medians.lazydial.steadyP50
const socketsOpen = maxOf((r) => strategies.reduce((n, s) => n + r[s].socketsOpen, 0))
console.log(
  `p99 lazydial ≤ latest in ${ratios.filter((r) => r <= 1).length} of ${runs} runs; ` +
    `p99 failures included lazydial ≤ latest in ${
      rows.filter((r) => r.lazydial.p99WithFailures <= r.latest.p99WithFailures).length
    } of ${runs}; ` +
    `p50 lazydial ≤ latest in ${rows.filter((r) => r.lazydial.p50 <= r.latest.p50).length} of ${runs}; ` +
    `max steady lookups/turn ${fixed(maxOf((r) => r.lazydial.steadyLookupsPerTurn), 3)}`
)
console.log("")
console.log("Goals (issue 20):")
console.log(
  `- dials per steady-state turn ≤ 0.01: the most of any run ${fixed(steadyDials, 3)}, ${goal(steadyDials <= 0.01)}`
)
console.log(
  `- steady-state connect p50 ≤ 1 ms at the handshake above: median ${fixed(steadyP50, 2)} ms (without reuse ` +
    `${fixed(medians.lazydial_no_reuse.steadyP50, 2)} ms), ${goal(steadyP50 <= 1)}`
)
console.log(
  `- connect p99 ≤ 0.5 × latest's, median of the runs' ratios: ${fixed(median(ratios), 2)}, ${
    goal(median(ratios) <= 0.5)
  }`
)
console.log(`- sockets open after a run: the most of any run ${socketsOpen}, ${goal(socketsOpen === 0)}`)
