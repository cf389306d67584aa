/**
 * How a service wires the binding package: typechecked with the package
 * (`pnpm exec tsc -p tsconfig.json`), so the Layer recipes in docs/binding.md
 * stay true.
 */
import { AgentDirectory, BindingStore, ChatConnector, Database, RebuildNotices } from "@lazydial/binding"
import * as DatabaseConfig from "@lazydial/binding/DatabaseConfig"
import type { AgentDialer, ChatId } from "@lazydial/core"
import { LazyDial, Options, SharedConnections } from "@lazydial/core"
import { layerTest } from "@lazydial/core/testing"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

declare const AgentDialerLive: Layer.Layer<AgentDialer.AgentDialer>

/**
 * Configuration, with names this program picks: binding reads no variable of
 * its own. Each setting is range-checked as it is read (a bad value is a
 * `ConfigError` naming the variable), and an unset one means the default.
 */
const connectorConfig = {
  dialTimeout: Options.optional(
    Options.durationConfig("APP_DIAL_TIMEOUT", { max: ChatConnector.maxDialTimeout, allowZero: false })
  ),
  maxInFlight: Options.optional(
    Options.numberConfig("APP_MAX_IN_FLIGHT", { min: 1, max: ChatConnector.maxMaxInFlight, integer: true })
  )
}
const lazyDialConfig = { delay: Options.optional(LazyDial.delayConfig("APP_VALIDATION_DELAY")) }
const directoryConfig = {
  batchWindow: Options.optional(
    Options.durationConfig("APP_LOOKUP_BATCH_WINDOW", { max: AgentDirectory.maxBatchWindow })
  )
}
/** PostgreSQL when APP_DATABASE_URL is set, PGlite otherwise. */
const databaseConfig = {
  url: Options.optional(Database.urlConfig("APP_DATABASE_URL")),
  dataDir: Options.optional(Config.String("APP_DATA_DIR")),
  queryDeadline: Options.optional(
    Options.durationConfig("APP_DB_QUERY_DEADLINE", { max: Database.maxima.queryDeadline, allowZero: false })
  )
}

/** Production: everything from config. */
export const Production = ChatConnector.layerConfig(connectorConfig).pipe(
  Layer.provideMerge(LazyDial.layerConfig(lazyDialConfig)),
  Layer.provideMerge(Layer.merge(BindingStore.layerSql(), AgentDirectory.layerSqlConfig(directoryConfig))),
  Layer.provideMerge(AgentDialerLive),
  Layer.provide(DatabaseConfig.layerConfig(databaseConfig))
)

/**
 * Production with rebuild notices: the directory and the connector both see
 * `RebuildNotices`, so lookups feed the view and turns skip the wait after a
 * rebuild. One database Layer, shared (a Layer is built once).
 */
export const ProductionWithNotices = ChatConnector.layerConfig(connectorConfig).pipe(
  Layer.provideMerge(LazyDial.layerConfig(lazyDialConfig)),
  Layer.provideMerge(Layer.merge(BindingStore.layerSql(), AgentDirectory.layerSqlConfig(directoryConfig))),
  Layer.provideMerge(Layer.merge(RebuildNotices.layerSql, AgentDialerLive)),
  Layer.provide(DatabaseConfig.layerConfig(databaseConfig))
)

/**
 * With connections shared across turns: core's `SharedConnections` over the
 * dialer, under `LazyDial` and in the connector's context, so that the view
 * drops the connection of an agent the directory retires. The probe is the
 * agent protocol's cheapest round trip (the service's is a ping).
 */
export const ProductionShared = ChatConnector.layerConfig(connectorConfig).pipe(
  Layer.provideMerge(LazyDial.layerConfig(lazyDialConfig)),
  Layer.provideMerge(
    SharedConnections.layer({ probe: (connection) => connection.exchange("ping"), idleTimeToLive: "1 minute" })
  ),
  Layer.provideMerge(Layer.merge(BindingStore.layerSql(), AgentDirectory.layerSqlConfig(directoryConfig))),
  Layer.provideMerge(Layer.merge(RebuildNotices.layerSql, AgentDialerLive)),
  Layer.provide(DatabaseConfig.layerConfig(databaseConfig))
)

/** Tests: scripted agents on the Effect clock, bindings in memory. */
export const Test = ChatConnector.layer().pipe(
  Layer.provideMerge(LazyDial.layer({ delay: "5 seconds" })),
  Layer.provideMerge(BindingStore.layerMemory),
  Layer.provideMerge(layerTest)
)

/** One turn: connect, talk, and release the connection when the turn's Scope closes. */
export const turn = (chatId: ChatId, request: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const connector = yield* ChatConnector.ChatConnector
      const chat = yield* connector.connect(chatId)
      return yield* chat.connection.exchange(request)
    })
  )

export const program = (chatId: ChatId) => turn(chatId, "hello").pipe(Effect.provide(Production))
