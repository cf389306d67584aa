/**
 * Bad input: every decoder that takes outside data, fed arbitrary strings and
 * objects by Effect's `Arbitrary`. Nothing may throw past the Effect error channel, and
 * every rejection names the field (or the option) it rejects.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { AgentDirectory, BindingStore, ChatBinding, ChatConnector, Database } from "@lazydial/binding"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import { InvalidOption, LazyDial, Options } from "@lazydial/core"
import { anyInput, endsInErrorChannel, idLike, layerTest, TestAgents } from "@lazydial/core/testing"
import * as Arbitrary from "effect/Arbitrary"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import {
  build,
  chatId,
  checkProperty,
  constantFrom,
  holdBuild,
  oneOf,
  unchecked,
  withEnv,
  workspaceId
} from "./fixtures.js"

/**
 * One PGlite for the whole file: starting one takes seconds. Every test uses
 * fresh ids, so they never see each other's rows.
 */
const pglite = ManagedRuntime.make(PgliteDatabase.layerPglite())
afterAll(() => pglite.dispose())
const sqlLayer = Layer.effectContext(
  Effect.map(
    pglite.contextEffect,
    (context) =>
      Context.make(SqlClient.SqlClient, Context.get(context, SqlClient.SqlClient)).pipe(
        Context.add(Database.Migrated, Context.get(context, Database.Migrated))
      )
  )
)

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const formatFailure = <A>(result: Result.Result<A, Schema.SchemaError>): string | undefined =>
  Result.isFailure(result) ? result.failure.message : undefined

/** Any text, and the text of any JSON value. */
const text = oneOf(
  Arbitrary.schema(Schema.String),
  Arbitrary.map(Arbitrary.schema(Schema.Json), (json) => JSON.stringify(json))
)

describe("Bad input: the JSON binding", () => {
  const decodeJson = Schema.decodeUnknownResult(Schema.fromJsonString(ChatBinding.ChatBinding))
  const valid = Schema.encodeSync(ChatBinding.ChatBinding)(
    new ChatBinding.ChatBinding({
      chatId: chatId(),
      parentChatId: Option.none(),
      workspaceId: Option.some(workspaceId()),
      buildId: Option.some(build().buildId),
      agentId: Option.some(build().agentId),
      version: 2,
      updatedAt: DateTime.makeUnsafe("2026-11-24T00:00:00.000Z")
    })
  )
  const fields = Object.keys(valid) as Array<keyof typeof valid>

  it.effect("arbitrary text and JSON never throw: the decoder answers a success or a failure", () =>
    checkProperty(text, (text) => {
      const result = decodeJson(text)
      endsInErrorChannel(Schema.decodeUnknownEffect(Schema.fromJsonString(ChatBinding.ChatBinding))(text))
      return Result.isFailure(result) || Result.isSuccess(result)
    }, { runs: 500 }))

  it.effect("a binding with one field replaced by any value is accepted, or refused with an error naming that field", () =>
    checkProperty(
      Arbitrary.all([
        constantFrom(...fields),
        oneOf(anyInput, Arbitrary.Constant(undefined)),
        Arbitrary.schema(Schema.Boolean)
      ]),
      ([field, value, remove]) => {
        const payload: Record<string, unknown> = { ...valid }
        if (remove) delete payload[field]
        else payload[field] = value
        const message = formatFailure(Schema.decodeUnknownResult(ChatBinding.ChatBinding)(payload))
        endsInErrorChannel(Schema.decodeUnknownEffect(ChatBinding.ChatBinding)(payload))
        return message === undefined || message.includes(`["${field}"]`)
      },
      { runs: 1_000 }
    ))

  it.effect("arbitrary objects never throw", () =>
    checkProperty(anyInput, (input) => {
      endsInErrorChannel(Schema.decodeUnknownEffect(ChatBinding.ChatBinding)(input))
      return true
    }, { runs: 500 }))
})

