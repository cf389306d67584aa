/**
 * The report as a self-contained HTML page: two inline SVG charts (lookups
 * per turn over time for both strategies, and the connect latency
 * distribution) and the numbers. No script, no external resource.
 *
 * @since 0.1.0
 */
import * as Render from "./Render.js"
import type { Report, StrategyReport } from "./Report.js"

const colors: Record<StrategyReport["strategy"], string> = { lazydial: "#1f77b4", latest: "#d62728" }

const escape = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const width = 640
const height = 240
const margin = { left: 48, right: 16, top: 16, bottom: 36 }
const plotW = width - margin.left - margin.right
const plotH = height - margin.top - margin.bottom

const axes = (xLabel: string, yLabel: string, yMax: number, xTicks: ReadonlyArray<[number, string]>) => {
  const parts: Array<string> = []
  parts.push(
    `<line x1="${margin.left}" y1="${margin.top + plotH}" x2="${margin.left + plotW}" y2="${
      margin.top + plotH
    }" stroke="#333"/>`
  )
  parts.push(
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}" stroke="#333"/>`
  )
  for (let i = 0; i <= 4; i++) {
    const value = yMax * i / 4
    const y = margin.top + plotH - plotH * i / 4
    parts.push(`<line x1="${margin.left - 4}" y1="${y}" x2="${margin.left + plotW}" y2="${y}" stroke="#eee"/>`)
    parts.push(
      `<text x="${margin.left - 6}" y="${y + 4}" text-anchor="end" font-size="10">${Number(value.toFixed(2))}</text>`
    )
  }
  for (const [x, label] of xTicks) {
    parts.push(
      `<text x="${x}" y="${margin.top + plotH + 14}" text-anchor="middle" font-size="10">${escape(label)}</text>`
    )
  }
  parts.push(
    `<text x="${margin.left + plotW / 2}" y="${height - 4}" text-anchor="middle" font-size="11">${
      escape(xLabel)
    }</text>`
  )
  parts.push(
    `<text x="12" y="${margin.top + plotH / 2}" transform="rotate(-90 12 ${
      margin.top + plotH / 2
    })" text-anchor="middle" font-size="11">${escape(yLabel)}</text>`
  )
  return parts.join("")
}

const legend = (strategies: ReadonlyArray<StrategyReport>) =>
  strategies.map((s, i) =>
    `<rect x="${margin.left + 10 + i * 110}" y="${margin.top}" width="10" height="10" fill="${colors[s.strategy]}"/>` +
    `<text x="${margin.left + 24 + i * 110}" y="${margin.top + 9}" font-size="11">${s.strategy}</text>`
  ).join("")

const lookupsChart = (strategies: ReadonlyArray<StrategyReport>) => {
  const slices = Math.max(1, ...strategies.map((s) => s.timeline.length))
  const sliceMs = strategies.find((s) => s.timeline.length > 1)?.timeline[1]?.atMs ?? 500
  const yMax = Math.max(1, ...strategies.flatMap((s) => s.timeline.map((t) => t.turns === 0 ? 0 : t.lookups / t.turns)))
  const x = (i: number) => margin.left + (slices === 1 ? 0 : plotW * i / (slices - 1))
  const y = (v: number) => margin.top + plotH - plotH * v / yMax
  const lines = strategies.map((s) => {
    const points = s.timeline
      .map((t, i) => [i, t.turns === 0 ? undefined : t.lookups / t.turns] as const)
      .filter((p): p is readonly [number, number] => p[1] !== undefined)
      .map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`)
    return `<polyline fill="none" stroke="${colors[s.strategy]}" stroke-width="2" points="${points.join(" ")}"/>`
  })
  const rebuilds = strategies[0]?.timeline.flatMap((t, i) =>
    t.rebuilds === 0 ? [] : [
      `<line x1="${x(i)}" y1="${margin.top}" x2="${x(i)}" y2="${
        margin.top + plotH
      }" stroke="#999" stroke-dasharray="2,3"/>`
    ]
  ) ?? []
  const ticks: Array<[number, string]> = []
  const step = Math.max(1, Math.ceil(slices / 8))
  for (let i = 0; i < slices; i += step) ticks.push([x(i), `${(i * sliceMs / 1000).toFixed(1)} s`])
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img">` +
    axes("time since the first turn (dashed: a rebuild in the lazydial run)", "lookups per turn", yMax, ticks) +
    rebuilds.join("") + lines.join("") + legend(strategies) + `</svg>`
}

const latencyChart = (strategies: ReadonlyArray<StrategyReport>) => {
  const buckets = strategies[0]?.latency.bucketsMs ?? []
  const shares = strategies.map((s) => {
    const total = s.latency.counts.reduce((a, b) => a + b, 0)
    return s.latency.counts.map((c) => total === 0 ? 0 : c / total)
  })
  const yMax = Math.max(0.01, ...shares.flat())
  const groupW = plotW / Math.max(1, buckets.length)
  const barW = (groupW - 4) / Math.max(1, strategies.length)
  const bars = strategies.flatMap((s, j) =>
    shares[j]!.map((v, i) => {
      const h = plotH * v / yMax
      return `<rect x="${(margin.left + i * groupW + 2 + j * barW).toFixed(1)}" y="${
        (margin.top + plotH - h).toFixed(1)
      }" width="${barW.toFixed(1)}" height="${h.toFixed(1)}" fill="${colors[s.strategy]}"><title>${s.strategy}: ${
        (v * 100).toFixed(1)
      }%</title></rect>`
    })
  )
  const ticks = buckets.map((bound, i): [number, string] => [
    margin.left + i * groupW + groupW / 2,
    bound < 0 ? "more" : `<${bound}`
  ])
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" role="img">` +
    axes("connect latency (ms)", "share of turns", yMax, ticks) + bars.join("") + legend(strategies) + `</svg>`
}

/**
 * @since 0.1.0
 * @category rendering
 */
export const page = (report: Report): string =>
  `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lazydial service report (seed ${report.settings.seed})</title>
<style>body{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;color:#222}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>
</head><body>
<h1>lazydial reference service</h1>
<p>The same seeded workload, run twice on real TCP agents: once with persisted bindings and lazy validation
(<b style="color:${colors.lazydial}">lazydial</b>), once looking up the latest agent on every turn
(<b style="color:${colors.latest}">latest</b>).</p>
<h2>Latest-agent lookups per turn, over time</h2>
${lookupsChart(report.strategies)}
<h2>Connect latency</h2>
${latencyChart(report.strategies)}
<h2>The numbers</h2>
<pre>${escape(Render.text(report))}</pre>
</body></html>
`
