/**
 * The report as a self-contained HTML page: headline figures, inline SVG
 * charts (lookups per turn over time for both strategies, a strip of every
 * turn's connect latency around the rebuilds for each strategy, and the
 * connect latency distribution), why the tails differ, and the numbers as a
 * table.
 * No script, no external resource. The page is checked in headless Chromium
 * at 1280 and 390 px (test/Report.browser.ci.ts, docs/development.md).
 *
 * @since 0.1.0
 */
import { retireModes } from "@lazydial/service/Fleet"
import * as Render from "./Render.js"
import {
  type OutcomeName,
  outcomeNames,
  type Report,
  type StrategyReport,
  stripLimit,
  type StripTurn
} from "./Report.js"

const colors: Record<StrategyReport["strategy"], string> = {
  lazydial: "#1f77b4",
  lazydial_no_reuse: "#9467bd",
  latest: "#d62728"
}

const escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const width = 640
const height = 260
// The legend lives in the top margin, above the plot, so no line can run under it: two rows of it, the most a
// chart needs (three strategies and a mark, at a phone's larger text).
const margin = { left: 52, right: 16, top: 56, bottom: 40 }
const plotW = width - margin.left - margin.right
const plotH = height - margin.top - margin.bottom

/**
 * Round ticks from 0 to at least `max`: a step of 1, 2, 2.5 or 5 times a power
 * of ten, about `count` of them, so the axis reads 0, 0.25, 0.5 and not 0.17, 0.34.
 */
const niceTicks = (max: number, count = 4): ReadonlyArray<number> => {
  const raw = Math.max(max, Number.MIN_VALUE) / count
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw * (1 - 1e-9)) ?? 10 * magnitude
  const steps = Math.max(1, Math.ceil(max / step - 1e-9))
  return Array.from({ length: steps + 1 }, (_, i) => Number((i * step).toPrecision(12)))
}

/** One color per outcome; the type makes a new outcome name fail to compile until it has one. */
const outcomeColors: Record<OutcomeName, string> = {
  fast: "#1f77b4",
  confirmed: "#17becf",
  lookup_failed_kept: "#9467bd",
  // the path that waits out the validation delay: the color a reader looks for
  switched: "#ff7f0e",
  retried: "#bcbd22",
  lazy_bind: "#8c564b",
  switched_by_notice: "#2ca02c",
  direct: "#5254a3",
  no_agent: "#7f7f7f",
  timeout: "#d62728",
  failed: "#000000",
  database_unavailable: "#e377c2"
}

const percent = (share: number) => `${Number((share * 100).toFixed(1))}%`

interface Chart {
  readonly id: string
  readonly title: string
  readonly description: string
  readonly body: string
}

/** The frame of a chart: an accessible name and description, the scaled viewBox, and the legend in the top margin. */
/** One entry of a chart's legend: its mark, 16 units wide, and its label. */
interface LegendItem {
  readonly label: string
  readonly mark: string
}

/**
 * The legend's entries in rows from the left of the plot, each as wide as
 * its label at a phone's text size (20 units, about 11 a character: the
 * widest it is drawn), so that no two overlap and none passes the chart's
 * right edge at any width.
 */
const legend = (items: ReadonlyArray<LegendItem>): string => {
  const charWidth = 11
  const gap = 14
  let x = margin.left
  let row = 0
  return items.map((item) => {
    const itemWidth = 18 + item.label.length * charWidth
    if (x > margin.left && x + itemWidth > width - margin.right) {
      row++
      x = margin.left
    }
    const placed = `<g transform="translate(${x} ${4 + row * 24})">${item.mark}<text x="18" y="10" font-size="12">${
      escape(item.label)
    }</text></g>`
    x += itemWidth + gap
    return placed
  }).join("")
}

const svg = (chart: Chart, legendItems: ReadonlyArray<LegendItem>) =>
  `<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="${chart.id}" viewBox="0 0 ${width} ${height}" ` +
  `width="${width}" height="${height}" role="img" aria-labelledby="${chart.id}-title ${chart.id}-desc">` +
  `<title id="${chart.id}-title">${escape(chart.title)}</title><desc id="${chart.id}-desc">${
    escape(chart.description)
  }</desc>` +
  `<g class="legend">${legend(legendItems)}</g>` + chart.body + `</svg>`

