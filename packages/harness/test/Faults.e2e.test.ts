/**
 * Core's `Faults.layerConfig` as the service wires it: switched on from the
 * environment (here a ConfigProvider), with no code change, between the real
 * dialer and lookup and the turn path. The report's counters must stay
 * truthful: injected failures are counted, hangs (even ones that ignore
 * interruption) release their turn within the dial timeout, and every socket
 * is closed at the end.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Service from "@lazydial/service/Service"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import { strategies, wiring } from "../src/Report.js"
import * as Workload from "../src/Workload.js"

const options: Workload.Options = {
  ...Workload.defaults,
  seed: 11,
  chats: 16,
  workspaces: 5,
  turns: 5,
  concurrency: 8,
  rebuildRate: 4,
  thinkMs: 100,
  validationDelayMs: 300,
  dialTimeoutMs: 1000
}

const faultsOn = (dial: object, lookup?: object) =>
  ConfigProvider.fromEnvRecord({
    LAZYDIAL_FAULTS: "on",
    LAZYDIAL_FAULTS_DIAL: JSON.stringify(dial),
    ...(lookup === undefined ? {} : { LAZYDIAL_FAULTS_LOOKUP: JSON.stringify(lookup) })
  })

const withConfig = (provider: ConfigProvider.ConfigProvider) =>
  Effect.provideService(ConfigProvider.ConfigProvider, provider)

const faults = faultsOn(
  {
    latency: { min: 0, max: 5, spikeRate: 0.05, spike: 1500 },
    failureRate: 0.15,
    hangRate: 0.1,
    ignoreInterruptionRate: 0.3,
    defectRate: 0.05
  },
  { failureRate: 0.1, noAgentRate: 0.05, defectRate: 0.05 }
)

/** A lazydial run with LAZYDIAL_FAULTS unset; it must report no fault at all. */
const runQuiet = (plan: ReturnType<typeof Workload.makePlan>) =>
  Effect.tap(
    Workload.runStrategy(plan, "lazydial", Workload.makeProgress()).pipe(
      withConfig(ConfigProvider.fromEnvRecord({}))
    ),
    (report) =>
      Effect.sync(() =>
        expect(report.faultsInjected).toEqual({
          dialFailure: 0,
          hang: 0,
          ignoreInterruption: 0,
          dialDefect: 0,
          latencySpike: 0,
          lookupFailure: 0,
          noAgent: 0,
          lookupDefect: 0
        })
      )
  )

// a loaded 2-core machine may report a timeout a few hundred ms late
const slackMs = 1000

describe("fault injection in the service", () => {
  it.live(
    "LAZYDIAL_FAULTS=on injects faults into every strategy; every turn ends, typed or injected, and nothing leaks; unset, nothing is injected",
    () =>
      Effect.gen(function*() {
        const plan = Workload.makePlan(options)
        for (const strategy of strategies) {
          const report = yield* Workload.runStrategy(plan, strategy, Workload.makeProgress()).pipe(
            withConfig(faults)
          )
          const injected = report.faultsInjected
          if (wiring[strategy].sharedConnections) {
            // a handful of dials open every shared connection (3 in one run, against 42 with a dial per turn): any
            // fault counts, the lookups' included
            expect(Object.values(injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
          } else {
            expect(injected.dialFailure + injected.hang + injected.lookupFailure).toBeGreaterThan(0)
          }
          // every turn ended: answered, a typed failure, or an injected defect
          const o = report.outcomes
          const answered = o.fast + o.confirmed + o.lookup_failed_kept + o.switched + o.retried + o.lazy_bind + o.direct
          expect(answered + o.no_agent + o.timeout + o.failed).toBe(options.chats * options.turns)
          expect(report.defects).toBeLessThanOrEqual(o.failed)
          const defectsInjected = injected.dialDefect + injected.lookupDefect
          if (wiring[strategy].sharedConnections) {
            // a shared connection's dial is awaited by every turn that borrows it while it opens: one injected
            // defect there ends all of them (seen: 12 turns ended by 3 defects)
            if (report.defects > 0) expect(defectsInjected).toBeGreaterThan(0)
          } else {
            expect(report.defects).toBeLessThanOrEqual(defectsInjected)
          }
          // injected hangs were released by the dial timeout
          expect(report.slowestConnectMs).toBeLessThan(options.dialTimeoutMs + slackMs)
          expect(report.socketsStillOpen).toBe(0)
          expect(report.agentSocketsStillOpen).toBe(0)
          expect(report.connectionsOpened).toBe(report.connectionsClosed)
          expect(report.wrongAgentTurns).toBe(0)
        }

        // LAZYDIAL_FAULTS unset: the services pass through untouched
        const report = yield* runQuiet(Workload.makePlan({ ...options, chats: 8, turns: 2, rebuildRate: 0 }))
        expect(report.defects).toBe(0)
        expect(report.turnsOk).toBe(report.turns - report.outcomes.no_agent)
      }).pipe(Effect.provide(Service.layerDatabase(undefined))),
    { timeout: 90_000 }
  )

  it.live(
    "a fault injected after its run has ended (an attempt that ignored interruption) is not counted in the next run",
    () =>
      Effect.gen(function*() {
        // Every dial ignores interruption, sleeps through a 1 s spike, then fails:
        // the turns time out at 200 ms and the failures land after the run.
        const lateFailures = faultsOn({
          latency: { min: 0, max: 0, spikeRate: 1, spike: 1000 },
          failureRate: 1,
          ignoreInterruptionRate: 1
        })
        const small = { ...options, chats: 4, workspaces: 2, turns: 1, rebuildRate: 0, dialTimeoutMs: 200 }
        const faulty = yield* Workload.runStrategy(Workload.makePlan(small), "lazydial", Workload.makeProgress())
          .pipe(withConfig(lateFailures))
        expect(faulty.faultsInjected.ignoreInterruption).toBeGreaterThan(0)

        // long enough for every late failure of the first run to land inside it
        const quiet = Workload.makePlan({ ...small, chats: 2, turns: 4, thinkMs: 600, dialTimeoutMs: 1000 })
        const report = yield* runQuiet(quiet)
        expect(report.durationMs).toBeGreaterThan(1000)
      }).pipe(Effect.provide(Service.layerDatabase(undefined))),
    { timeout: 60_000 }
  )
})
