/**
 * The HTML report as text: what it must say, checked without a browser (the
 * browser checks are in Report.browser.ci.ts). Built from a recorded report.
 */
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import * as Html from "../src/Html.js"
import * as Render from "../src/Render.js"
import { Report, type StrategyReport } from "../src/Report.js"

const fixture = Schema.decodeUnknownSync(Report)(
  JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "fixtures/report.json"), "utf8"))
)

const withStrategies = (f: (s: StrategyReport) => StrategyReport) =>
  new Report({ settings: fixture.settings, strategies: fixture.strategies.map(f) })

/** The y tick labels of one chart, in order. */
const yTicks = (html: string, id: string) => {
  const chart = html.slice(html.indexOf(`id="${id}"`), html.indexOf("</svg>", html.indexOf(`id="${id}"`)))
  const axis = chart.slice(chart.indexOf(`class="axis y-axis"`), chart.indexOf(`class="axis x-axis"`))
  return Array.from(axis.matchAll(/class="tick[^"]*"[^>]*>([^<]*)</g), (m) => m[1])
}

describe("Html.page", () => {
  it("leaves out a nearly empty last time slice, so no curve jumps to 1.0 at the end", () => {
    const endMs = 60_000
    const report = withStrategies((s) => ({
      ...s,
      timeline: [...s.timeline, { atMs: endMs, turns: 1, lookups: 1, rebuilds: 0 }]
    }))
    const html = Html.page(report)
    const lookups = html.slice(
      html.indexOf(`id="lookups-chart"`),
      html.indexOf("</svg>", html.indexOf(`id="lookups-chart"`))
    )
    expect(lookups).toContain("at 0.5 s:")
    expect(lookups).not.toContain(`at ${(endMs / 1000).toFixed(1)} s:`)
  })

  it("puts round ticks on both charts, in percent on the latency chart", () => {
    const html = Html.page(fixture)
    expect(yTicks(html, "lookups-chart")).toEqual(["0", "0.25", "0.5", "0.75", "1"])
    const latency = yTicks(html, "latency-chart")
    expect(latency.length).toBeGreaterThanOrEqual(3)
    for (const tick of latency) expect(tick).toMatch(/^(0|[1-9]\d*)%$/)
  })

  it("explains a higher lazydial p99, and says nothing when it is not higher", () => {
    expect(Html.page(fixture)).toContain("Why is lazydial's p99 higher?")
    const lower = withStrategies((s) => s.strategy === "lazydial" ? { ...s, latency: { ...s.latency, p99: 1 } } : s)
    expect(Html.page(lower)).not.toContain("Why is lazydial's p99 higher?")
  })

  it("gives every chart role=img and a title and description it is labelled by", () => {
    const svgs = Array.from(Html.page(fixture).matchAll(/<svg [^>]*>/g), (m) => m[0])
    expect(svgs.length).toBe(2)
    for (const svg of svgs) {
      expect(svg).toContain(`role="img"`)
      const id = /id="([^"]+)"/.exec(svg)![1]
      expect(svg).toContain(`aria-labelledby="${id}-title ${id}-desc"`)
    }
  })

  it("shows every number of the text report in its table", () => {
    const html = Html.page(fixture)
    for (const row of Render.rows(fixture)) {
      expect(html).toContain(row.label)
      for (const value of row.values) expect(html).toContain(`<td>${value}</td>`)
    }
  })
})
