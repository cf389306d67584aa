import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { BindingStore, Database } from "@lazydial/binding"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { workspaceId } from "./fixtures.js"

describe("Database", () => {
  it.effect(
    "PGlite in a dataDir keeps bindings across restarts; layerConfig picks it without a database URL",
    () =>
      Effect.gen(function*() {
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lazydial-pglite-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dataDir, { recursive: true, force: true })))
        const created = yield* Effect.flatMap(
          BindingStore.BindingStore,
          (store) => store.createChat({ workspaceId: workspaceId() })
        ).pipe(
          Effect.provide(BindingStore.layerSql.pipe(Layer.provide(Database.layerPglite({ dataDir }))))
        )
        const reread = yield* Effect.flatMap(BindingStore.BindingStore, (store) => store.get(created.chatId)).pipe(
          Effect.provide(BindingStore.layerSql.pipe(Layer.provide(Database.layerConfig))),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["LAZYDIAL_DATA_DIR", dataDir]])))
        )
        assert.deepStrictEqual(reread, created)
      }).pipe(Effect.scoped),
    120_000
  )

  it.effect(
    "PGlite keeps a transaction's statements apart from other fibers' statements",
    () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`CREATE TABLE counter (n integer NOT NULL)`
        yield* sql`INSERT INTO counter VALUES (0)`
        // Each transaction reads, then writes read+1: interleaved statements would lose increments.
        const increment = sql.withTransaction(
          Effect.gen(function*() {
            const rows = yield* sql<{ readonly n: number }>`SELECT n FROM counter`
            yield* Effect.yieldNow()
            yield* sql`UPDATE counter SET n = ${rows[0]!.n + 1}`
          })
        )
        yield* Effect.all(Array.from({ length: 20 }, () => increment), { concurrency: "unbounded" })
        const rows = yield* sql<{ readonly n: number }>`SELECT n FROM counter`
        assert.strictEqual(rows[0]!.n, 20)
        const failed = yield* Effect.either(
          sql.withTransaction(Effect.zipRight(sql`UPDATE counter SET n = 100`, Effect.fail("rolled back")))
        )
        assert.isTrue(failed._tag === "Left")
        assert.strictEqual((yield* sql<{ readonly n: number }>`SELECT n FROM counter`)[0]!.n, 20)
      }).pipe(Effect.provide(Database.layerPglite())),
    120_000
  )
})
