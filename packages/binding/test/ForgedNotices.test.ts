/**
 * A notice is a hint, never a fact (issue 17). The forged notices of the
 * issue's attack, on TestClock with in-memory notices, a scripted directory and
 * core's scripted agents: a foreign agent, a stop, a retired agent, junk,
 * deeply nested text, a `__proto__` key, and notices of tracked and untracked
 * workspaces. None changes what a turn does; each costs at most a share of a
 * bounded read. The same payloads through a real database are in
 * `ForgedNoticesSql.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { BindingStore, ChatConnector, RebuildNotices } from "@lazydial/binding"
import { type CurrentAgent, LazyDial, NoCurrentAgent, WorkspaceId } from "@lazydial/core"
import { layerTest, TestAgents } from "@lazydial/core/testing"
import * as Arbitrary from "effect/Arbitrary"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as TestClock from "effect/testing/TestClock"
import { boundChat, build, buildId, checkProperty, failureOf, oneOf, poll, workspaceId } from "./fixtures.js"

/** The log lines written while a test runs (the notices' reader and logger fibers included). */
const lines: Array<string> = []
const capture = Logger.layer([
  Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel}: ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
])

const connectorLayer = ChatConnector.layer().pipe(
  Layer.provideMerge(LazyDial.layer({ delay: "5 seconds" })),
  Layer.provideMerge(Layer.mergeAll(BindingStore.layerMemory, RebuildNotices.layerMemory)),
  Layer.provideMerge(layerTest),
  Layer.provide(capture)
)

const count = (metric: Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)

const costs = Effect.all({
  received: count(RebuildNotices.receivedTotal),
  malformed: count(RebuildNotices.malformedTotal),
  untracked: count(RebuildNotices.untrackedTotal),
  reads: Effect.flatMap(RebuildNotices.MemoryNotices, (memory) => memory.reads)
})

const lookupCount = Effect.flatMap(TestAgents, (agents) => Effect.map(agents.lookups, (calls) => calls.length))
const dialCount = Effect.flatMap(TestAgents, (agents) => Effect.map(agents.dials, (calls) => calls.length))

const answer = (w: WorkspaceId, order: number, current: CurrentAgent | undefined) =>
  RebuildNotices.noticeOf(w, order, current?.buildId ?? buildId(), Option.fromNullishOr(current?.agentId))

/** Runs a turn that must finish without the clock moving: no validation delay was waited out. */
const turnNow = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(Effect.scoped(effect))
    for (let i = 0; i < 50; i++) yield* Effect.yieldNow
    const exit = yield* poll(fiber)
    assert.isTrue(Option.isSome(exit), "the turn waited for the clock")
    return yield* Fiber.join(fiber)
  })

/**
 * The victim workspace V runs `mine`, and T (the attacker's pick) runs
 * `theirs`: both recorded in the directory at order 1, both agents answer. A
 * chat of V is bound to `mine`, and this process looked V up (so it tracks V,
 * as `AgentDirectory`'s lookups make it do).
 */
const victim = Effect.gen(function*() {
  const agents = yield* TestAgents
  const memory = yield* RebuildNotices.MemoryNotices
  const notices = yield* RebuildNotices.RebuildNotices
  const v = workspaceId()
  const t = workspaceId()
  const mine = build()
  const theirs = build()
  for (const [w, current] of [[v, mine], [t, theirs]] as const) {
    yield* agents.setCurrent(w, Option.some(current))
    yield* agents.script(current.agentId, { result: "connect" })
    yield* memory.record(answer(w, 1, current))
  }
  yield* notices.observe(answer(v, 1, mine))
  const chatId = yield* boundChat(v, mine)
  return { v, t, mine, theirs, chatId }
})

