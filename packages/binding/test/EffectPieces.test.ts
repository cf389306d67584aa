/**
 * The Effect 4 pieces binding does not use where it keeps its own, each
 * tested for the behaviour that rules it out (docs/architecture.md, "Hand-built
 * concurrency against Effect 4's pieces"). If a release of Effect changes one
 * of these, its test fails, and the choice should be measured again.
 * (The admission queue's counterpart, `Semaphore` and `Pool`, is tested in
 * `Admission.test.ts`.)
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as PubSub from "effect/PubSub"
import * as RcMap from "effect/RcMap"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import * as SqlResolver from "effect/sql/SqlResolver"
import { chatId, unchecked } from "./fixtures.js"

describe("Effect 4's pieces that binding does not use", () => {
  it.effect("RcMap, for a lookup: it hands a newcomer the value acquired before it, while a holder keeps it (a cache)", () =>
    Effect.gen(function*() {
      // the directory's truth, changed by a rebuild between two lookups
      let current = "agent of build 1"
      const lookups = yield* RcMap.make({ lookup: (_workspace: string) => Effect.sync(() => current) })
      const first = yield* RcMap.get(lookups, "w")
      current = "agent of build 2"
      // a lookup made after the rebuild is answered from before it: the
      // directory's lookups must never be, so binding batches them with
      // RequestResolver instead, which caches nothing
      const second = yield* RcMap.get(lookups, "w")
      deepStrictEqual([first, second], ["agent of build 1", "agent of build 1"])
    }).pipe(Effect.scoped))

  it.effect("PubSub, for the view's pending dials: a subscription per dial keeps every answer published while it waits", () =>
    Effect.gen(function*() {
      // RebuildNotices' hub; a pending dial that subscribed to learn when its
      // build goes stale holds its own copy of the queue until it takes
      const hub = yield* PubSub.sliding<number>(4096)
      const pending = yield* Effect.forEach(Array.from({ length: 100 }), () => PubSub.subscribe(hub))
      for (let answer = 0; answer < 1000; answer++) yield* PubSub.publish(hub, answer)
      for (const subscription of pending) assert.strictEqual(yield* PubSub.remaining(subscription), 1000)
      // so the view keeps one reader fiber, alive while a dial waits, and a set
      // entry per pending dial (bench/turnMemory.ts: a subscription per dial
      // cost 2.9 KB more per pending dial)
    }).pipe(Effect.scoped))
})

layer(PgliteDatabase.layerPglite(), { timeout: "60 seconds" })("Effect 4's SqlResolver", (it) => {
  it.effect("findById decodes a batch's rows together: one row that breaks the schema fails every read of the batch", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const [healthy, broken] = [chatId(), chatId()]
      yield* sql`INSERT INTO lazydial_chat_bindings (chat_id, version, updated_at) VALUES (${healthy}, 1, now())`
      // a version the schema refuses, written as a newer version or a hand might
      yield* unchecked(
        sql`INSERT INTO lazydial_chat_bindings (chat_id, version, updated_at) VALUES (${broken}, -1, now())`
      )
      const resolver = SqlResolver.findById({
        Id: Schema.String,
        Result: Schema.Struct({ chat_id: Schema.String, version: Schema.Int.check(Schema.isGreaterThan(0)) }),
        ResultId: (row) => row.chat_id,
        execute: (ids) => sql`SELECT chat_id, version FROM lazydial_chat_bindings WHERE ${sql.in("chat_id", ids)}`
      })
      const [good, bad] = yield* Effect.all(
        [Effect.exit(SqlResolver.request(healthy, resolver)), Effect.exit(SqlResolver.request(broken, resolver))],
        { concurrency: "unbounded" }
      )
      // the healthy chat's read fails with its neighbour's row: binding's store
      // decodes each row for its own reader, and fails that reader alone
      // (BadInput.test.ts, "a chat row with any text in an id column")
      assert.isTrue(Exit.isFailure(good), "the healthy chat's read succeeded")
      assert.isTrue(Exit.isFailure(bad))
    }))
})
