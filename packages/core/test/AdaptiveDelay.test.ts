import { assert, describe, it } from "@effect/vitest"
import { LazyDial, Options } from "@lazydial/core"
import { currentAgent, layerTest, TestAgents } from "@lazydial/core/testing"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as TestClock from "effect/testing/TestClock"
import { A, BUILD_1, W } from "./fixtures.js"

/** A bucket edge is at most this much above the quantile it stands for (docs/core.md). */
const resolution = 2 ** (1 / 4)

type AdaptiveOptions = NonNullable<Parameters<typeof LazyDial.layer>[0]>["adaptive"]

const provideAdaptive =
  (adaptive: AdaptiveOptions) => <A, E>(effect: Effect.Effect<A, E, TestAgents | LazyDial.LazyDial>) =>
    Effect.provide(effect, LazyDial.layer({ delay: "adaptive", adaptive }).pipe(Layer.provideMerge(layerTest)))

const currentDelay = Effect.map(LazyDial.LazyDial, (service) => Duration.toMillis(service.delay))

/**
 * Scripts A to connect after `latency` ms, as the current agent, and makes
 * `count` turns, each run to its end on the TestClock, one after the other
 * (`concurrent`: all at once, which is quicker, for turns that all use the
 * same delay). Returns the lookups made.
 */
const turns = (count: number, latency: number, concurrent = false) =>
  Effect.gen(function*() {
    const agents = yield* TestAgents
    const service = yield* LazyDial.LazyDial
    yield* agents.script(A, { latency, result: "connect" })
    yield* agents.setCurrent(W, Option.some(currentAgent({ agentId: A, buildId: BUILD_1 })))
    const before = (yield* agents.lookups).length
    const turn = Effect.scoped(service.dial({ agentId: A, workspaceId: W }))
    for (let i = 0; i < (concurrent ? 1 : count); i++) {
      const batch = concurrent ? count : 1
      const dialed = (yield* agents.dials).length + batch
      const fiber = yield* Effect.forkChild(Effect.replicateEffect(turn, batch, { concurrency: "unbounded" }))
      // Every dial of the batch must be asleep before the clock moves, or it would sleep past its turn. The kit
      // records a dial and starts its sleep in one step, so a recorded dial is an asleep one.
      while ((yield* agents.dials).length < dialed) {
        yield* Effect.yieldNow
      }
      yield* TestClock.adjust(latency)
      for (const result of yield* Fiber.join(fiber)) assert.strictEqual(result.agentId, A)
    }
    return (yield* agents.lookups).length - before
  })

