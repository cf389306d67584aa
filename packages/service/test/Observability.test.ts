/**
 * The observability example (examples/observability.ts) with in-memory
 * exporters: the spans and metrics it exports are the ones
 * docs/observability.md lists, read from that file's tables.
 */
import { it } from "@effect/vitest"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect } from "vitest"
import { layerApp, layerTelemetry, program } from "../examples/observability.js"

/** The rows of the Markdown table under `heading`, as arrays of cells. */
const table = (markdown: string, heading: string): ReadonlyArray<ReadonlyArray<string>> => {
  const section = markdown.slice(markdown.indexOf(`\n${heading}\n`) + heading.length + 2)
  const lines = section.split("\n")
  const start = lines.findIndex((line) => line.startsWith("|"))
  const rows: Array<ReadonlyArray<string>> = []
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break
    rows.push(line.slice(1, -1).split("|").map((cell) => cell.trim()))
  }
  return rows
}
const names = (cell: string) => Array.from(cell.matchAll(/`([^`]+)`/g), (m) => m[1]!)
const docs = fs.readFileSync(path.join(import.meta.dirname, "../../../docs/observability.md"), "utf8")

const spanRows = table(docs, "### Spans").filter((row) => row[5] === "yes").map((row) => ({
  name: names(row[0]!)[0]!,
  kind: row[1]!,
  attributes: names(row[2]!),
  parents: names(row[4]!)
}))
const metricRows = table(docs, "### Metrics").filter((row) => row[4] === "yes").map((row) => ({
  name: names(row[0]!)[0]!,
  type: row[1]!,
  labels: names(row[2]!)
}))
const documentedAttributes = new Set(table(docs, "### Spans").flatMap((row) => [...names(row[2]!), ...names(row[3]!)]))
const documentedMetrics = new Set(table(docs, "### Metrics").map((row) => names(row[0]!)[0]!))

const kinds = ["internal", "server", "client", "producer", "consumer"] // OpenTelemetry's SpanKind, by value

/** Runs the example with in-memory exporters: the finished spans, and the metrics as a Prometheus scrape. */
const runExample = Effect.gen(function*() {
  const spans = new InMemorySpanExporter()
  const metrics = new PrometheusExporter({ preventServerStart: true })
  return yield* Effect.gen(function*() {
    yield* program
    const { resourceMetrics } = yield* Effect.promise(() => metrics.collect())
    // Read before the Layer closes: shutting the SDK down empties the in-memory exporter.
    return { spans: spans.getFinishedSpans(), scrape: new PrometheusSerializer().serialize(resourceMetrics) }
  }).pipe(
    Effect.provide(layerApp),
    Effect.provide(layerTelemetry(() => ({ spanProcessor: new SimpleSpanProcessor(spans), metricReader: metrics })))
  )
})

describe("the observability example, exported in memory", () => {
  it("reads both tables of docs/observability.md", () => {
    expect(spanRows.map((row) => row.name)).toContain("LazyDial.dial")
    expect(metricRows.map((row) => row.name)).toContain("lazydial_dial_outcomes_total")
  })

  it.effect("exports every span the docs list, with its kind, attributes and parent", () =>
    Effect.gen(function*() {
      const { spans } = yield* runExample
      const byId = new Map(spans.map((span) => [span.spanContext().spanId, span]))
      const parentName = (span: ReadableSpan) => {
        const id = span.parentSpanContext?.spanId
        return id === undefined ? undefined : byId.get(id)?.name
      }
      for (const row of spanRows) {
        const found = spans.filter((span) => span.name === row.name)
        expect(found.length, row.name).toBeGreaterThan(0)
        for (const span of found) {
          expect(kinds[span.kind], row.name).toBe(row.kind)
          expect(Object.keys(span.attributes), row.name).toEqual(expect.arrayContaining(row.attributes))
          if (row.parents.length > 0) expect(row.parents, row.name).toContain(parentName(span))
        }
      }
      // A turn of the example: lazy bind, hot, then switched after the rebuild.
      const outcomes = spans.filter((span) => span.name === "ChatConnector.connect").map((s) =>
        s.attributes["lazydial.outcome"]
      )
      expect(outcomes).toEqual(["lazy_bind", "fast", "switched"])
      // Nothing undocumented: every lazydial attribute the example produced is in the table.
      const produced = new Set(spans.flatMap((span) => Object.keys(span.attributes)))
      for (const name of produced) if (name.startsWith("lazydial.")) expect(documentedAttributes, name).toContain(name)
    }))

  it.effect("exports every metric the docs list, in Prometheus text with its type and labels", () =>
    Effect.gen(function*() {
      const { scrape } = yield* runExample
      for (const row of metricRows) {
        expect(scrape, row.name).toContain(`# TYPE ${row.name} ${row.type}\n`)
        const series = scrape.split("\n").filter((line) =>
          line.startsWith(`${row.name}{`) || line.startsWith(`${row.name}_`)
        )
        expect(series.length, row.name).toBeGreaterThan(0)
        for (const label of row.labels) {
          expect(series.some((line) => line.includes(`${label}="`)), `${row.name} ${label}`).toBe(true)
        }
      }
      expect(scrape).toContain(`lazydial_dial_outcomes_total{outcome="switched"`)
      const produced = new Set(Array.from(scrape.matchAll(/^# TYPE (lazydial_\w+) /gm), (m) => m[1]!))
      for (const name of produced) expect(documentedMetrics, name).toContain(name)
    }))
})
