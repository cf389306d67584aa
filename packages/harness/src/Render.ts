/**
 * The report as text: the strategies side by side, one line per number, in
 * the order `docs/service.md` explains them.
 *
 * @since 0.1.0
 */
import { connectOutcomes } from "@lazydial/service/Chats"
import { outcomeNames, type Report, type StrategyReport } from "./Report.js"

const pad = (text: string, width: number) => text.padStart(width)

/**
 * One line of the numbers: a label (indented by `depth`) and one value per
 * strategy, or a heading when `values` is empty. Text and HTML both render
 * this one list, so they never disagree.
 *
 * @since 0.1.0
 * @category models
 */
export interface Row {
  readonly label: string
  readonly depth: number
  readonly values: ReadonlyArray<string>
}

/**
 * The settings of the run, as two sentences.
 *
 * @since 0.1.0
 * @category rendering
 */
export const settingsLines = (report: Report): ReadonlyArray<string> => {
  const s = report.settings
  return [
    `lazydial reference service: seed ${s.seed}, ${s.chats} chats (${s.childChats} spawned as children) over ` +
    `${s.workspaces} workspaces (${s.stoppedWorkspaces} stopped)`,
    `${s.turns} turns per chat, concurrency ${s.concurrency}, ${s.rebuildRate} rebuilds/s, ` +
    `validation delay ${
      s.delayMode === "adaptive" ? `adaptive, starting at ${s.validationDelayMs} ms` : `${s.validationDelayMs} ms`
    }, ` +
    `rebuild notices ${s.notices ? "on" : "off"}, handshake latency ${s.dialLatencyMs} ms per dial, ` +
    `dial timeout ${s.dialTimeoutMs} ms, database ${s.database}, ran in the order ${s.order.join(", ")}`
  ]
}

/**
 * How many of the slowest of `turns` a p99 rests on: the nearest-rank p99 is
 * the `k`th slowest turn, so `k` turns decide it.
 *
 * @since 0.2.0
 * @category rendering
 */
export const p99Rank = (turns: number): number => turns === 0 ? 0 : turns - Math.ceil(0.99 * turns) + 1

/**
 * How many fresh runs `bench:report` takes by default to judge a p99: their
 * median, with the order of the strategies alternated, is what a comparison
 * of tails should quote, never one run. Twice the number of strategies: each
 * runs first twice.
 *
 * @since 0.2.0
 * @category constants
 */
export const runsToJudgeP99 = 6

const times = (a: number, b: number) => b === 0 ? "n/a" : `${(a / b).toFixed(2)}×`

/**
 * What the run shows, in a few sentences with the figures: the report's
 * first lines, above the numbers (text and HTML alike). Dials per
 * steady-state turn and the steady-state connect p50, with and without
 * shared connections; lookups per steady-state turn; turns that reached a
 * wrong agent, with the stopped workspaces' turns apart; p50 and p99 against
 * latest with their ratio; and what one run can say about a p99.
 *
 * @since 0.2.0
 * @category rendering
 */
export const conclusions = (report: Report): ReadonlyArray<string> => {
  const lazy = report.strategies.find((s) => s.strategy === "lazydial")
  const noReuse = report.strategies.find((s) => s.strategy === "lazydial_no_reuse")
  const latest = report.strategies.find((s) => s.strategy === "latest")
  if (lazy === undefined || noReuse === undefined || latest === undefined) return []
  const all = [lazy, noReuse, latest]
  const wrong = all.reduce((n, s) => n + s.wrongAgentTurns, 0)
  // the latency holds the turns that connected: the p99 is theirs
  const connected = lazy.latency.counts.reduce((sum, n) => sum + n, 0)
  const rank = p99Rank(connected)
  const handshake = report.settings.dialLatencyMs
  return [
    `With shared connections lazydial dialed ${lazy.steadyDialsPerTurn.toFixed(3)} times per steady-state turn ` +
    `(${lazy.steadyDials} dials in ${lazy.steadyTurns} turns), against ${
      noReuse.steadyDialsPerTurn.toFixed(3)
    } without reuse and ${latest.steadyDialsPerTurn.toFixed(3)} for latest; its steady-state connect p50 was ` +
    `${lazy.steadyConnect.p50.toFixed(1)} ms against ${noReuse.steadyConnect.p50.toFixed(1)} ms without reuse, ` +
    `at a ${handshake} ms handshake.`,
    `Connect latency over every turn: p50 ${lazy.latency.p50.toFixed(1)} ms (lazydial) against ` +
    `${latest.latency.p50.toFixed(1)} ms (latest), ${times(lazy.latency.p50, latest.latency.p50)}; p99 ` +
    `${lazy.latency.p99.toFixed(1)} ms against ${latest.latency.p99.toFixed(1)} ms, ${
      times(lazy.latency.p99, latest.latency.p99)
    } (without reuse: p50 ${noReuse.latency.p50.toFixed(1)} ms, p99 ${noReuse.latency.p99.toFixed(1)} ms). ${
      dialShare(lazy, connected)
    }`,
    `On steady-state turns lazydial looked the agent up ${lazy.steadyLookupsPerTurn.toFixed(3)} times per turn ` +
    `(${lazy.steadyLookups} lookups in ${lazy.steadyTurns} turns), latest ${latest.steadyLookupsPerTurn.toFixed(3)} ` +
    `(${latest.steadyLookups} in ${latest.steadyTurns}). ${
      wrong === 0 ? "No turn reached a wrong agent" : `${wrong} turns reached a wrong agent: a bug`
    } (${all.map((s) => `${s.strategy} ${s.wrongAgentTurns}`).join(", ")}); the ${
      all.map((s) => s.stoppedTurns).join(", ")
    } turns of stopped workspaces failed, as they must (p99 ${
      all.map((s) => s.stoppedConnectP99Ms.toFixed(1)).join(", ")
    } ms).`,
    `A p99 of ${connected} connected turns is their ${ordinal(rank)} slowest: one run decides nothing about it. ` +
    `Judge it by the median of ${runsToJudgeP99} fresh runs that alternate which strategy runs first ` +
    `(pnpm --filter @lazydial/harness bench:report); ${report.settings.first} ran first here.`
  ]
}