describe("adaptive delay", () => {
  it.effect("with no samples the initial delay is used, until the warm-up is over", () =>
    provideAdaptive({ initial: "2 seconds", min: 0, quantile: 0.9, window: 20 })(Effect.gen(function*() {
      assert.strictEqual(yield* currentDelay, 2000)
      // Warm-up for p90 is 1 / (1 − 0.9) = 10 samples.
      yield* turns(9, 10)
      assert.strictEqual(yield* currentDelay, 2000, "9 samples are not enough for p90")
      yield* turns(1, 10)
      assert.isBelow(yield* currentDelay, 2000)
    })))

  it.effect(
    "after fast connects of 10 ms the delay converges to factor × the quantile",
    () =>
      provideAdaptive({ min: 0, window: 100 })(Effect.gen(function*() {
        assert.strictEqual(yield* currentDelay, 5000, "the initial delay defaults to max")
        const lookups = yield* turns(100, 10, true)
        assert.strictEqual(lookups, 0)
        const delay = yield* currentDelay
        // p99 of 10 ms samples, times the default factor 3, rounded up to a bucket edge.
        assert.isAtLeast(delay, 30)
        assert.isAtMost(delay, 30 * resolution)
        const gauge = yield* Metric.value(LazyDial.delayGauges.adaptive)
        assert.closeTo(gauge.value, delay / 1000, 1e-6, "the gauge shows the delay in use")
      })),
    20_000
  )

  it.effect(
    "connects that slow to 400 ms raise the delay, so later turns make no lookups",
    () =>
      provideAdaptive({ window: 100 })(Effect.gen(function*() {
        yield* turns(100, 10, true)
        assert.strictEqual(yield* currentDelay, 50, "3 × 10 ms is below the default min of 50 ms")
        // The machine slows down: every dial is slower than the delay, and the
        // lookup confirms A. The first few turns pay a lookup ...
        const first = yield* turns(10, 400)
        assert.strictEqual(first, 2, "p99 of 100 samples moves with the second slow one")
        assert.isAtLeast(yield* currentDelay, 1200)
        // ... and then the delay is above the round trip: steady state, no lookups.
        assert.strictEqual(yield* turns(100, 400, true), 0)
      })),
    20_000
  )

  it.effect("the delay is clamped to min and to max", () =>
    provideAdaptive({ min: "80 millis", max: "1 second", quantile: 0.5, window: 4 })(Effect.gen(function*() {
      yield* turns(4, 1)
      assert.strictEqual(yield* currentDelay, 80)
      yield* turns(4, 900)
      assert.strictEqual(yield* currentDelay, 1000)
    })))

  it.effect(
    "the window forgets old samples",
    () =>
      provideAdaptive({ min: 0, max: "10 seconds", quantile: 0.5, factor: 1, window: 8 })(Effect.gen(function*() {
        const near = (millis: number) =>
          Effect.map(currentDelay, (delay) => delay >= millis && delay <= millis * resolution)
        yield* turns(8, 10)
        assert.isTrue(yield* near(10))
        yield* turns(8, 2000)
        assert.isTrue(yield* near(2000), "the fast samples have left the window: the median is slow")
        yield* turns(8, 10)
        assert.isTrue(yield* near(10), "and the slow ones have left it again")
      })),
    20_000
  )

  it.effect("a switched or failed dial does not feed the delay", () =>
    provideAdaptive({ initial: "100 millis", min: 0, quantile: 0.5, window: 1 })(Effect.gen(function*() {
      const agents = yield* TestAgents
      const service = yield* LazyDial.LazyDial
      yield* agents.script(A, { latency: 30, result: "fail" }, { latency: 30, result: "connect" })
      yield* agents.setCurrent(W, Option.some(currentAgent({ agentId: A, buildId: BUILD_1 })))
      const fiber = yield* Effect.forkChild(Effect.scoped(service.dial({ agentId: A, workspaceId: W })))
      yield* TestClock.adjust(100)
      assert.strictEqual((yield* Fiber.join(fiber)).outcome, "retried")
      assert.strictEqual(yield* currentDelay, 100, "a failed dial and its retry are not samples")
    })))
})