const strategyMark = (s: StrategyReport) => `<rect x="0" y="1" width="12" height="10" fill="${colors[s.strategy]}"/>`

const strategyLegend = (strategies: ReadonlyArray<StrategyReport>): ReadonlyArray<LegendItem> =>
  strategies.map((s) => ({ label: s.strategy, mark: strategyMark(s) }))

const axes = (
  xLabel: string,
  yLabel: string,
  yTicks: ReadonlyArray<readonly [number, string]>,
  xTicks: ReadonlyArray<readonly [number, string]>
) => {
  const bottom = margin.top + plotH
  const parts: Array<string> = [
    `<g class="axis y-axis">`,
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${bottom}" stroke="#333"/>`
  ]
  for (const [y, label] of yTicks) {
    parts.push(
      `<line x1="${margin.left - 4}" y1="${y}" x2="${margin.left + plotW}" y2="${y}" stroke="#e4e4e4"/>`,
      `<text class="tick" x="${margin.left - 7}" y="${y + 4}" text-anchor="end" font-size="12">${escape(label)}</text>`
    )
  }
  parts.push(
    `<text class="axis-label" x="14" y="${margin.top + plotH / 2}" transform="rotate(-90 14 ${
      margin.top + plotH / 2
    })" text-anchor="middle" font-size="12">${escape(yLabel)}</text></g>`,
    `<g class="axis x-axis">`,
    `<line x1="${margin.left}" y1="${bottom}" x2="${margin.left + plotW}" y2="${bottom}" stroke="#333"/>`
  )
  for (const [i, [x, label]] of xTicks.entries()) {
    // Every other tick is `alt`: hidden on a narrow screen, where the text is drawn larger.
    parts.push(
      `<text class="tick${i % 2 === 1 ? " alt" : ""}" x="${x}" y="${bottom + 15}" text-anchor="middle" font-size="11">${
        escape(label)
      }</text>`
    )
  }
  parts.push(
    `<text x="${margin.left + plotW / 2}" y="${height - 6}" text-anchor="middle" font-size="12">${
      escape(xLabel)
    }</text></g>`
  )
  return parts.join("")
}

/**
 * The fewest turns a time slice needs to be drawn. A run ends with a slice
 * that holds the last few turns; one turn with a lookup there made the curve
 * jump to 1.0 at the very end. A fifth of the median slice, and at least 3.
 */
const minTurnsPerSlice = (strategies: ReadonlyArray<StrategyReport>) => {
  const counts = strategies.flatMap((s) => s.timeline.map((t) => t.turns)).filter((n) => n > 0).sort((a, b) => a - b)
  const median = counts[Math.floor(counts.length / 2)] ?? 0
  return Math.max(3, Math.ceil(median / 5))
}

const lookupsChart = (strategies: ReadonlyArray<StrategyReport>): string => {
  const minTurns = minTurnsPerSlice(strategies)
  const endMs = Math.max(1, ...strategies.flatMap((s) => s.timeline.map((t) => t.atMs)))
  const shown = strategies.map((s) =>
    s.timeline.filter((t) => t.turns >= minTurns).map((t) => ({ ...t, ratio: t.lookups / t.turns }))
  )
  const yTickValues = niceTicks(Math.max(1, ...shown.flat().map((p) => p.ratio)))
  const yMax = yTickValues[yTickValues.length - 1]!
  const x = (atMs: number) => margin.left + plotW * atMs / endMs
  const y = (v: number) => margin.top + plotH - plotH * v / yMax
  const lines = strategies.map((s, j) => {
    const points = shown[j]!
    const path = points.map((p) => `${x(p.atMs).toFixed(1)},${y(p.ratio).toFixed(1)}`).join(" ")
    const dots = points.map((p) =>
      `<circle cx="${x(p.atMs).toFixed(1)}" cy="${y(p.ratio).toFixed(1)}" r="3" fill="${colors[s.strategy]}">` +
      `<title>${s.strategy} at ${(p.atMs / 1000).toFixed(1)} s: ${
        p.ratio.toFixed(2)
      } lookups per turn (${p.lookups} of ${p.turns} turns)</title></circle>`
    )
    return `<g class="series" data-strategy="${s.strategy}"><polyline fill="none" stroke="${
      colors[s.strategy]
    }" stroke-width="2" points="${path}"/>${dots.join("")}</g>`
  })
  const rebuilds = (strategies.find((s) => s.strategy === "lazydial")?.timeline ?? []).flatMap((t) =>
    t.rebuilds === 0 ? [] : [
      `<line x1="${x(t.atMs).toFixed(1)}" y1="${margin.top}" x2="${x(t.atMs).toFixed(1)}" y2="${
        margin.top + plotH
      }" stroke="#999" stroke-dasharray="2,3"><title>${t.rebuilds} rebuild(s) at ${
        (t.atMs / 1000).toFixed(1)
      } s</title></line>`
    ]
  )
  const xTicks = niceTicks(endMs / 1000, 6).filter((s) => s * 1000 <= endMs).map((s): [number, string] => [
    x(s * 1000),
    `${s} s`
  ])
  const yTicks = yTickValues.map((v): [number, string] => [y(v), String(v)])
  const legend = [
    ...strategyLegend(strategies),
    {
      label: "rebuild (lazydial run)",
      mark: `<line x1="6" y1="0" x2="6" y2="12" stroke="#999" stroke-dasharray="2,3"/>`
    }
  ]
  return svg({
    id: "lookups-chart",
    title: "Latest-agent lookups per turn, over time",
    description: strategies.map((s) => `${s.strategy}: ${s.lookupsPerTurn.toFixed(2)} lookups per turn overall`).join(
      "; "
    ) + `. Time slices with fewer than ${minTurns} turns are left out.`,
    body: axes("time since the first turn", "lookups per turn", yTicks, xTicks) + rebuilds.join("") + lines.join("")
  }, legend)
}