/** Duration-like text, valid and not: arbitrary strings are almost never durations. */
const durationLike = oneOf(
  Arbitrary.schema(Schema.String),
  Arbitrary.map(
    Arbitrary.all([
      oneOf(Arbitrary.schema(Schema.Int), Arbitrary.schema(Schema.Number), Arbitrary.schema(Schema.BigInt)),
      constantFrom("nanos", "micros", "millis", "seconds", "minutes", "hours", "days", "weeks", "Seconds", "")
    ]),
    ([amount, unit]) => `${amount} ${unit}`
  ),
  constantFrom(
    "5 seconds",
    "0 millis",
    "Infinity",
    "Infinity seconds",
    "NaN seconds",
    "-0 seconds",
    "1e400 seconds",
    "  5 seconds",
    "5seconds",
    "9007199254740993 millis",
    "-5 seconds",
    "",
    " "
  )
)

/**
 * The variable `name` set to `value`, even an empty one: Effect 4's default
 * provider reads an empty variable as unset, and these tests feed the Layers
 * every text.
 */
const provider = (name: string, value: string) => withEnv({ [name]: value }, { preserveEmptyStrings: true })

describe("Bad input: Config values", () => {
  /**
   * Either a Duration in [0, max]; or InvalidOption naming the option and
   * showing the refused text (as given, or as the number it parsed to); or,
   * for text that is no duration at all, a ConfigError naming the variable.
   * Never a defect.
   */
  const checkConfig = (
    option: string,
    variable: string,
    text: string,
    max: Duration.Duration,
    exit: Exit.Exit<Duration.Duration | undefined, unknown>
  ) => {
    if (Exit.isSuccess(exit)) {
      const duration = exit.value
      return duration === undefined ||
        Duration.isFinite(duration) && Duration.isLessThanOrEqualTo(duration, max) &&
          Duration.isGreaterThanOrEqualTo(duration, Duration.zero)
    }
    const failure = Cause.findErrorOption(exit.cause)
    if (Option.isNone(failure)) throw new Error(`not a typed failure: ${Cause.pretty(exit.cause)}`)
    const error = failure.value
    if (error instanceof InvalidOption) {
      return error.option === option && error.message.includes(option) &&
        (error.value === text || error.value === String(Number(text)))
    }
    return error instanceof Config.ConfigError && String(error).includes(variable)
  }

  it.effect("a validation delay read as a caller would: any text is a delay from 0 to 10 minutes, or an error naming it", () =>
    checkProperty(durationLike, (value) =>
      Effect.exit(
        Effect.map(LazyDial.LazyDial, (service): Duration.Duration | undefined => service.delay).pipe(
          Effect.provide(
            LazyDial.layerConfig({ delay: Options.optional(LazyDial.delayConfig("MY_VALIDATION_DELAY")) }).pipe(
              Layer.provide(layerTest)
            )
          ),
          provider("MY_VALIDATION_DELAY", value)
        )
      ).pipe(
        Effect.map((exit) => checkConfig("delay", "MY_VALIDATION_DELAY", value, LazyDial.maxDelay, exit))
      ), { runs: 300 }))

  it.effect("ChatConnector.layerConfig: any text is a dial timeout above 0 and at most 10 minutes, or an error naming it", () =>
    checkProperty(durationLike, (value) =>
      Effect.exit(
        Effect.map(ChatConnector.ChatConnector, (service): Duration.Duration | undefined => service.dialTimeout).pipe(
          Effect.provide(
            ChatConnector.layerConfig({
              dialTimeout: Options.optional(
                Options.durationConfig("MY_DIAL_TIMEOUT", { max: ChatConnector.maxDialTimeout, allowZero: false })
              )
            }).pipe(
              Layer.provide(LazyDial.layer()),
              Layer.provide(BindingStore.layerMemory),
              Layer.provide(layerTest)
            )
          ),
          provider("MY_DIAL_TIMEOUT", value)
        )
      ).pipe(Effect.map((exit) => {
        if (Exit.isSuccess(exit) && exit.value !== undefined && Duration.isZero(exit.value)) return false
        return checkConfig("dialTimeout", "MY_DIAL_TIMEOUT", value, ChatConnector.maxDialTimeout, exit)
      })), { runs: 300 }))

  it.effect(
    "AgentDirectory.layerSqlConfig: any text is a window from 0 to 1 second, or a ConfigError naming the variable",
    () =>
      Effect.gen(function*() {
        const runtime = ManagedRuntime.make(sqlLayer)
        yield* Effect.addFinalizer(() => runtime.disposeEffect)
        const windowOf = (value: string) =>
          runtime.runPromiseExit(
            Effect.map(AgentDirectory.AgentDirectory, (directory): Duration.Duration => directory.batchWindow).pipe(
              Effect.provide(AgentDirectory.layerSqlConfig({
                batchWindow: Options.optional(
                  Options.durationConfig("MY_LOOKUP_BATCH_WINDOW", { max: AgentDirectory.maxBatchWindow })
                )
              })),
              provider("MY_LOOKUP_BATCH_WINDOW", value)
            )
          )
        // Fixed cases first: arbitrary text is rarely a duration, so the
        // property alone might never see an accepted or a too-long window.
        const accepted = [["5 millis", Duration.millis(5)], ["0", Duration.zero], [
          "250",
          Duration.millis(250)
        ]] as const
        for (const [text, window] of accepted) {
          const exit = yield* Effect.promise(() => windowOf(text))
          deepStrictEqual(exit, Exit.succeed(window), text)
        }
        for (const text of ["2 seconds", "-1 millis", "Infinity"]) {
          const exit = yield* Effect.promise(() => windowOf(text))
          const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined
          assert.instanceOf(error, Config.ConfigError, text)
          assert.include(String(error), "MY_LOOKUP_BATCH_WINDOW")
        }
        yield* checkProperty(durationLike, (value) =>
          Effect.map(
            Effect.promise(() => windowOf(value)),
            (exit) => checkConfig("batchWindow", "MY_LOOKUP_BATCH_WINDOW", value, AgentDirectory.maxBatchWindow, exit)
          ), { runs: 60 })
      }).pipe(Effect.scoped),
    120_000
  )
})