describe("adaptive delay configuration", () => {
  // The caller names the variables: these are the reference service's.
  const max = LazyDial.maxDelay
  const config = {
    delay: Options.optional(LazyDial.delayConfig("LAZYDIAL_VALIDATION_DELAY")),
    adaptive: {
      initial: Options.optional(Options.durationConfig("LAZYDIAL_VALIDATION_DELAY_INITIAL", { max })),
      min: Options.optional(Options.durationConfig("LAZYDIAL_VALIDATION_DELAY_MIN", { max })),
      max: Options.optional(Options.durationConfig("LAZYDIAL_VALIDATION_DELAY_MAX", { max })),
      factor: Options.optional(Options.numberConfig("LAZYDIAL_VALIDATION_DELAY_FACTOR", { min: 1, max: 100 })),
      quantile: Options.optional(
        Options.numberConfig("LAZYDIAL_VALIDATION_DELAY_QUANTILE", { min: 0, max: 1, minExclusive: true })
      ),
      window: Options.optional(
        Options.numberConfig("LAZYDIAL_VALIDATION_DELAY_WINDOW", { min: 1, max: 65536, integer: true })
      )
    }
  }
  const fromEnv = (env: Record<string, string>) =>
    Effect.provide(
      LazyDial.LazyDial,
      LazyDial.layerConfig(config).pipe(
        Layer.provide(layerTest),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))
      )
    )

  it.effect("LAZYDIAL_VALIDATION_DELAY=adaptive is accepted, with its tuning variables", () =>
    Effect.gen(function*() {
      const service = yield* fromEnv({
        LAZYDIAL_VALIDATION_DELAY: "adaptive",
        LAZYDIAL_VALIDATION_DELAY_INITIAL: "300 millis",
        LAZYDIAL_VALIDATION_DELAY_MAX: "2 seconds",
        LAZYDIAL_VALIDATION_DELAY_FACTOR: "4",
        LAZYDIAL_VALIDATION_DELAY_QUANTILE: "0.95",
        LAZYDIAL_VALIDATION_DELAY_WINDOW: "64"
      })
      assert.strictEqual(Duration.toMillis(service.delay), 300)
      const defaults = yield* fromEnv({ LAZYDIAL_VALIDATION_DELAY: "adaptive" })
      assert.strictEqual(Duration.toMillis(defaults.delay), 5000)
      // a fixed delay, in words or in milliseconds, read the one way every duration is
      assert.strictEqual(Duration.toMillis((yield* fromEnv({ LAZYDIAL_VALIDATION_DELAY: "750" })).delay), 750)
      assert.strictEqual(Duration.toMillis((yield* fromEnv({ LAZYDIAL_VALIDATION_DELAY: "2 seconds" })).delay), 2000)
      assert.strictEqual(Duration.toMillis((yield* fromEnv({})).delay), 5000)
    }))

  it.effect("a value out of its range is refused with a ConfigError naming the variable", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["LAZYDIAL_VALIDATION_DELAY", "-5 seconds"],
        ["LAZYDIAL_VALIDATION_DELAY", "soon"],
        ["LAZYDIAL_VALIDATION_DELAY_MIN", "-1 millis"],
        ["LAZYDIAL_VALIDATION_DELAY_MAX", "1 day"],
        ["LAZYDIAL_VALIDATION_DELAY_FACTOR", "0.5"],
        ["LAZYDIAL_VALIDATION_DELAY_FACTOR", "three"],
        ["LAZYDIAL_VALIDATION_DELAY_QUANTILE", "0"],
        ["LAZYDIAL_VALIDATION_DELAY_QUANTILE", "1.5"],
        ["LAZYDIAL_VALIDATION_DELAY_WINDOW", "2.5"],
        ["LAZYDIAL_VALIDATION_DELAY_WINDOW", "0"]
      ]
      for (const [variable, value] of cases) {
        const env = { LAZYDIAL_VALIDATION_DELAY: "adaptive", [variable]: value }
        const error = yield* Effect.flip(fromEnv(env))
        assert.strictEqual(error._tag, "ConfigError", `${variable}=${value}`)
        assert.include(error.message, variable, `${variable}=${value}`)
      }
    }))

  it.effect("values that fit alone but not together are refused with an InvalidOption naming the option", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Record<string, string>, string]> = [
        [{ LAZYDIAL_VALIDATION_DELAY_MAX: "10 millis" }, "adaptive.max"], // below the default min
        [{ LAZYDIAL_VALIDATION_DELAY_INITIAL: "6 seconds" }, "adaptive.initial"] // above the default max
      ]
      for (const [env, option] of cases) {
        const error = yield* Effect.flip(fromEnv({ LAZYDIAL_VALIDATION_DELAY: "adaptive", ...env }))
        assert.strictEqual(error._tag === "InvalidOption" && error.option, option, JSON.stringify(env))
      }
    }))

  // Effect 4's environment provider reads an empty variable as unset, as a shell's `X=` is usually meant.
  it.effect("an empty variable is unset: its default applies", () =>
    Effect.gen(function*() {
      const service = yield* fromEnv({ LAZYDIAL_VALIDATION_DELAY: "adaptive", LAZYDIAL_VALIDATION_DELAY_MAX: "" })
      assert.strictEqual(Duration.toMillis(service.delay), 5000)
    }))

  it.effect("a tuning variable without adaptive is refused, not ignored", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(fromEnv({ LAZYDIAL_VALIDATION_DELAY_MIN: "10 millis" }))
      assert.strictEqual(error._tag === "InvalidOption" && error.option, "adaptive")
    }))

  it.effect("the Layer refuses bad adaptive options, naming them", () =>
    Effect.gen(function*() {
      const build = (options: Parameters<typeof LazyDial.layer>[0]) =>
        Effect.flip(Effect.provide(LazyDial.LazyDial, LazyDial.layer(options).pipe(Layer.provide(layerTest))))
      const badFactor = yield* build({ delay: "adaptive", adaptive: { factor: 0 } })
      assert.strictEqual(badFactor.option, "adaptive.factor")
      const minAboveMax = yield* build({ delay: "adaptive", adaptive: { min: "2 seconds", max: "1 second" } })
      assert.strictEqual(minAboveMax.option, "adaptive.max")
      const withoutAdaptive = yield* build({ delay: 100, adaptive: { factor: 2 } })
      assert.strictEqual(withoutAdaptive.option, "adaptive")
    }))
})