const latencyChart = (strategies: ReadonlyArray<StrategyReport>): string => {
  const buckets = strategies[0]?.latency.bucketsMs ?? []
  const shares = strategies.map((s) => {
    const total = s.latency.counts.reduce((a, b) => a + b, 0)
    return s.latency.counts.map((c) => total === 0 ? 0 : c / total)
  })
  const yTickValues = niceTicks(Math.max(0.01, ...shares.flat()))
  const yMax = yTickValues[yTickValues.length - 1]!
  const y = (v: number) => margin.top + plotH - plotH * v / yMax
  const groupW = plotW / Math.max(1, buckets.length)
  const barW = (groupW - 4) / Math.max(1, strategies.length)
  const label = (i: number) => {
    const bound = buckets[i]!
    return bound < 0 ? `${buckets[i - 1] ?? 0} ms or more` : `under ${bound} ms`
  }
  const bars = strategies.map((s, j) =>
    `<g class="series" data-strategy="${s.strategy}">` + shares[j]!.map((v, i) => {
      const h = plotH * v / yMax
      return `<rect x="${(margin.left + i * groupW + 2 + j * barW).toFixed(1)}" y="${
        (margin.top + plotH - h).toFixed(1)
      }"` +
        ` width="${barW.toFixed(1)}" height="${h.toFixed(1)}" fill="${colors[s.strategy]}"><title>${s.strategy}, ${
          label(i)
        }: ${percent(v)} of turns</title></rect>`
    }).join("") + `</g>`
  )
  const xTicks = buckets.map((bound, i): [number, string] => [
    margin.left + i * groupW + groupW / 2,
    bound < 0 ? "more" : `<${bound}`
  ])
  const yTicks = yTickValues.map((v): [number, string] => [y(v), percent(v)])
  return svg({
    id: "latency-chart",
    title: "Connect latency: share of turns per latency bucket",
    description: strategies.map((s) =>
      `${s.strategy}: p50 ${s.latency.p50.toFixed(1)} ms, p99 ${s.latency.p99.toFixed(1)} ms`
    ).join("; ") + ".",
    body: axes("connect latency (ms)", "share of turns", yTicks, xTicks) + bars.join("")
  }, strategyLegend(strategies))
}

/**
 * A power of ten at or below `value` (0.1 ms at least: faster connects are
 * drawn on the bottom line), and one at or above.
 */
