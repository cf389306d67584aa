import { BindingStore } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import * as Layer from "effect/Layer"
import { onPostgres } from "./fixtures.js"
import { storeContract } from "./storeContract.js"

storeContract("memory", BindingStore.layerMemory)

storeContract("PGlite", BindingStore.layerSql.pipe(Layer.provide(PgliteDatabase.layerPglite())))

onPostgres(
  "BindingStore contract: PostgreSQL",
  (databaseUrl) =>
    storeContract("PostgreSQL", BindingStore.layerSql.pipe(Layer.provide(PgDatabase.layerPg(databaseUrl))))
)
