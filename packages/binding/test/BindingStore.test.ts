import { BindingStore, Database } from "@lazydial/binding"
import * as Layer from "effect/Layer"
import { onPostgres } from "./fixtures.js"
import { storeContract } from "./storeContract.js"

storeContract("memory", BindingStore.layerMemory)

storeContract("PGlite", BindingStore.layerSql.pipe(Layer.provide(Database.layerPglite())))

onPostgres(
  "BindingStore contract: PostgreSQL",
  (databaseUrl) => storeContract("PostgreSQL", BindingStore.layerSql.pipe(Layer.provide(Database.layerPg(databaseUrl))))
)