const decadeBelow = (value: number) => 10 ** Math.floor(Math.log10(Math.max(0.1, value)))
const decadeAbove = (value: number) => 10 ** Math.ceil(Math.log10(Math.max(0.1, value)))

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`

/** The axes both strips share, so that the two strategies can be read against each other. */
const stripScale = (report: Report) => {
  const turns = report.strategies.flatMap((s) => s.strip.turns)
  const connects = turns.map((t) => t.connectMs)
  const endMs = Math.max(
    1,
    ...report.strategies.map((s) => s.durationMs),
    ...turns.map((t) => t.atMs),
    ...report.strategies.flatMap((s) => s.strip.rebuilds.map((r) => r.atMs))
  )
  const lo = decadeBelow(Math.min(...connects.filter((ms) => ms > 0), report.settings.validationDelayMs))
  const hi = decadeAbove(Math.max(...connects, report.settings.validationDelayMs * 1.01))
  const x = (atMs: number) => margin.left + plotW * Math.min(atMs, endMs) / endMs
  const y = (ms: number) =>
    margin.top + plotH - plotH * (Math.log10(Math.max(lo, Math.min(hi, ms))) - Math.log10(lo)) /
      (Math.log10(hi) - Math.log10(lo))
  const decades = Array.from({ length: Math.round(Math.log10(hi / lo)) + 1 }, (_, i) => lo * 10 ** i)
  // "1 s" rather than "1000": the labels stay 4 characters, which a phone's narrow margin shows whole.
  const yTicks = decades.map((ms): [number, string] => [
    y(ms),
    ms >= 1000 ? `${ms / 1000} s` : String(Number(ms.toPrecision(3)))
  ])
  const xTicks = niceTicks(endMs / 1000, 6).filter((s) => s * 1000 <= endMs).map((s): [number, string] => [
    x(s * 1000),
    `${s} s`
  ])
  return { x, y, xTicks, yTicks }
}

/** A rebuild whose old agent hangs is drawn solid and dark: turns on it wait the validation delay. */
const rebuildStroke = (mode: StrategyReport["strip"]["rebuilds"][number]["mode"]) =>
  mode === "hang" ? `stroke="#555" stroke-width="1.2"` : `stroke="#aaa" stroke-dasharray="3,3"`

const delayStroke = `stroke="#d62728" stroke-width="1.5" stroke-dasharray="8,4"`

const delayName = (report: Report) =>
  report.settings.delayMode === "adaptive"
    ? `validation delay (learned; starts at ${report.settings.validationDelayMs} ms)`
    : `validation delay (${report.settings.validationDelayMs} ms)`

const turnTitle = (strategy: string, turn: StripTurn) =>
  `${strategy} turn at ${seconds(turn.atMs)}: ${turn.connectMs.toFixed(1)} ms, ${turn.outcome}${
    turn.stopped ? " (stopped workspace)" : ""
  }`

/** Turns at least as slow as the validation delay: the ones that waited it out, or timed out. */
const waitedTheDelay = (report: Report, s: StrategyReport) =>
  s.strip.turns.filter((t) => t.connectMs >= report.settings.validationDelayMs).length

const stripChart = (report: Report, s: StrategyReport, scale: ReturnType<typeof stripScale>): string => {
  const { x, y } = scale
  const top = margin.top
  const bottom = margin.top + plotH
  const marks = s.strip.rebuilds.map((r) =>
    `<line class="rebuild" data-mode="${r.mode}" x1="${x(r.atMs).toFixed(1)}" y1="${top}" x2="${
      x(r.atMs).toFixed(1)
    }" y2="${bottom}" ${rebuildStroke(r.mode)}><title>rebuild of workspace ${r.workspace} (${r.mode}) at ${
      seconds(r.atMs)
    }</title></line>`
  )
  const delayY = y(report.settings.validationDelayMs).toFixed(1)
  const delay = `<line class="delay" x1="${margin.left}" y1="${delayY}" x2="${
    margin.left + plotW
  }" y2="${delayY}" ${delayStroke}><title>${escape(delayName(report))}</title></line>`
  // The commonest outcome first: the rare ones (a switch after the delay, a timeout) are drawn on top of it.
  const counts = new Map<OutcomeName, number>()
  for (const turn of s.strip.turns) counts.set(turn.outcome, (counts.get(turn.outcome) ?? 0) + 1)
  const ordered = [...s.strip.turns].sort((a, b) => (counts.get(b.outcome) ?? 0) - (counts.get(a.outcome) ?? 0))
  const dots = ordered.map((turn) => {
    const color = outcomeColors[turn.outcome]
    const paint = turn.stopped ? `fill="none" stroke="${color}" stroke-width="1.2"` : `fill="${color}"`
    return `<circle class="turn" data-outcome="${turn.outcome}" cx="${x(turn.atMs).toFixed(1)}" cy="${
      y(turn.connectMs).toFixed(1)
    }" r="3" ${paint}><title>${escape(turnTitle(s.strategy, turn))}</title></circle>`
  })
  const hung = s.strip.rebuilds.filter((r) => r.mode === "hang").length
  const drawn = s.strip.turnsEvery === 1
    ? `${s.strip.turns.length} turns`
    : `one turn in ${s.strip.turnsEvery} of ${s.turns} (${s.strip.turns.length} drawn)`
  return svg({
    id: `strip-${s.strategy}`,
    title: `${s.strategy}: connect latency of each turn over time, with the rebuilds`,
    description: `${drawn} and ${s.strip.rebuilds.length} rebuilds (${hung} left their old agent hanging). ` +
      `${waitedTheDelay(report, s)} drawn turns took at least the ${delayName(report)}. ` +
      `Turns within ${s.afterRebuild.windowMs} ms after a rebuild of their workspace: ` +
      `p50 ${s.afterRebuild.p50.toFixed(1)} ms, p99 ${s.afterRebuild.p99.toFixed(1)} ms.`,
    body: axes("time since the first turn", "connect (ms, log scale)", scale.yTicks, scale.xTicks) +
      `<g class="rebuilds">${marks.join("")}</g>${delay}` +
      `<g class="series" data-strategy="${s.strategy}">${dots.join("")}</g>`
  }, [{ label: s.strategy, mark: strategyMark(s) }])
}

