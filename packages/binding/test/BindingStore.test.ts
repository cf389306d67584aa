import { describe, it } from "@effect/vitest"
import { BindingStore, Database } from "@lazydial/binding"
import * as Layer from "effect/Layer"
import { storeContract } from "./storeContract.js"

const databaseUrl = process.env["LAZYDIAL_TEST_DATABASE_URL"]

storeContract("memory", BindingStore.layerMemory)

storeContract("PGlite", BindingStore.layerSql.pipe(Layer.provide(Database.layerPglite())))

if (databaseUrl !== undefined && databaseUrl !== "") {
  storeContract("PostgreSQL", BindingStore.layerSql.pipe(Layer.provide(Database.layerPg(databaseUrl))))
} else {
  describe("BindingStore contract: PostgreSQL", () => {
    it("is not run: set LAZYDIAL_TEST_DATABASE_URL (scripts/test-postgres.sh does)", () => {
      console.warn(
        "PostgreSQL suite not run: set LAZYDIAL_TEST_DATABASE_URL, or run packages/binding/scripts/test-postgres.sh"
      )
    })
  })
}
