/**
 * Exporting lazydial's spans over OTLP and its metrics for Prometheus, with
 * `@effect/opentelemetry` (docs/observability.md).
 *
 * `pnpm --filter @lazydial/service exec tsx examples/observability.ts` runs
 * three turns against in-process agents, sends the spans to an OTLP/HTTP
 * collector (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, default
 * http://127.0.0.1:4318/v1/traces) and serves the metrics on
 * http://127.0.0.1:9464/metrics until interrupted (Ctrl-C). The test
 * (test/Observability.test.ts) runs the same `program` and `layerTelemetry`
 * with an in-memory span exporter and the Prometheus exporter's serializer.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { BindingStore, ChatConnector } from "@lazydial/binding"
import type { ChatId } from "@lazydial/core"
import {
  AgentDialer,
  AgentDialError,
  AgentId,
  AgentLookup,
  BuildId,
  CurrentAgent,
  LazyDial,
  WorkspaceId
} from "@lazydial/core"
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import type { MetricReader } from "@opentelemetry/sdk-metrics"
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"

/**
 * The OpenTelemetry SDK as a Layer: Effect's tracer then writes every span
 * (`Effect.withSpan`, `Effect.fn`, and lazydial's own `LazyDial.dial`) to the
 * span processor, and the metric reader reads Effect's metric registry, so
 * lazydial's counters and histograms reach it without any change to them.
 * The SDK is shut down, and its spans flushed, when the Layer's scope closes.
 */
export const layerTelemetry = (
  exporters: () => { readonly spanProcessor: SpanProcessor; readonly metricReader: MetricReader }
) =>
  NodeSdk.layer(() => ({
    resource: { serviceName: "lazydial-example", serviceVersion: "0.1.0" },
    ...exporters()
  }))

/**
 * Production: spans in batches over OTLP/HTTP, metrics on a Prometheus scrape
 * endpoint on 127.0.0.1. The exporters are made when the Layer is built: the
 * Prometheus exporter starts its HTTP server in its constructor.
 */
export const layerTelemetryLive = layerTelemetry(() => ({
  // The exporter's own default is localhost, which Node may resolve to ::1 first.
  spanProcessor: new BatchSpanProcessor(
    new OTLPTraceExporter(
      process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT === undefined &&
        process.env.OTEL_EXPORTER_OTLP_ENDPOINT === undefined
        ? { url: "http://127.0.0.1:4318/v1/traces" }
        : {}
    )
  ),
  metricReader: new PrometheusExporter({ host: "127.0.0.1", port: 9464 })
}))

const workspaceId = WorkspaceId.make("00000000-0000-4000-8000-0000000000f0")
const agents = {
  old: AgentId.make("00000000-0000-4000-8000-00000000000a"),
  new: AgentId.make("00000000-0000-4000-8000-00000000000b")
}
const builds = {
  old: BuildId.make("00000000-0000-4000-8000-0000000000b1"),
  new: BuildId.make("00000000-0000-4000-8000-0000000000b2")
}

/** Moves the workspace to its new build. */
class Rebuild extends Context.Service<Rebuild, { readonly run: Effect.Effect<void> }>()("example/Rebuild") {}

/**
 * Agents that live in this process. The workspace starts on the old build;
 * `rebuild` moves it to the new one, after which the old agent refuses
 * connections at once (a fast failure: lazydial looks up without waiting).
 */
const layerAgents = Layer.unwrap(Effect.gen(function*() {
  const current = yield* Ref.make(new CurrentAgent({ agentId: agents.old, buildId: builds.old }))
  const dialer = AgentDialer.AgentDialer.of({
    dial: (agentId) =>
      Effect.flatMap(Ref.get(current), (now) =>
        now.agentId === agentId
          ? Effect.succeed({ agentId, connectionId: `to-${agentId.slice(-1)}`, exchange: (r) => Effect.succeed(r) })
          : Effect.fail(new AgentDialError({ agentId, reason: "Refused", detail: "rebuilt" })))
  })
  const lookup = AgentLookup.AgentLookup.of({ current: () => Effect.map(Ref.get(current), Option.some) })
  return Layer.mergeAll(
    Layer.succeed(AgentDialer.AgentDialer, dialer),
    Layer.succeed(AgentLookup.AgentLookup, lookup),
    Layer.succeed(Rebuild, { run: Ref.set(current, new CurrentAgent({ agentId: agents.new, buildId: builds.new })) })
  )
}))

/** lazydial's turn path on an in-memory store and the in-process agents. */
export const layerApp = ChatConnector.layer().pipe(
  Layer.provideMerge(LazyDial.layer({ delay: "1 second" })),
  Layer.provideMerge(BindingStore.layerMemory),
  Layer.provideMerge(layerAgents)
)

const turn = (chatId: ChatId) =>
  Effect.scoped(Effect.flatMap(ChatConnector.ChatConnector, (connector) => connector.connect(chatId)))

/**
 * Three turns of one chat: the first binds it lazily (a lookup), the second
 * finds the bound agent at once (no lookup), and the third, after a rebuild,
 * is refused by the old agent, looks up and switches. Each turn is a span.
 */
export const program = Effect.gen(function*() {
  const store = yield* BindingStore.BindingStore
  const chat = yield* store.createChat({ workspaceId })
  yield* turn(chat.chatId).pipe(Effect.withSpan("example.turn", { attributes: { turn: 1 } }))
  yield* turn(chat.chatId).pipe(Effect.withSpan("example.turn", { attributes: { turn: 2 } }))
  yield* Effect.flatMap(Rebuild, (rebuild) => rebuild.run)
  return yield* turn(chat.chatId).pipe(Effect.withSpan("example.turn", { attributes: { turn: 3 } }))
})

// Run as a script: runMain interrupts the program on Ctrl-C, so the Layer's
// scope closes, the batched spans are flushed and the exporters shut down.
if (process.argv[1]?.endsWith("observability.ts")) {
  Effect.gen(function*() {
    const connection = yield* program
    yield* Effect.log(`the third turn reached agent ${connection.agentId}; metrics on http://127.0.0.1:9464/metrics`)
    return yield* Effect.never
  }).pipe(Effect.provide(layerApp), Effect.provide(layerTelemetryLive), NodeRuntime.runMain)
}