/** One legend for both strips: the outcomes drawn, in report order, and the marks. */
const stripLegend = (report: Report): string => {
  const turns = report.strategies.flatMap((s) => s.strip.turns)
  const modes = new Set(report.strategies.flatMap((s) => s.strip.rebuilds.map((r) => r.mode)))
  const swatch = (body: string) =>
    `<svg class="swatch" width="16" height="12" viewBox="0 0 16 12" aria-hidden="true">${body}</svg>`
  const item = (kind: string, label: string, body: string) =>
    `<li data-legend="${kind}">${swatch(body)} ${escape(label)}</li>`
  const items = [
    ...outcomeNames.filter((name) => turns.some((t) => t.outcome === name)).map((name) =>
      item(`outcome-${name}`, name, `<circle cx="8" cy="6" r="4" fill="${outcomeColors[name]}"/>`)
    ),
    ...(turns.some((t) => t.stopped)
      ? [item("stopped", "ring: a stopped workspace", `<circle cx="8" cy="6" r="4" fill="none" stroke="#333"/>`)]
      : []),
    ...retireModes.filter((mode) => modes.has(mode)).map((mode) =>
      item(
        `rebuild-${mode}`,
        `rebuild: old agent ${mode}`,
        `<line x1="8" y1="0" x2="8" y2="12" ${rebuildStroke(mode)}/>`
      )
    ),
    item("delay", delayName(report), `<line x1="0" y1="6" x2="16" y2="6" ${delayStroke}/>`)
  ]
  return `<ul class="strip-legend" aria-label="legend of the strips">${items.join("")}</ul>`
}

/** The strips' text alternative: the turns around the rebuilds, in numbers. */
const afterRebuildTable = (report: Report): string => {
  const cells = (value: (s: StrategyReport) => string) =>
    report.strategies.map((s) => `<td>${escape(value(s))}</td>`).join("")
  const row = (label: string, value: (s: StrategyReport) => string) =>
    `<tr><th scope="row">${escape(label)}</th>${cells(value)}</tr>`
  const sampled = report.strategies.some((s) => s.strip.turnsEvery > 1)
  return `<table class="numbers after-rebuild"><caption>${escape(Render.afterRebuildLabel(report))}: connect p50/p99` +
    `</caption><thead><tr><th scope="col">number</th>${
      report.strategies.map((s) => `<th scope="col" style="color:${colors[s.strategy]}">${s.strategy}</th>`).join("")
    }</tr></thead><tbody>` +
    row("turns", (s) => String(s.afterRebuild.turns)) +
    row("connect p50 (ms)", (s) => s.afterRebuild.p50.toFixed(1)) +
    row("connect p99 (ms)", (s) => s.afterRebuild.p99.toFixed(1)) +
    row("connect p99 of all turns (ms)", (s) => s.latency.p99.toFixed(1)) +
    row(
      `turns${sampled ? " drawn" : ""} that took at least the validation delay`,
      (s) => String(waitedTheDelay(report, s))
    ) +
    `</tbody></table>`
}