describe("Bad input: the store's read slots", () => {
  it.effect(
    "BindingStore.layerSqlConfig: any text is a whole number of read slots from 1 to 100, or a ConfigError naming the variable",
    () =>
      Effect.gen(function*() {
        const runtime = ManagedRuntime.make(sqlLayer)
        yield* Effect.addFinalizer(() => runtime.disposeEffect)
        const storeWith = (value: string) =>
          runtime.runPromiseExit(
            Effect.asVoid(BindingStore.BindingStore).pipe(
              Effect.provide(BindingStore.layerSqlConfig({
                readSlots: Options.optional(
                  Options.numberConfig("MY_STORE_READ_SLOTS", { min: 1, max: BindingStore.maxReadSlots, integer: true })
                )
              })),
              provider("MY_STORE_READ_SLOTS", value)
            )
          )
        const errorOf = (exit: Exit.Exit<void, unknown>) =>
          Exit.isFailure(exit) ? Option.getOrUndefined(Cause.findErrorOption(exit.cause)) : undefined
        const refusal = (exit: Exit.Exit<void, unknown>) => {
          const error = errorOf(exit)
          return error instanceof InvalidOption ? error : undefined
        }
        const configError = (exit: Exit.Exit<void, unknown>) => {
          const error = errorOf(exit)
          return error instanceof Config.ConfigError && String(error).includes("MY_STORE_READ_SLOTS")
        }
        for (const text of ["1", "4", " 100 "]) {
          deepStrictEqual(yield* Effect.promise(() => storeWith(text)), Exit.void, text)
        }
        for (const text of ["0", "101", "2.5", "-1", "four", "", "Infinity", "1e9"]) {
          assert.isTrue(configError(yield* Effect.promise(() => storeWith(text))), text)
        }
        // the option of layerSql is checked the same way, under its own name
        const option = yield* Effect.promise(() =>
          runtime.runPromiseExit(
            Effect.asVoid(BindingStore.BindingStore).pipe(Effect.provide(BindingStore.layerSql({ readSlots: 0 })))
          )
        )
        assert.strictEqual(refusal(option)?.option, "readSlots")
        yield* checkProperty(
          oneOf(Arbitrary.schema(Schema.String), Arbitrary.map(Arbitrary.schema(Schema.Int), String)),
          (text) =>
            Effect.map(Effect.promise(() => storeWith(text)), (exit) => {
              const number = Number(text)
              const valid = text.trim() !== "" && Number.isInteger(number) && number >= 1 && number <= 100
              if (valid) return Exit.isSuccess(exit)
              return configError(exit)
            }),
          { runs: 100 }
        )
      }).pipe(Effect.scoped),
    120_000
  )
})