/** The payloads of the attack, in the earlier JSON form and others, aimed at `v`. */
const forged = (v: WorkspaceId, theirs: CurrentAgent, retired: CurrentAgent): ReadonlyArray<string> => [
  // V's current build at a huge order, then a random build with T's live agent
  JSON.stringify({ workspaceId: v, order: 900_000_000, buildId: theirs.buildId, agentId: theirs.agentId }),
  JSON.stringify({ workspaceId: v, order: 900_000_001, buildId: buildId(), agentId: theirs.agentId }),
  // a stop
  JSON.stringify({ workspaceId: v, order: 900_000_002, buildId: buildId(), agentId: null }),
  // a retired, hung agent
  JSON.stringify({ workspaceId: v, order: 900_000_003, buildId: retired.buildId, agentId: retired.agentId }),
  // a `__proto__` key
  `{"__proto__":{"workspaceId":"${v}"},"workspaceId":"${v}","order":900000004,"buildId":"${theirs.buildId}","agentId":"${theirs.agentId}"}`,
  // 7,800 bytes of nested arrays
  "[".repeat(3_900) + "]".repeat(3_900),
  // a workspace id with something around it
  ` ${v}`,
  `${v}\n`,
  `"${v}"`,
  ""
]

describe("Forged notices: a notice is a hint, never a fact", () => {
  it.effect(
    "a foreign agent, a stop, a retired agent, __proto__, deep nesting: malformed, counted, nothing read; every turn of the victim stays hot on its own agent",
    () =>
      Effect.gen(function*() {
        const connector = yield* ChatConnector.ChatConnector
        const memory = yield* RebuildNotices.MemoryNotices
        const store = yield* BindingStore.BindingStore
        const agents = yield* TestAgents
        const { chatId, mine, theirs, v } = yield* victim
        const retired = build()
        yield* agents.script(retired.agentId, { result: "hang" })
        const control = yield* turnNow(connector.connect(chatId))
        assert.strictEqual(control.outcome, "fast")
        const row = yield* store.get(chatId)
        const before = yield* costs
        const payloads = forged(v, theirs, retired)
        for (const payload of payloads) yield* memory.notify(payload)
        const after = yield* costs
        deepStrictEqual(
          [after.malformed - before.malformed, after.received - before.received, after.reads - before.reads],
          [payloads.length, 0, 0]
        )
        for (let i = 0; i < 8; i++) {
          const turn = yield* turnNow(connector.connect(chatId))
          deepStrictEqual([turn.outcome, turn.agentId], ["fast", mine.agentId])
        }
        deepStrictEqual(yield* store.get(chatId), row)
        // a new chat of V binds to V's own agent
        const fresh = yield* store.createChat({ workspaceId: v })
        assert.strictEqual((yield* turnNow(connector.connect(fresh.chatId))).agentId, mine.agentId)
        assert.strictEqual(yield* lookupCount, 0)
      }).pipe(Effect.provide(connectorLayer))
  )

  it.effect(
    "the victim's own id, 1,000 times: one read of the directory, whose answer changes nothing; an untracked id is counted and read for nothing",
    () =>
      Effect.gen(function*() {
        const connector = yield* ChatConnector.ChatConnector
        const memory = yield* RebuildNotices.MemoryNotices
        const { chatId, mine, t, v } = yield* victim
        const before = yield* costs
        yield* memory.notifyAll(Array.from({ length: 1_000 }, () => v))
        yield* memory.notify(t)
        yield* memory.notify(workspaceId())
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        const after = yield* costs
        deepStrictEqual(
          [after.received - before.received, after.untracked - before.untracked, after.reads - before.reads],
          [1_002, 2, 1]
        )
        const turn = yield* turnNow(connector.connect(chatId))
        deepStrictEqual([turn.outcome, turn.agentId], ["fast", mine.agentId])
        assert.strictEqual(yield* lookupCount, 0)
      }).pipe(Effect.provide(connectorLayer))
  )

  it.effect(
    "a stop is learned from the directory only: a notice of V while V runs fails no turn; once the directory says stopped, its notice fails the turns at once, 0 dials",
    () =>
      Effect.gen(function*() {
        const connector = yield* ChatConnector.ChatConnector
        const memory = yield* RebuildNotices.MemoryNotices
        const agents = yield* TestAgents
        const { chatId, mine, v } = yield* victim
        yield* memory.notify(v)
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        assert.strictEqual((yield* turnNow(connector.connect(chatId))).agentId, mine.agentId)
        // the fleet stops V: the directory holds the stop, and its notice arrives
        yield* agents.setCurrent(v, Option.none())
        yield* memory.record(answer(v, 2, undefined))
        yield* TestClock.adjust(RebuildNotices.readInterval)
        yield* memory.notify(v)
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        const dials = yield* dialCount
        const exit = yield* Effect.exit(turnNow(connector.connect(chatId)))
        deepStrictEqual(failureOf(exit), Option.some(new NoCurrentAgent({ workspaceId: v })))
        assert.strictEqual((yield* dialCount) - dials, 0)
        assert.strictEqual(yield* lookupCount, 0)
      }).pipe(Effect.provide(connectorLayer))
  )

  it.effect(
    "a real rebuild's notice: the read shows the bound build superseded, and the next turn switches at once (switched_by_notice, 0 lookups)",
    () =>
      Effect.gen(function*() {
        const connector = yield* ChatConnector.ChatConnector
        const memory = yield* RebuildNotices.MemoryNotices
        const agents = yield* TestAgents
        const { chatId, mine, v } = yield* victim
        const second = build()
        yield* agents.setCurrent(v, Option.some(second))
        yield* agents.script(second.agentId, { result: "connect" })
        yield* agents.script(mine.agentId, { result: "hang" })
        yield* memory.record(answer(v, 2, second))
        yield* memory.notify(v)
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        const turn = yield* turnNow(connector.connect(chatId))
        deepStrictEqual([turn.outcome, turn.agentId, turn.write], ["switched_by_notice", second.agentId, "recorded"])
        assert.strictEqual(yield* lookupCount, 0)
      }).pipe(Effect.provide(connectorLayer))
  )

  it.effect(
    "a pending dial is woken only by what the read shows: a notice while the directory still names the bound build leaves it waiting; the real rebuild's notice wakes it at once",
    () =>
      Effect.gen(function*() {
        const connector = yield* ChatConnector.ChatConnector
        const memory = yield* RebuildNotices.MemoryNotices
        const agents = yield* TestAgents
        const { chatId, mine, v } = yield* victim
        // the bound agent hangs (a rebuild is under way); the directory still names it
        yield* agents.script(mine.agentId, { result: "hang" })
        const fiber = yield* Effect.forkChild(Effect.scoped(connector.connect(chatId)))
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow
        yield* memory.notify(v)
        yield* TestClock.adjust("1 second")
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow
        assert.isTrue(Option.isNone(yield* poll(fiber)), "a read that named the bound build woke the dial")
        // now the rebuild is recorded, and its notice arrives
        const second = build()
        yield* agents.setCurrent(v, Option.some(second))
        yield* agents.script(second.agentId, { result: "connect" })
        yield* memory.record(answer(v, 2, second))
        yield* memory.notify(v)
        yield* TestClock.adjust("1 millis")
        for (let i = 0; i < 50; i++) yield* Effect.yieldNow
        const exit = yield* poll(fiber)
        assert.isTrue(Option.isSome(exit), "the read that showed the rebuild did not wake the dial")
        const turn = yield* Fiber.join(fiber)
        deepStrictEqual([turn.outcome, turn.agentId], ["switched", second.agentId])
      }).pipe(Effect.provide(connectorLayer))
  )

  it.effect(
    "reads are bounded: 2,000 tracked workspaces named 25 times in one burst are read in batches of at most 500, at most one read per interval",
    () =>
      Effect.gen(function*() {
        const memory = yield* RebuildNotices.MemoryNotices
        const notices = yield* RebuildNotices.RebuildNotices
        const spaces = Array.from({ length: 2_000 }, workspaceId)
        const tracked = new Set(spaces)
        yield* notices.track((w) => tracked.has(w))
        const heard = yield* notices.subscribe
        for (const w of spaces) yield* memory.record(answer(w, 1, build()))
        const before = yield* memory.reads
        yield* memory.notifyAll(Array.from({ length: 25 }, () => spaces).flat())
        // a notice after its workspace's read asks again (a rebuild may have come
        // in between), so the burst costs a few more reads than 2,000 / 500; but
        // never more than one per interval
        const readsAfter: Array<number> = []
        for (let step = 0; step < 10; step++) {
          for (let i = 0; i < 20; i++) yield* Effect.yieldNow
          readsAfter.push((yield* memory.reads) - before)
          yield* TestClock.adjust(RebuildNotices.readInterval)
        }
        for (const [step, reads] of readsAfter.entries()) assert.isAtMost(reads, step + 1, String(readsAfter))
        const reads = readsAfter.at(-1)!
        assert.strictEqual(readsAfter.at(-2), reads, "still reading after the burst")
        // every workspace was read, at most 500 in one read
        const answers = yield* PubSub.takeUpTo(heard, Number.POSITIVE_INFINITY)
        assert.strictEqual(new Set(answers.map((heard) => heard.notice.workspaceId)).size, 2_000)
        assert.isAtMost(answers.length, reads * RebuildNotices.maxReadBatch)
        assert.isAtLeast(reads, 4)
      }).pipe(Effect.scoped, Effect.provide(connectorLayer))
  )

  it.effect(
    "50,000 junk payloads at once: all counted as malformed, nothing read, and one log line, then at most one per 10 s with the count since the last",
    () =>
      Effect.gen(function*() {
        const memory = yield* RebuildNotices.MemoryNotices
        lines.length = 0
        const before = yield* costs
        const junk = Array.from({ length: 50_000 }, (_, i) => `junk ${i} ${"x".repeat(i % 100)}`)
        // another fiber runs while the burst is handled: the handler yields between slices
        let interleaved = 0
        const other = yield* Effect.forkChild(
          Effect.forever(Effect.andThen(Effect.yieldNow, Effect.sync(() => interleaved++)))
        )
        yield* memory.notifyAll(junk)
        const during = interleaved
        yield* Fiber.interrupt(other)
        const after = yield* costs
        deepStrictEqual([after.malformed - before.malformed, after.reads - before.reads], [50_000, 0])
        assert.isAbove(during, 10, "the burst held the fiber scheduler")
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        const malformedLines = () => lines.filter((line) => line.includes("malformed payload"))
        const counted = () =>
          malformedLines().reduce((sum, line) => sum + Number(/(\d+) malformed payload/.exec(line)?.[1] ?? NaN), 0)
        // the first line at once, with the count so far; the rest of the burst and
        // 7 more within 10 s go into the next line, once the interval has passed
        assert.strictEqual(malformedLines().length, 1)
        yield* memory.notifyAll(junk.slice(0, 7))
        yield* TestClock.adjust("9 seconds")
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        assert.strictEqual(malformedLines().length, 1)
        yield* TestClock.adjust("1 second")
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
        assert.strictEqual(malformedLines().length, 2)
        assert.strictEqual(counted(), 50_007)
        assert.include(malformedLines()[0]!, "lazydial_rebuilds")
      }).pipe(Effect.provide(connectorLayer))
  )

  it.effect("parsePayload takes exactly what WorkspaceId's Schema takes, and nothing longer than 64 characters", () =>
    Effect.gen(function*() {
      const isWorkspaceId = Schema.is(WorkspaceId)
      const hex = "0123456789abcdefABCDEFxg-"
      const guidLike = Arbitrary.map(
        Arbitrary.array(Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: hex.length - 1 }))), {
          minLength: 30,
          maxLength: 40
        }),
        (indices) => {
          const chars = indices.map((i) => hex[i]!)
          // mostly in the 8-4-4-4-12 places, so that near misses are common
          for (const at of [8, 13, 18, 23]) if (at < chars.length && indices[at]! % 4 !== 0) chars[at] = "-"
          return chars.join("")
        }
      )
      const inputs = oneOf(Arbitrary.schema(Schema.String), guidLike, Arbitrary.schema(WorkspaceId))
      yield* checkProperty(inputs, (input) => {
        const parsed = RebuildNotices.parsePayload(input)
        return parsed === undefined ? !isWorkspaceId(input) : isWorkspaceId(input) && parsed === input
      }, { runs: 2_000 })
      assert.isUndefined(RebuildNotices.parsePayload("a".repeat(RebuildNotices.maxPayloadLength + 1)))
    }))
})