/**
 * Where the wait went: one strip per strategy, on the same axes, one dot per
 * turn at its start time and connect latency, with every rebuild marked.
 */
const strips = (report: Report): string => {
  const scale = stripScale(report)
  const sampled = report.strategies.filter((s) => s.strip.turnsEvery > 1 || s.strip.rebuildsEvery > 1)
  const note = sampled.length === 0
    ? "Each dot is one turn, at the time its connect started; each vertical line is a rebuild."
    : `A strip keeps at most ${stripLimit.toLocaleString("en-US")} turns and rebuilds: ${
      sampled.map((s) =>
        `${s.strategy} draws one turn in ${s.strip.turnsEvery} and one rebuild in ${s.strip.rebuildsEvery}`
      ).join("; ")
    }. The figures count every turn.`
  return `<p class="strip-note">${escape(note)} A turn on an agent its rebuild left hanging waits until the validation
delay (the dashed red line) before it switches: a dot on or above that line, just after a solid rebuild line.</p>
${stripLegend(report)}
${report.strategies.map((s) => stripChart(report, s, scale)).join("\n")}
${afterRebuildTable(report)}`
}

/** The figures a reader looks for first, each as "lazydial vs latest". */
const headline = (strategies: ReadonlyArray<StrategyReport>): string => {
  const figure = (name: string, key: string, value: (s: StrategyReport) => string) =>
    `<div class="figure" data-figure="${key}"><div class="name">${escape(name)}</div><div class="values">${
      strategies.map((s) =>
        `<span class="value" data-strategy="${s.strategy}" style="color:${colors[s.strategy]}">${
          escape(value(s))
        }</span>`
      ).join(" <span class=\"vs\">vs</span> ")
    }</div></div>`
  return `<section class="figures" aria-label="headline figures">` +
    figure("lookups per turn", "lookups-per-turn", (s) => s.lookupsPerTurn.toFixed(2)) +
    figure("lookups per steady-state turn", "steady-lookups-per-turn", (s) => s.steadyLookupsPerTurn.toFixed(2)) +
    figure("dials per steady-state turn", "steady-dials-per-turn", (s) => s.steadyDialsPerTurn.toFixed(2)) +
    figure("steady-state connect p50", "steady-p50", (s) => `${s.steadyConnect.p50.toFixed(1)} ms`) +
    figure("connect latency p50", "p50", (s) => `${s.latency.p50.toFixed(0)} ms`) +
    figure("connect latency p99", "p99", (s) => `${s.latency.p99.toFixed(0)} ms`) +
    figure("turns that reached a wrong agent", "wrong-agent", (s) => String(s.wrongAgentTurns)) +
    figure("turns of stopped workspaces (each fails: no_agent)", "stopped", (s) => String(s.stoppedTurns)) +
    `</section>` +
    `<p class="figures-legend">${
      strategies.map((s) => `<b style="color:${colors[s.strategy]}">${s.strategy}</b>`).join(" vs ")
    }</p>`
}

/**
 * Why lazydial's tail is longer, when it is: the turns that validated their
 * binding are the ones that can wait for the validation delay.
 */
const tailNote = (report: Report): string => {
  const lazy = report.strategies.find((s) => s.strategy === "lazydial")
  const latest = report.strategies.find((s) => s.strategy === "latest")
  if (lazy === undefined || latest === undefined || lazy.latency.p99 <= latest.latency.p99) return ""
  const o = lazy.outcomes
  const validated = o.confirmed + o.lookup_failed_kept + o.switched + o.retried
  const share = lazy.turns === 0 ? 0 : validated / lazy.turns
  return `<p class="tail-note" id="p99-note"><b>Why is lazydial's p99 higher?</b> A lazydial turn dials the bound agent
at once and asks for the current agent only when that dial is still pending after the validation delay
(${report.settings.validationDelayMs} ms) or has failed. After a rebuild the old agent often hangs, so such a turn waits
the delay before it switches. ${validated} of ${lazy.turns} lazydial turns (${percent(share)}) validated their binding
(switched, confirmed, kept or retried)${
    share > 0.01 ? ", more than the 1% of turns the p99 looks at" : ""
  }. The latest strategy pays a lookup on every turn instead, and never waits on a stale agent. The strips below
show each of these turns: a dot on the validation delay's line, just after a rebuild.</p>`
}