describe("Bad input: database rows", () => {
  const columns = ["parent_chat_id", "workspace_id", "build_id", "agent_id"] as const

  it.effect(
    "a chat row with any text in an id column reads back, or is a BindingStoreError naming the column",
    () =>
      Effect.gen(function*() {
        const runtime = ManagedRuntime.make(Layer.provideMerge(BindingStore.layerSql(), sqlLayer))
        yield* Effect.addFinalizer(() => runtime.disposeEffect)
        const healthy = yield* Effect.promise(() =>
          runtime.runPromise(Effect.flatMap(BindingStore.BindingStore, (store) => store.createChat()))
        )
        yield* checkProperty(
          Arbitrary.all([constantFrom(...columns), idLike]),
          ([column, value]) =>
            Effect.promise(() =>
              runtime.runPromiseExit(Effect.gen(function*() {
                const sql = yield* SqlClient.SqlClient
                const store = yield* BindingStore.BindingStore
                const id = chatId()
                const current = build()
                const row: Record<string, string> = {
                  chat_id: id,
                  parent_chat_id: chatId(),
                  workspace_id: workspaceId(),
                  build_id: current.buildId,
                  agent_id: current.agentId,
                  [column]: value
                }
                yield* unchecked(sql`INSERT INTO lazydial_chat_bindings
  (chat_id, parent_chat_id, workspace_id, build_id, agent_id, version, updated_at)
VALUES (${row["chat_id"]!}, ${row["parent_chat_id"]!}, ${row["workspace_id"]!}, ${row["build_id"]!},
  ${row["agent_id"]!}, 1, now())`)
                return yield* store.get(id)
              }))
            ).pipe(Effect.map((exit) => {
              if (Exit.isSuccess(exit)) return uuidPattern.test(value)
              const failure = Cause.findErrorOption(exit.cause)
              if (Option.isNone(failure)) throw new Error(`not a typed failure: ${Cause.pretty(exit.cause)}`)
              // PGlite refuses text with a NUL byte before the store sees it: that is the database's error.
              if (failure.value._tag === "SqlError") return value.includes("\u0000")
              // Text is stored as UTF-8, so a lone surrogate is stored as U+FFFD: the
              // error shows the value the row holds.
              return failure.value._tag === "BindingStoreError" &&
                failure.value.message.includes(`["${column}"]`) &&
                failure.value.message.includes(JSON.stringify(value.toWellFormed()))
            })),
          { runs: 80 }
        )
        // The healthy chat is untouched by all of that.
        const reread = yield* Effect.promise(() =>
          runtime.runPromise(Effect.flatMap(BindingStore.BindingStore, (store) => store.get(healthy.chatId)))
        )
        deepStrictEqual(reread, healthy)
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "a chat row with a bad version or timestamp is a BindingStoreError naming the column",
    () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* BindingStore.BindingStore
        const cases = [
          ["version", "0", "now()"],
          ["version", "-3", "now()"],
          ["updated_at", "1", "'infinity'"],
          ["updated_at", "1", "'-infinity'"]
        ] as const
        for (const [column, version, updatedAt] of cases) {
          const id = chatId()
          yield* sql.unsafe(
            `INSERT INTO lazydial_chat_bindings (chat_id, workspace_id, version, updated_at)
VALUES ($1, $2, ${version}, ${updatedAt})`,
            [id, workspaceId()]
          )
          const error = yield* Effect.flip(store.get(id))
          assert.strictEqual(error._tag, "BindingStoreError")
          assert.include(error.message, `["${column}"]`, `${column} = ${version}/${updatedAt}: ${error.message}`)
        }
      }).pipe(Effect.provide(Layer.provideMerge(BindingStore.layerSql(), sqlLayer))),
    120_000
  )
})