/**
 * How many of the connected turns dialed, and what that means for the p99:
 * when more than 1 in 100 did, the p99 is a dial's time, reuse or not.
 */
const dialShare = (s: StrategyReport, connected: number): string => {
  const share = connected === 0 ? 0 : s.dials / connected
  return `${s.strategy} dialed ${s.dials} times for ${connected} connected turns (${(share * 100).toFixed(1)}%: ` +
    `the first turn to reach an agent, or a turn after a rebuild)${
      share > 0.01 ? ", more than the 1% a p99 looks at, so its p99 is a dial's time" : ""
    }.`
}

/**
 * `1st`, `2nd`, `3rd`, `4th`, ..., `11th`, `21st`.
 *
 * @since 0.2.0
 * @category rendering
 */
export const ordinal = (n: number): string => {
  const tens = n % 100
  const suffix = tens >= 11 && tens <= 13
    ? "th"
    : n % 10 === 1
    ? "st"
    : n % 10 === 2
    ? "nd"
    : n % 10 === 3
    ? "rd"
    : "th"
  return `${n}${suffix}`
}

/**
 * The name of the turns counted in `afterRebuild`, with their window, said
 * once: the text report's row and the HTML page's table both use it.
 *
 * @since 0.1.0
 * @category rendering
 */
export const afterRebuildLabel = (report: Report): string => {
  const windowMs = report.strategies[0]?.afterRebuild.windowMs ?? 0
  const window = windowMs % 1000 === 0 ? `${windowMs / 1000} s` : `${windowMs} ms`
  return `turns within ${window} after a rebuild`
}

/**
 * The numbers, one row each, in the order `docs/service.md` explains them.
 *
 * @since 0.1.0
 * @category rendering
 */
