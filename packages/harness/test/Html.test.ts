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
import { outcomeNames, Report, type StrategyReport } from "../src/Report.js"

const fixture = Schema.decodeUnknownSync(Report)(
  JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "fixtures/report.json"), "utf8"))
)

const withStrategies = (f: (s: StrategyReport) => StrategyReport) =>
  new Report({ settings: fixture.settings, strategies: fixture.strategies.map(f) })

/** The markup of one chart. */
const chartOf = (html: string, id: string) =>
  html.slice(html.indexOf(`id="${id}"`), html.indexOf("</svg>", html.indexOf(`id="${id}"`)))

/** The y tick labels of one chart, in order. */
const yTicks = (html: string, id: string) => {
  const chart = chartOf(html, id)
  const axis = chart.slice(chart.indexOf(`class="axis y-axis"`), chart.indexOf(`class="axis x-axis"`))
  return Array.from(axis.matchAll(/class="tick[^"]*"[^>]*>([^<]*)</g), (m) => m[1])
}

/** The x tick labels and their positions, of one chart. */
const xTicks = (html: string, id: string) => {
  const chart = chartOf(html, id)
  const axis = chart.slice(chart.indexOf(`class="axis x-axis"`))
  return Array.from(axis.matchAll(/class="tick[^"]*" x="([^"]+)"[^>]*>([^<]*)</g), (m) => `${m[2]}@${m[1]}`)
}

/** The dots of one strip, as their outcome. */
const dots = (html: string, strategy: string) =>
  Array.from(chartOf(html, `strip-${strategy}`).matchAll(/<circle class="turn" data-outcome="([^"]+)"/g), (m) => m[1])

const count = <A>(items: ReadonlyArray<A>) => {
  const counts = new Map<A, number>()
  for (const item of items) counts.set(item, (counts.get(item) ?? 0) + 1)
  return counts
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
    const p99 = (s: StrategyReport, value: number) => ({ ...s, latency: { ...s.latency, p99: value } })
    const higher = withStrategies((s) => s.strategy === "lazydial" ? p99(s, 10_000) : s)
    expect(Html.page(higher)).toContain("Why is lazydial's p99 higher?")
    const lower = withStrategies((s) => s.strategy === "lazydial" ? p99(s, 1) : s)
    expect(Html.page(lower)).not.toContain("Why is lazydial's p99 higher?")
  })

  it("gives every chart role=img and a title and description it is labelled by", () => {
    const svgs = Array.from(Html.page(fixture).matchAll(/<svg [^>]*class="chart"[^>]*>/g), (m) => m[0])
    // lookups, one strip per strategy, latency
    expect(svgs.length).toBe(2 + fixture.strategies.length)
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

  describe("the strips of turns", () => {
    it("draws one dot per turn of each strategy, in the turn's outcome", () => {
      const html = Html.page(fixture)
      for (const s of fixture.strategies) {
        expect(s.strip.turns.length).toBe(s.turns)
        const drawn = dots(html, s.strategy)
        expect(drawn.length).toBe(s.strip.turns.length)
        expect(count(drawn)).toEqual(count(s.strip.turns.map((t) => t.outcome)))
      }
      // the fixture has the paths a reader must see: waits, notices, stopped workspaces
      expect(dots(html, "lazydial")).toContain("switched_by_notice")
      expect(chartOf(html, "strip-lazydial")).toContain(`fill="none"`)
    })

    it("marks every rebuild, by what its old agent did", () => {
      const html = Html.page(fixture)
      for (const s of fixture.strategies) {
        expect(s.strip.rebuilds.length).toBeGreaterThan(0)
        const marks = Array.from(
          chartOf(html, `strip-${s.strategy}`).matchAll(/<line class="rebuild" data-mode="([^"]+)"/g),
          (m) => m[1]
        )
        expect(marks).toEqual(s.strip.rebuilds.map((r) => r.mode))
      }
    })

    it("draws both strategies on the same time and latency axes", () => {
      // one latest turn later and slower than any other: both strips' axes must reach it
      const html = Html.page(withStrategies((s) =>
        s.strategy === "latest"
          ? {
            ...s,
            strip: {
              ...s.strip,
              turns: [...s.strip.turns, {
                atMs: 2 * s.durationMs,
                connectMs: 50_000,
                outcome: "timeout",
                stopped: false
              }]
            }
          }
          : s
      ))
      expect(yTicks(html, "strip-lazydial")).toContain("100 s")
      expect(yTicks(html, "strip-lazydial").length).toBeGreaterThanOrEqual(3)
      expect(yTicks(html, "strip-lazydial")).toEqual(yTicks(html, "strip-latest"))
      expect(xTicks(html, "strip-lazydial").length).toBeGreaterThanOrEqual(3)
      expect(xTicks(html, "strip-lazydial")).toEqual(xTicks(html, "strip-latest"))
    })

    it("draws the validation delay as a line, at the height of a turn that took exactly the delay", () => {
      const delayMs = fixture.settings.validationDelayMs
      const report = withStrategies((s) => ({
        ...s,
        strip: {
          ...s.strip,
          turns: [
            { atMs: 1000, connectMs: delayMs, outcome: "switched", stopped: false },
            { atMs: 1000, connectMs: delayMs / 10, outcome: "fast", stopped: false }
          ]
        }
      }))
      const chart = chartOf(Html.page(report), "strip-lazydial")
      const line = /<line class="delay" x1="[^"]+" y1="([^"]+)"/.exec(chart)![1]
      const cy = (outcome: string) =>
        new RegExp(`<circle class="turn" data-outcome="${outcome}" cx="[^"]+" cy="([^"]+)"`).exec(chart)![1]
      expect(cy("switched")).toBe(line)
      // a faster turn is drawn below it (a larger y)
      expect(Number(cy("fast"))).toBeGreaterThan(Number(line))
    })

    it("has a legend of the outcomes drawn, and of the rebuild marks and the delay line", () => {
      const html = Html.page(fixture)
      const legend = html.slice(
        html.indexOf(`class="strip-legend"`),
        html.indexOf("</ul>", html.indexOf("strip-legend"))
      )
      const drawn = new Set(fixture.strategies.flatMap((s) => s.strip.turns.map((t) => t.outcome)))
      for (const name of outcomeNames) {
        if (drawn.has(name)) expect(legend).toContain(`data-legend="outcome-${name}"`)
        else expect(legend).not.toContain(`data-legend="outcome-${name}"`)
      }
      for (const mode of new Set(fixture.strategies.flatMap((s) => s.strip.rebuilds.map((r) => r.mode)))) {
        expect(legend).toContain(`data-legend="rebuild-${mode}"`)
      }
      expect(legend).toContain(`data-legend="stopped"`)
      expect(legend).toContain(`validation delay (${fixture.settings.validationDelayMs} ms)`)
    })

    it("says the strip is thinned when it is, and that the figures count every turn", () => {
      expect(Html.page(fixture)).not.toContain("The figures count every turn")
      const thinned = withStrategies((s) => ({
        ...s,
        turns: s.turns * 100,
        strip: { ...s.strip, turnsEvery: 100, rebuildsEvery: 1 }
      }))
      const html = Html.page(thinned)
      expect(html).toContain("draws one turn in 100 and one rebuild in 1")
      expect(html).toContain("The figures count every turn")
      expect(chartOf(html, "strip-lazydial")).toContain("one turn in 100 of")
    })

    it("gives the turns after a rebuild as numbers: a table of their p50 and p99", () => {
      const html = Html.page(fixture)
      const table = html.slice(
        html.indexOf(`class="numbers after-rebuild"`),
        html.indexOf("</table>", html.indexOf("after-rebuild"))
      )
      expect(table).toContain(Render.afterRebuildLabel(fixture))
      for (const s of fixture.strategies) {
        expect(table).toContain(`<td>${s.afterRebuild.p50.toFixed(1)}</td>`)
        expect(table).toContain(`<td>${s.afterRebuild.p99.toFixed(1)}</td>`)
      }
    })
  })
})

describe("Render.text", () => {
  const line = (text: string, label: string) => text.split("\n").filter((l) => l.trimStart().startsWith(label))

  it("has a line for every way to connect, 0 included, and failures only when they happened", () => {
    const quiet = withStrategies((s) => ({
      ...s,
      outcomes: { ...s.outcomes, switched_by_notice: 0, database_unavailable: 0 }
    }))
    const text = Render.text(quiet)
    expect(line(text, "switched_by_notice ")).toEqual([expect.stringMatching(/^ {2}switched_by_notice +0 +0 +0$/)])
    expect(line(text, "database_unavailable")).toEqual([])
  })

  it("gives stopped-workspace turns their p50 and p99, and the turns after a rebuild their p99, per strategy", () => {
    const text = Render.text(fixture)
    const lines = text.split("\n")
    const at = (label: string) => lines.findIndex((l) => l.startsWith(label))
    const values = (l: string) => l.trim().split(/ {2,}/).slice(1)
    const stopped = at("turns of stopped workspaces")
    expect(values(lines[stopped + 1]!)).toEqual(fixture.strategies.map((s) => s.stoppedConnectP50Ms.toFixed(1)))
    expect(values(lines[stopped + 2]!)).toEqual(fixture.strategies.map((s) => s.stoppedConnectP99Ms.toFixed(1)))
    const after = at("turns within 1 s after a rebuild")
    expect(after).toBeGreaterThan(0)
    expect(values(lines[after]!)).toEqual(fixture.strategies.map((s) => String(s.afterRebuild.turns)))
    expect(lines[after + 2]).toMatch(/^ {2}connect p99 \(ms\)/)
    expect(values(lines[after + 2]!)).toEqual(fixture.strategies.map((s) => s.afterRebuild.p99.toFixed(1)))
  })
})

describe("reports that conclude", () => {
  const [lazy, noReuse, latest] = fixture.strategies

  it("the text report opens with what the run shows, in words with the figures", () => {
    const [dials, latency, lookups, rank, blank] = Render.text(fixture).split("\n")
    // the headline: dials per steady-state turn, and the steady-state p50 with and without reuse
    expect(dials).toBe(
      `With shared connections lazydial dialed 0.000 times per steady-state turn (0 dials in ${lazy!.steadyTurns} ` +
        `turns), against 1.000 without reuse and 1.000 for latest; its steady-state connect p50 was ` +
        `${lazy!.steadyConnect.p50.toFixed(1)} ms against ${noReuse!.steadyConnect.p50.toFixed(1)} ms without ` +
        `reuse, at a 50 ms handshake.`
    )
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`
    expect(latency).toContain(
      `Connect latency over every turn: p50 ${lazy!.latency.p50.toFixed(1)} ms (lazydial) against ${
        latest!.latency.p50.toFixed(1)
      } ms (latest), ${ratio(lazy!.latency.p50, latest!.latency.p50)}; p99 ${lazy!.latency.p99.toFixed(1)} ms ` +
        `against ${latest!.latency.p99.toFixed(1)} ms, ${ratio(lazy!.latency.p99, latest!.latency.p99)} (without ` +
        `reuse: p50 ${noReuse!.latency.p50.toFixed(1)} ms, p99 ${noReuse!.latency.p99.toFixed(1)} ms).`
    )
    // 16 dials for 330 connected turns: more than 1 in 100, so the p99 is a dial's
    expect(latency).toContain(
      `lazydial dialed ${lazy!.dials} times for 330 connected turns (${(lazy!.dials / 3.3).toFixed(1)}%: `
    )
    expect(latency).toContain("more than the 1% a p99 looks at, so its p99 is a dial's time.")
    expect(lookups).toContain(
      `On steady-state turns lazydial looked the agent up 0.000 times per turn (0 lookups in ${lazy!.steadyTurns} ` +
        `turns), latest 1.000 (${latest!.steadyLookups} in ${latest!.steadyTurns})`
    )
    expect(lookups).toContain("No turn reached a wrong agent (lazydial 0, lazydial_no_reuse 0, latest 0)")
    expect(lookups).toContain(
      `the ${lazy!.stoppedTurns}, ${noReuse!.stoppedTurns}, ${latest!.stoppedTurns} turns of stopped workspaces failed`
    )
    // 330 connected turns: the nearest-rank p99 is the 327th of them, the 4th slowest
    expect(rank).toContain("A p99 of 330 connected turns is their 4th slowest: one run decides nothing about it.")
    expect(rank).toContain("Judge it by the median of 6 fresh runs that alternate which strategy runs first")
    expect(blank).toBe("")
  })

  it("says nothing of a dial's time when at most 1 in 100 connected turns dialed", () => {
    const few = withStrategies((s) => s.strategy === "lazydial" ? { ...s, dials: 3 } : s)
    expect(Render.conclusions(few)[1]).toContain("lazydial dialed 3 times for 330 connected turns (0.9%: ")
    expect(Render.conclusions(few)[1]).not.toContain("a dial's time")
  })

  it("a turn that reached a wrong agent is called a bug", () => {
    const wrong = withStrategies((s) => s.strategy === "latest" ? { ...s, wrongAgentTurns: 2 } : s)
    expect(Render.conclusions(wrong)[2]).toContain(
      "2 turns reached a wrong agent: a bug (lazydial 0, lazydial_no_reuse 0, latest 2)"
    )
  })

  it("the p99's rank: the kth slowest of n turns", () => {
    expect([Render.p99Rank(400), Render.p99Rank(330), Render.p99Rank(100), Render.p99Rank(99), Render.p99Rank(0)])
      .toEqual([5, 4, 2, 1, 0])
  })

  it("the HTML page opens with the same sentences, and its cards count wrong-agent and stopped-workspace turns", () => {
    const html = Html.page(fixture)
    const section = html.slice(html.indexOf(`<section class="conclusions"`), html.indexOf("</section>"))
    for (const line of Render.conclusions(fixture)) expect(section).toContain(line)
    expect(html.indexOf(`class="conclusions"`)).toBeLessThan(html.indexOf(`class="figures"`))
    expect(html).toContain(`data-figure="wrong-agent"`)
    expect(html).toContain(`data-figure="stopped"`)
    // the cards of issue 20: dials per steady-state turn and the steady-state p50, one value per strategy
    const card = (key: string) =>
      Array.from(
        html.slice(html.indexOf(`data-figure="${key}"`), html.indexOf("</div></div>", html.indexOf(key)))
          .matchAll(/data-strategy="([^"]+)"[^>]*>([^<]*)</g),
        (m) => `${m[1]} ${m[2]}`
      )
    expect(card("steady-dials-per-turn")).toEqual(
      fixture.strategies.map((s) => `${s.strategy} ${s.steadyDialsPerTurn.toFixed(2)}`)
    )
    expect(card("steady-p50")).toEqual(
      fixture.strategies.map((s) => `${s.strategy} ${s.steadyConnect.p50.toFixed(1)} ms`)
    )
    expect(html).not.toContain("right agent")
  })

  it("the text names its rows for what they count: wrong-agent turns, and turns that got no connection", () => {
    const text = Render.text(fixture)
    expect(text).toMatch(/^ {2}reached a wrong agent +0 +0 +0$/m)
    expect(text).toMatch(
      new RegExp(
        `^ {2}of which got no connection +${lazy!.connectOrFail.failed} +${noReuse!.connectOrFail.failed} +${
          latest!.connectOrFail.failed
        }$`,
        "m"
      )
    )
    expect(text).not.toMatch(/right agent|of which failed/)
  })
})