describe("Bad input: a corrupt row is that chat's problem only", () => {
  it.effect(
    "a chat whose row names a non-UUID agent fails its turns with a BindingStoreError; other chats keep working",
    () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* BindingStore.BindingStore
        const connector = yield* ChatConnector.ChatConnector
        const agents = yield* TestAgents
        const w = workspaceId()
        const current = build()
        yield* agents.setCurrent(w, Option.some(current))
        yield* holdBuild(w, current)
        yield* agents.script(current.agentId, { result: "connect" })
        const healthy = yield* store.createChat({ workspaceId: w })
        const corrupt = chatId()
        yield* unchecked(sql`INSERT INTO lazydial_chat_bindings
  (chat_id, parent_chat_id, workspace_id, build_id, agent_id, version, updated_at)
VALUES (${corrupt}, NULL, ${w}, ${current.buildId}, ${"agent-7"}, 1, now())`)

        const [good, bad] = yield* Effect.all([
          Effect.result(Effect.scoped(connector.connect(healthy.chatId))),
          Effect.result(Effect.scoped(connector.connect(corrupt)))
        ], { concurrency: "unbounded" })
        assert.isTrue(Result.isSuccess(good))
        assert.isTrue(Result.isFailure(bad))
        if (Result.isFailure(bad)) {
          assert.strictEqual(bad.failure._tag, "BindingStoreError")
          assert.include(bad.failure.message, "[\"agent_id\"]")
          assert.include(bad.failure.message, "agent-7")
        }
        for (let i = 0; i < 3; i++) {
          const again = yield* Effect.scoped(connector.connect(healthy.chatId))
          assert.strictEqual(again.outcome, "fast")
          assert.strictEqual((yield* Effect.flip(Effect.scoped(connector.connect(corrupt))))._tag, "BindingStoreError")
        }
        const fresh = yield* store.createChat({ workspaceId: w })
        assert.strictEqual((yield* Effect.scoped(connector.connect(fresh.chatId))).outcome, "lazy_bind")
        // A child of the corrupt chat is refused, and leaves no corrupt copy behind.
        const child = chatId()
        assert.strictEqual(
          (yield* Effect.flip(store.createChild(corrupt, { chatId: child })))._tag,
          "BindingStoreError"
        )
        const copies = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM lazydial_chat_bindings
WHERE chat_id = ${child}`
        assert.strictEqual(copies[0]!.n, 0)
        // Repairing the row by hand (or by a workspace change) heals the chat.
        yield* store.setWorkspace(corrupt, Option.some(w))
        assert.strictEqual((yield* Effect.scoped(connector.connect(corrupt))).outcome, "lazy_bind")
      }).pipe(
        Effect.provide(
          ChatConnector.layer().pipe(
            Layer.provideMerge(LazyDial.layer()),
            Layer.provideMerge(Layer.provideMerge(BindingStore.layerSql(), sqlLayer)),
            Layer.provideMerge(layerTest)
          )
        )
      ),
    120_000
  )

  it.effect(
    "a corrupt build row fails the lookup of its own workspace only, even inside a shared batch",
    () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const directory = yield* AgentDirectory.AgentDirectory
        const good = workspaceId()
        const bad = workspaceId()
        const current = build()
        yield* directory.recordBuild(good, current)
        yield* sql`INSERT INTO lazydial_workspace_builds (workspace_id, build_number, build_id, agent_id, created_at)
VALUES (${bad}, 1, ${build().buildId}, ${"agent-7"}, now())`
        const [answer, failed] = yield* Effect.all([
          directory.current(good),
          Effect.flip(directory.current(bad))
        ], { concurrency: "unbounded" })
        deepStrictEqual(answer, Option.some(current))
        assert.strictEqual(failed._tag, "AgentLookupError")
        assert.strictEqual(failed.workspaceId, bad)
        assert.include(failed.message, "[\"agent_id\"]")
        assert.include(failed.message, "agent-7")
      }).pipe(Effect.provide(Layer.provideMerge(AgentDirectory.layerSql({ batchWindow: 0 }), sqlLayer))),
    120_000
  )
})
