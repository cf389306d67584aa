/**
 * Spans and metrics come from Effect's own `withSpan` and `Metric` effects, so
 * what a caller sets on its fiber applies to them: its parent span (and that
 * span's `DisablePropagation`), a tracer it turned off, and its own metric
 * attributes. The hand-made span and `unsafeUpdate` of Effect 3 ignored the
 * last two.
 */
import { assert, describe, it } from "@effect/vitest"
import { dialWithLazyValidation } from "@lazydial/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { A, W } from "./fixtures.js"

const recording = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

const fastCall = dialWithLazyValidation({
  agentId: A,
  workspaceId: W,
  dial: (agentId) => Effect.succeed(agentId),
  lookup: () => Effect.succeed(Option.some(A)),
  delay: 100
}).pipe(Effect.scoped)

const named = (spans: ReadonlyArray<Tracer.NativeSpan>, name: string) => spans.filter((span) => span.name === name)

describe("spans", () => {
  it.effect("one client span per call, a child of the caller's, with the ids and the outcome", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recording()
      yield* fastCall.pipe(Effect.withSpan("turn"), Effect.withTracer(tracer))
      const [dial] = named(spans, "LazyDial.dial")
      assert.isDefined(dial)
      assert.strictEqual(dial!.kind, "client")
      assert.strictEqual(dial!.attributes.get("lazydial.outcome"), "fast")
      assert.strictEqual(dial!.attributes.get("lazydial.agent_id"), A)
      assert.strictEqual(dial!.attributes.get("lazydial.workspace_id"), W)
      assert.strictEqual(Option.getOrUndefined(dial!.parent)?.spanId, named(spans, "turn")[0]!.spanId)
      assert.strictEqual(dial!.status._tag, "Ended")
    }))

  it.effect("a parent span with DisablePropagation is not our parent: its own parent is", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recording()
      yield* fastCall.pipe(
        Effect.withSpan("hidden", { annotations: Context.make(Tracer.DisablePropagation, true) }),
        Effect.withSpan("turn"),
        Effect.withTracer(tracer)
      )
      const [dial] = named(spans, "LazyDial.dial")
      assert.strictEqual(Option.getOrUndefined(dial!.parent)?.spanId, named(spans, "turn")[0]!.spanId)
    }))

  it.effect("a caller that turned tracing off gets no span", () =>
    Effect.gen(function*() {
      const { spans, tracer } = recording()
      yield* fastCall.pipe(Effect.withTracerEnabled(false), Effect.withTracer(tracer))
      assert.strictEqual(named(spans, "LazyDial.dial").length, 0)
    }))
})

describe("metrics", () => {
  /** The count of the counter series named `id` whose attributes are exactly `attributes`. */
  const count = (id: string, attributes: Readonly<Record<string, string>>) =>
    Effect.map(Metric.snapshot, (snapshots) => {
      const wanted = JSON.stringify(Object.entries(attributes).sort())
      const series = snapshots.find((snapshot) =>
        snapshot.id === id && JSON.stringify(Object.entries(snapshot.attributes ?? {}).sort()) === wanted
      )
      return series?.type === "Counter" ? Number(series.state.count) : 0
    })

  it.effect("the outcome counter carries the caller's own metric attributes", () =>
    Effect.gen(function*() {
      const before = yield* count("lazydial_dial_outcomes_total", { outcome: "fast", tenant: "t1" })
      yield* fastCall.pipe(Effect.provideService(Metric.CurrentMetricAttributes, { tenant: "t1" }))
      assert.strictEqual(yield* count("lazydial_dial_outcomes_total", { outcome: "fast", tenant: "t1" }), before + 1)
    }))

  it.effect("a lookup is counted, and so is the outcome it led to", () =>
    Effect.gen(function*() {
      const lookups = count("lazydial_lookups_total", {})
      const retried = count("lazydial_dial_outcomes_total", { outcome: "retried" })
      const [lookupsBefore, retriedBefore] = [yield* lookups, yield* retried]
      let dials = 0
      yield* dialWithLazyValidation({
        agentId: A,
        workspaceId: W,
        dial: (agentId) => dials++ === 0 ? Effect.fail("refused") : Effect.succeed(agentId),
        lookup: () => Effect.succeed(Option.some(A)),
        delay: 100
      }).pipe(Effect.scoped)
      assert.strictEqual(yield* lookups, lookupsBefore + 1)
      assert.strictEqual(yield* retried, retriedBefore + 1)
    }))
})
