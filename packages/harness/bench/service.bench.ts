/**
 * The service under load: `pnpm --filter @lazydial/harness bench`.
 *
 * - turns per second at several concurrencies (no think time, no rebuilds);
 * - p99 connect latency in steady state, and while 10% of workspaces rebuild at once;
 * - latest-agent lookups per turn, for both strategies;
 * - process memory with 10,000 chats in the store.
 *
 * Add `--cpu-prof` to node's flags to see where the time goes.
 */
import { Chats } from "@lazydial/service/Chats"
import * as Service from "@lazydial/service/Service"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Workload from "../src/Workload.js"

const log = (line: string) => Effect.sync(() => process.stdout.write(`${line}\n`))

const run = (plan: Workload.Plan, strategy: Workload.Strategy) =>
  Workload.runStrategy(plan, strategy, Workload.makeProgress())

const throughput = Effect.gen(function*() {
  yield* log("## turns per second (no think time, no rebuilds, 8 workspaces, 1 stopped)")
  yield* log("| concurrency | strategy | turns | turns/s | p50 ms | p99 ms | lookups/turn |")
  yield* log("|---|---|---|---|---|---|---|")
  for (const concurrency of [1, 8, 32, 64]) {
    const plan = Workload.makePlan({
      ...Workload.defaults,
      // localhost dials, as the figures of docs/service.md were measured: the handshake latency is the report's
      dialLatencyMs: 0,
      chats: 64,
      turns: 8,
      workspaces: 8,
      concurrency,
      rebuildRate: 0,
      thinkMs: 0
    })
    for (const strategy of ["lazydial", "latest"] as const) {
      const r = yield* run(plan, strategy)
      yield* log(
        `| ${concurrency} | ${strategy} | ${r.turns} | ${(r.turns / (r.durationMs / 1000)).toFixed(0)} | ${
          r.latency.p50.toFixed(1)
        } | ${r.latency.p99.toFixed(1)} | ${r.lookupsPerTurn.toFixed(3)} |`
      )
    }
  }
})

const burst = Effect.gen(function*() {
  yield* log("\n## p99 connect latency: steady state, and 10% of workspaces rebuilt at once")
  yield* log(
    "| scenario | strategy | turns | p50 ms | p99 ms | max ms | lookups/turn | steady lookups/turn | repaired |"
  )
  yield* log("|---|---|---|---|---|---|---|---|---|")
  const base = Workload.makePlan({
    ...Workload.defaults,
    // localhost dials, as the figures of docs/service.md were measured: the handshake latency is the report's
    dialLatencyMs: 0,
    chats: 100,
    turns: 8,
    workspaces: 20,
    concurrency: 16,
    rebuildRate: 0,
    thinkMs: 200
  })
  const running = Array.from({ length: 20 }, (_, i) => i).filter((i) => !base.stopped.has(i))
  const modes = ["die", "hang"] as const
  const burstPlan: Workload.Plan = {
    ...base,
    rebuilds: running.slice(0, 2).map((workspace, i) => ({ atMs: 700, workspace, mode: modes[i % 2]! }))
  }
  for (const [scenario, plan] of [["steady", base], ["10% rebuild at 0.7 s", burstPlan]] as const) {
    for (const strategy of ["lazydial", "latest"] as const) {
      const r = yield* run(plan, strategy)
      yield* log(
        `| ${scenario} | ${strategy} | ${r.turns} | ${r.latency.p50.toFixed(1)} | ${r.latency.p99.toFixed(1)} | ${
          r.latency.max.toFixed(1)
        } | ${r.lookupsPerTurn.toFixed(3)} | ${r.steadyLookupsPerTurn.toFixed(3)} | ${r.bindingsRepaired} |`
      )
    }
  }
})

const memory = Effect.gen(function*() {
  yield* log("\n## memory with 10,000 chats")
  const gc = (globalThis as { gc?: () => void }).gc
  const measure = () => {
    gc?.()
    const m = process.memoryUsage()
    return `rss ${(m.rss / 2 ** 20).toFixed(0)} MiB, heap used ${(m.heapUsed / 2 ** 20).toFixed(0)} MiB`
  }
  yield* log(`before: ${measure()}`)
  yield* Effect.gen(function*() {
    const chats = yield* Chats
    const started = performance.now()
    yield* Effect.forEach(
      Array.from({ length: 10_000 }),
      () => chats.create(Option.none()),
      { concurrency: 16, discard: true }
    )
    yield* log(`10,000 chats created in ${((performance.now() - started) / 1000).toFixed(1)} s: ${measure()}`)
  }).pipe(
    Effect.provide(Service.layer({ validationDelay: "200 millis", dialTimeout: "2 seconds" }, Service.makeCounters()))
  )
})

Effect.runPromise(
  Effect.gen(function*() {
    yield* throughput
    yield* burst
    yield* memory
  }).pipe(Effect.provide(Service.layerDatabase(process.env.LAZYDIAL_DATABASE_URL)))
).catch((error) => {
  process.stderr.write(`${String(error)}\n`)
  process.exitCode = 1
})
