/**
 * How a service wires the binding package: typechecked with the package
 * (`pnpm exec tsc -p tsconfig.json`), so the Layer recipes in docs/binding.md
 * stay true.
 */
import { AgentDirectory, BindingStore, ChatConnector, RebuildNotices } from "@lazydial/binding"
import * as DatabaseConfig from "@lazydial/binding/DatabaseConfig"
import type { AgentDialer, ChatId } from "@lazydial/core"
import { LazyDial } from "@lazydial/core"
import { layerTest } from "@lazydial/core/testing"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

declare const AgentDialerLive: Layer.Layer<AgentDialer.AgentDialer>

/** Production: PostgreSQL when LAZYDIAL_DATABASE_URL is set, PGlite otherwise; everything from config. */
export const Production = ChatConnector.layerConfig.pipe(
  Layer.provideMerge(LazyDial.layerConfig),
  Layer.provideMerge(Layer.merge(BindingStore.layerSql, AgentDirectory.layerSqlConfig)),
  Layer.provideMerge(AgentDialerLive),
  Layer.provide(DatabaseConfig.layerConfig)
)

/**
 * Production with rebuild notices: the directory and the connector both see
 * `RebuildNotices`, so lookups feed the view and turns skip the wait after a
 * rebuild. One database Layer, shared (a Layer is built once).
 */
export const ProductionWithNotices = ChatConnector.layerConfig.pipe(
  Layer.provideMerge(LazyDial.layerConfig),
  Layer.provideMerge(Layer.merge(BindingStore.layerSql, AgentDirectory.layerSqlConfig)),
  Layer.provideMerge(Layer.merge(RebuildNotices.layerSql, AgentDialerLive)),
  Layer.provide(DatabaseConfig.layerConfig)
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