export const rows = (report: Report): ReadonlyArray<Row> => {
  const columns = report.strategies
  const out: Array<Row> = []
  const heading = (label: string) => out.push({ label, depth: 0, values: [] })
  const row = (label: string, value: (r: StrategyReport) => string | number) => {
    const depth = label.length - label.trimStart().length
    out.push({ label: label.trimStart(), depth: depth / 2, values: columns.map((r) => String(value(r))) })
  }
  const fixed = (n: number, digits: number) => n.toFixed(digits)

  row("run time (s)", (r) => fixed(r.durationMs / 1000, 1))
  row("turns", (r) => r.turns)
  row("  reached a wrong agent", (r) => r.wrongAgentTurns)
  row("dials", (r) => r.dials)
  row("  per turn", (r) => fixed(r.dialsPerTurn, 3))
  row("  per steady-state turn", (r) => fixed(r.steadyDialsPerTurn, 3))
  row(
    "shared connections: dials / borrows / drops",
    (r) => r.shared === null ? "n/a" : `${r.shared.dials}/${r.shared.borrows}/${r.shared.drops}`
  )
  row("latest-agent lookups", (r) => r.lookups)
  row("  per turn", (r) => fixed(r.lookupsPerTurn, 3))
  row("  per steady-state turn", (r) => fixed(r.steadyLookupsPerTurn, 3))
  row("    (steady-state turns)", (r) => r.steadyTurns)
  heading("outcomes")
  for (const name of outcomeNames) {
    // Every way to connect gets its line, 0 included (a 0 says the path was not taken: `switched_by_notice`
    // with notices off); a failure only when it happened.
    const path = (connectOutcomes as ReadonlyArray<string>).includes(name) // safe: widening for the lookup
    if (!path && columns.every((r) => r.outcomes[name] === 0)) continue
    row(`  ${name}`, (r) => r.outcomes[name])
  }
  row("connect latency p50 (ms)", (r) => fixed(r.latency.p50, 1))
  row("connect latency p99 (ms)", (r) => fixed(r.latency.p99, 1))
  row("connect latency max (ms)", (r) => fixed(r.latency.max, 1))
  row("steady-state turns that connected", (r) => r.steadyConnect.turns)
  row("  connect p50 (ms)", (r) => fixed(r.steadyConnect.p50, 1))
  row("  connect p99 (ms)", (r) => fixed(r.steadyConnect.p99, 1))
  row("turns of stopped workspaces", (r) => r.stoppedTurns)
  row("  connect p50 (ms)", (r) => fixed(r.stoppedConnectP50Ms, 1))
  row("  connect p99 (ms)", (r) => fixed(r.stoppedConnectP99Ms, 1))
  row("turns of running workspaces", (r) => r.connectOrFail.turns)
  row("  of which got no connection", (r) => r.connectOrFail.failed)
  row("  connect or fail p50 (ms)", (r) => fixed(r.connectOrFail.p50, 1))
  row("  connect or fail p99 (ms)", (r) => fixed(r.connectOrFail.p99, 1))
  row(afterRebuildLabel(report), (r) => r.afterRebuild.turns)
  row("  connect p50 (ms)", (r) => fixed(r.afterRebuild.p50, 1))
  row("  connect p99 (ms)", (r) => fixed(r.afterRebuild.p99, 1))
  row("bindings repaired", (r) => r.bindingsRepaired)
  row(
    "chats bound to the current agent at end",
    (r) => r.boundToCurrent === null ? "n/a" : `${r.boundToCurrent}/${r.chatsOnRunningWorkspaces}`
  )
  row("rebuilds: died / hung / port reused", (r) => `${r.rebuilds.died}/${r.rebuilds.hung}/${r.rebuilds.portsReused}`)
  row("dial errors: refused", (r) => r.dialErrors.Refused)
  row("dial errors: wrong agent (caught)", (r) => r.dialErrors.WrongAgent)
  row("dial errors: other", (r) => r.dialErrors.Unreachable + r.dialErrors.Protocol + r.dialErrors.Closed)
  if (columns.some((r) => r.rebuilds.diedMidHandshake > 0)) {
    row("rebuilds: died mid-handshake", (r) => r.rebuilds.diedMidHandshake)
  }
  const injected = (r: StrategyReport) => Object.values(r.faultsInjected).reduce((a, b) => a + b, 0)
  if (columns.some((r) => injected(r) > 0 || r.defects > 0)) {
    row("faults injected (LAZYDIAL_FAULTS)", injected)
    row("  dial failures / hangs", (r) => `${r.faultsInjected.dialFailure}/${r.faultsInjected.hang}`)
    row("  ignoring interruption", (r) => r.faultsInjected.ignoreInterruption)
    row("  lookup failures / no agent", (r) => `${r.faultsInjected.lookupFailure}/${r.faultsInjected.noAgent}`)
    row(
      "  defects injected / turns ended by one",
      (r) => `${r.faultsInjected.dialDefect + r.faultsInjected.lookupDefect}/${r.defects}`
    )
    row("slowest connect, failures included (ms)", (r) => fixed(r.slowestConnectMs, 1))
  }
  row("connections opened", (r) => r.connectionsOpened)
  row("connections closed", (r) => r.connectionsClosed)
  row("sockets still open at the end", (r) => r.socketsStillOpen + r.agentSocketsStillOpen)
  return out
}

/**
 * @since 0.1.0
 * @category rendering
 */
export const text = (report: Report): string => {
  const labelWidth = 44
  // the widest strategy name, lazydial_no_reuse, and a gap
  const width = 20
  const lines = [...conclusions(report), "", ...settingsLines(report), ""]
  lines.push("".padEnd(labelWidth) + report.strategies.map((r) => pad(r.strategy, width)).join(""))
  for (const row of rows(report)) {
    const label = "  ".repeat(row.depth) + row.label
    lines.push(
      row.values.length === 0 ? label : label.padEnd(labelWidth) + row.values.map((v) => pad(v, width)).join("")
    )
  }
  return lines.join("\n")
}

/**
 * The live progress line.
 *
 * @since 0.1.0
 * @category rendering
 */
export const progressLine = (progress: {
  readonly strategy: string
  readonly turns: number
  readonly totalTurns: number
  readonly lookups: number
  readonly rebuilds: number
  readonly socketsOpen: number
}): string =>
  `[${progress.strategy}] turns ${progress.turns}/${progress.totalTurns}  lookups ${progress.lookups}  ` +
  `rebuilds ${progress.rebuilds}  sockets open ${progress.socketsOpen}`
