/**
 * The HTML report in a real browser: Debian's Chromium, headless, driven by
 * playwright-core. Run by scripts/test-browser.sh (not by `pnpm test`, which
 * does not install Chromium). The page is built from a recorded report
 * (test/fixtures/report.json, from `pnpm -s start -- --json`), so the figures
 * it must show are known.
 */
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { Browser, Page } from "playwright-core"
import { chromium } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Html from "../src/Html.js"
import { Report, strategies } from "../src/Report.js"

const fixture = Schema.decodeUnknownSync(Report)(
  JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "fixtures/report.json"), "utf8"))
)
const screenshots = path.join(os.tmpdir(), "lazydial-report-screenshots")
const file = path.join(screenshots, "report.html")

let browser: Browser

beforeAll(async () => {
  fs.mkdirSync(screenshots, { recursive: true })
  fs.writeFileSync(file, Html.page(fixture))
  browser = await chromium.launch({
    executablePath: process.env.LAZYDIAL_CHROMIUM ?? "/usr/bin/chromium",
    // Root in a container has no user namespace for Chromium's sandbox; the page is our own file.
    args: ["--no-sandbox"]
  })
})

afterAll(async () => {
  await browser?.close()
})

describe.each([1280, 390])("the report at %i px", (width) => {
  let page: Page
  const problems: Array<string> = []

  beforeAll(async () => {
    page = await browser.newPage({ viewport: { width, height: 900 } })
    // Everything is in the page at load: a missing element fails at once, not after 30 s.
    page.setDefaultTimeout(2_000)
    page.on("console", (message) => {
      if (message.type() === "error" || message.type() === "warning") problems.push(message.text())
    })
    page.on("pageerror", (error) => problems.push(error.message))
    await page.goto(`file://${file}`)
    await page.screenshot({ path: path.join(screenshots, `report-${width}.png`), fullPage: true })
  })

  afterAll(async () => {
    await page?.close()
  })

  it("logs no console errors", () => {
    expect(problems).toEqual([])
  })

  it("has nothing wider than the page: no sideways scroll", async () => {
    // Runs in the page; a string, because the service's tsconfig has no DOM types.
    const overflow = await page.evaluate<{ scrollWidth: number; limit: number; wide: Array<string> }>(`(() => {
      const limit = document.documentElement.clientWidth
      const all = Array.from(document.body.querySelectorAll("*"))
      const wide = all.flatMap((element) => {
        const box = element.getBoundingClientRect()
        return box.width > 0 && (box.right > limit + 0.5 || box.left < -0.5)
          ? [element.tagName.toLowerCase() + "." + (element.getAttribute("class") ?? "") + " " + box.left + ".." + box.right]
          : []
      })
      // An element that scrolls inside itself (the old <pre> of numbers) is sideways scroll too.
      // HTML elements only: SVG text reports a layout width smaller than its glyphs.
      const scrolling = all.flatMap((element) =>
        element instanceof HTMLElement && element.clientWidth > 0 && element.scrollWidth > element.clientWidth + 1
          ? [element.tagName.toLowerCase() + " scrolls " + element.scrollWidth + " in " + element.clientWidth]
          : []
      )
      return { scrollWidth: document.documentElement.scrollWidth, limit, wide: [...wide, ...scrolling] }
    })()`)
    expect(overflow.wide).toEqual([])
    expect(overflow.scrollWidth).toBeLessThanOrEqual(overflow.limit)
  })

  it("shows the headline figures: lookups and dials per steady-state turn, and p99, of every strategy", async () => {
    const figures = page.locator(".figures")
    await expect.poll(() => figures.isVisible()).toBe(true)
    const values = (key: string) => page.locator(`[data-figure=${key}] .values`).innerText()
    const each = (value: (s: typeof fixture.strategies[number]) => string) => fixture.strategies.map(value).join(" vs ")
    expect(await values("lookups-per-turn")).toBe(each((s) => s.lookupsPerTurn.toFixed(2)))
    expect(await values("steady-dials-per-turn")).toBe(each((s) => s.steadyDialsPerTurn.toFixed(2)))
    expect(await values("p99")).toBe(each((s) => `${s.latency.p99.toFixed(0)} ms`))
    // the note on a higher lazydial p99 shows when it is higher, and only then
    const [lazy, , latest] = fixture.strategies
    expect(await page.locator("#p99-note").isVisible()).toBe(lazy!.latency.p99 > latest!.latency.p99)
  })

  it.each(["lookups-chart", "latency-chart"])("draws %s with an accessible name, axes, legend and data", async (id) => {
    const chart = page.locator(`#${id}`)
    expect(await chart.getAttribute("role")).toBe("img")
    const refs = (await chart.getAttribute("aria-labelledby") ?? "").split(" ")
    expect(refs).toEqual([`${id}-title`, `${id}-desc`])
    const name = (await Promise.all(refs.map((ref) => page.locator(`#${ref}`).textContent()))).join(" ")
    expect(name.length).toBeGreaterThan(20)
    const box = await chart.boundingBox()
    expect(box!.width).toBeGreaterThan(300)
    expect(box!.width).toBeLessThanOrEqual(width)
    // Axes: both lines drawn, and at least three visible y tick labels.
    for (const axis of [".x-axis", ".y-axis"]) {
      const line = await chart.locator(`${axis} line`).first().boundingBox()
      expect(line).not.toBeNull()
    }
    expect(await chart.locator(".y-axis .tick").count()).toBeGreaterThanOrEqual(3)
    // The legend names every strategy and sits above the plot, not on a line.
    const legend = await chart.locator(".legend").boundingBox()
    const plotTop = await chart.locator(".y-axis line").first().boundingBox()
    expect(await chart.locator(".legend").textContent()).toMatch(/lazydial.*lazydial_no_reuse.*latest/)
    expect(legend!.y + legend!.height).toBeLessThanOrEqual(plotTop!.y + 0.5)
    // Each strategy's series has drawn marks.
    for (const strategy of strategies) {
      const series = await chart.locator(`.series[data-strategy=${strategy}]`).boundingBox()
      expect(series!.width * series!.height).toBeGreaterThan(0)
    }
  })

  it.each(strategies)(
    "draws the %s strip: every turn a visible dot, the rebuilds and the delay",
    async (strategy) => {
      const report = fixture.strategies.find((s) => s.strategy === strategy)!
      const id = `strip-${strategy}`
      const chart = page.locator(`#${id}`)
      expect(await chart.getAttribute("role")).toBe("img")
      expect(await chart.getAttribute("aria-labelledby")).toBe(`${id}-title ${id}-desc`)
      const box = await chart.boundingBox()
      expect(box!.width).toBeGreaterThan(300)
      expect(box!.width).toBeLessThanOrEqual(width)
      // Runs in the page (a string: no DOM types here). A mark counts when the browser laid it out with a size,
      // inside the chart: a dot drawn off the plot or with r=0 does not.
      const drawn = await page.evaluate<{ dots: number; rebuilds: number; delay: number }>(`(() => {
        const id = ${JSON.stringify(id)}
        const chart = document.getElementById(id).getBoundingClientRect()
        const inside = (selector, sized) => Array.from(document.querySelectorAll("#" + id + " " + selector))
          .filter((element) => {
            const b = element.getBoundingClientRect()
            return sized(b) && b.left >= chart.left - 0.5 && b.right <= chart.right + 0.5 &&
              b.top >= chart.top - 0.5 && b.bottom <= chart.bottom + 0.5
          }).length
        return {
          dots: inside("circle.turn", (b) => b.width > 0 && b.height > 0),
          rebuilds: inside("line.rebuild", (b) => b.height > 0),
          delay: inside("line.delay", (b) => b.width > 0)
        }
      })()`)
      expect(drawn).toEqual({ dots: report.strip.turns.length, rebuilds: report.strip.rebuilds.length, delay: 1 })
      expect(drawn.dots).toBeGreaterThan(0)
      // the legend and the text alternative are shown
      expect(await page.locator(".strip-legend").isVisible()).toBe(true)
      expect(await page.locator(".strip-legend li").count()).toBeGreaterThanOrEqual(4)
      expect(await page.locator("table.after-rebuild").isVisible()).toBe(true)
    }
  )

  it("labels the latency axis in round percentages, the unit of its tooltips", async () => {
    const ticks = await page.locator("#latency-chart .y-axis .tick").allTextContents()
    for (const tick of ticks) expect(tick).toMatch(/^\d+%$/)
    const tooltip = await page.locator("#latency-chart rect title").first().textContent()
    expect(tooltip).toMatch(/\d+(\.\d)?% of turns$/)
  })
})