const numbersTable = (report: Report): string => {
  const head = `<thead><tr><th scope="col">number</th>${
    report.strategies.map((s) => `<th scope="col" style="color:${colors[s.strategy]}">${s.strategy}</th>`).join("")
  }</tr></thead>`
  const body = Render.rows(report).map((row) =>
    row.values.length === 0
      ? `<tr class="group"><th scope="rowgroup" colspan="${report.strategies.length + 1}">${
        escape(row.label)
      }</th></tr>`
      : `<tr><th scope="row" style="padding-left:${0.4 + row.depth}em">${escape(row.label)}</th>${
        row.values.map((v) => `<td>${escape(v)}</td>`).join("")
      }</tr>`
  ).join("\n")
  return `<table class="numbers">${head}<tbody>\n${body}\n</tbody></table>`
}

const style = [
  "*{box-sizing:border-box}",
  "body{font-family:system-ui,sans-serif;max-width:760px;margin:0 auto;padding:1em;color:#222;line-height:1.4}",
  "h1{font-size:1.6em}",
  ".chart{display:block;max-width:100%;height:auto}",
  ".conclusions{border-left:3px solid #444;padding:.1em .8em;margin:1em 0}.conclusions p{margin:.4em 0}",
  ".figures{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:.6em}",
  ".figure{border:1px solid #ddd;border-radius:6px;padding:.5em .7em}",
  ".figure .name{font-size:.85em;color:#555}.figure .values{font-size:1.3em;font-weight:600}",
  ".figure .vs{font-size:.7em;font-weight:400;color:#777}.figures-legend{font-size:.85em;margin:.3em 0 0}",
  ".settings{color:#555;font-size:.9em;overflow-wrap:anywhere}",
  ".numbers{width:100%;border-collapse:collapse;font-size:.9em}",
  ".numbers th,.numbers td{padding:.2em .4em;border-bottom:1px solid #eee;overflow-wrap:anywhere}",
  ".numbers th{text-align:left;font-weight:400}.numbers thead th{font-weight:600}",
  ".numbers td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}",
  ".numbers tr.group th{font-weight:600;padding-top:.6em}.numbers thead th{white-space:nowrap}",
  ".numbers caption{text-align:left;font-weight:600;padding:.6em 0 .2em}",
  ".strip-legend{list-style:none;padding:0;margin:.4em 0;display:flex;flex-wrap:wrap;gap:.2em 1em;font-size:.85em}",
  ".strip-legend li{white-space:nowrap}.strip-legend .swatch{vertical-align:-1px}",
  // A phone shows the 640-unit charts at about half size: larger text, half the x ticks, and no y title
  // (the heading above the chart says it).
  "@media (max-width:520px){.chart text{font-size:20px}.chart .tick{font-size:18px}.chart .tick.alt,.chart .y-axis .axis-label{display:none}}"
].join("\n")

/**
 * @since 0.1.0
 * @category rendering
 */
export const page = (report: Report): string =>
  `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>lazydial service report (seed ${report.settings.seed})</title>
<style>
${style}
</style>
</head><body>
<h1>lazydial reference service</h1>
<p>The same seeded workload, run three times on real TCP agents whose handshake takes
${report.settings.dialLatencyMs} ms: with persisted bindings and lazy validation over connections shared across turns
(<b style="color:${colors.lazydial}">lazydial</b>), the same with a dial per turn
(<b style="color:${colors.lazydial_no_reuse}">lazydial_no_reuse</b>), and looking up the latest agent and dialing it on
every turn (<b style="color:${colors.latest}">latest</b>).</p>
<section class="conclusions" aria-label="what the run shows">${
    Render.conclusions(report).map((line) => `<p>${escape(line)}</p>`).join("")
  }</section>
${headline(report.strategies)}
${tailNote(report)}
<h2>Latest-agent lookups per turn, over time</h2>
${lookupsChart(report.strategies)}
<h2>Where the wait went: each turn's connect, around the rebuilds</h2>
${strips(report)}
<h2>Connect latency</h2>
${latencyChart(report.strategies)}
<h2>The numbers</h2>
${Render.settingsLines(report).map((line) => `<p class="settings">${escape(line)}</p>`).join("\n")}
${numbersTable(report)}
</body></html>
`
