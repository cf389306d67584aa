/**
 * The contract: GET /openapi.json of the real server (in-process,
 * 127.0.0.1:0) is a valid OpenAPI document (a maintained validator says so),
 * and a client generated from it alone (openapi-typescript's types,
 * openapi-fetch) typechecks and calls the server from another process: no
 * Effect, no import of this package.
 */
import { expect, layer } from "@effect/vitest"
import { validate } from "@readme/openapi-parser"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { execFile } from "node:child_process"
import { mkdir, writeFile } from "node:fs/promises"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import openapiTS, { astToString } from "openapi-typescript"
import { bindingStates, connectOutcomes } from "../src/Chats.js"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"
import * as Users from "./users.js"

const TestLayer = Server.layer({ port: 0, authentication: Users.authentication }).pipe(
  Layer.provideMerge(
    Service.layer({ validationDelay: "500 millis", dialTimeout: "5 seconds" }, Service.makeCounters())
  ),
  Layer.provide(Service.layerDatabase(undefined))
)

const openapi = Effect.flatMap(
  Server.baseUrl,
  (url) => Effect.promise(async () => (await fetch(`${url}/openapi.json`)).json() as Promise<Record<string, unknown>>)
)

// under node_modules: resolves openapi-fetch from the package, and lint and git ignore it
const dir = fileURLToPath(new URL("../node_modules/.cache/openapi-client/", import.meta.url))
const require = createRequire(import.meta.url)
const run = promisify(execFile)

// a client a non-Effect user would write against the generated types; the outcome of a turn is a union of exactly
// the service's outcome names (every one a key, no other), and not any string; a read chat's binding likewise
const client = `import createClient from "openapi-fetch"
import type { components, paths } from "./api.js"

type Outcome = components["schemas"]["TurnResult"]["outcome"]
export const everyOutcome: Record<Outcome, true> = ${
  JSON.stringify(Object.fromEntries(connectOutcomes.map((name) => [name, true])))
}
// @ts-expect-error: an outcome is one of the names, never any string
export const notAnOutcome: Outcome = "not_an_outcome"

type Binding = components["schemas"]["ChatRead"]["binding"]
export const everyBinding: Record<Binding, true> = ${
  JSON.stringify(Object.fromEntries(bindingStates.map((name) => [name, true])))
}
// @ts-expect-error: a binding state is one of the names, never any string
export const notABinding: Binding = "not_a_state"

const client = createClient<paths>({
  baseUrl: process.argv[2],
  headers: { authorization: "Bearer " + process.argv[3] }
})
const created = await client.POST("/chats", { body: {} })
if (created.data === undefined) throw new Error("create failed: " + created.response.status)
const chatId: string = created.data.chat_id
const got = await client.GET("/chats/{chat_id}", { params: { path: { chat_id: chatId.toUpperCase() } } })
const bad = await client.PUT("/chats/{chat_id}/workspace", {
  params: { path: { chat_id: chatId } },
  body: { workspace_id: "nope" }
})
console.log(JSON.stringify({
  created: created.response.status,
  chatId,
  got: got.data?.chat_id ?? null,
  bad: bad.response.status,
  badMessage: bad.error?.message ?? null
}))
`

layer(TestLayer, { timeout: 120_000, excludeTestServices: true })("the OpenAPI contract", (it) => {
  it.effect("GET /openapi.json is a valid OpenAPI document with every route", () =>
    Effect.gen(function*() {
      const document = yield* openapi
      const result = yield* Effect.promise(() =>
        validate(
          // safe: the validator's parameter type is the document it checks; checking it is the test
          document as Parameters<typeof validate>[0]
        )
      )
      expect(result.valid ? [] : result.errors).toEqual([])
      expect(result.specification).toBe("OpenAPI")
      expect(Object.keys(document.paths as object).sort()).toEqual([
        "/chats",
        "/chats/{chat_id}",
        "/chats/{chat_id}/children",
        "/chats/{chat_id}/turns",
        "/chats/{chat_id}/workspace",
        "/health",
        "/metrics",
        "/ready",
        "/workspaces",
        "/workspaces/{workspace_id}/rebuild",
        "/workspaces/{workspace_id}/start",
        "/workspaces/{workspace_id}/stop"
      ])
      // a turn's outcome is the service's literal union (binding's TurnOutcome and "direct"), not a string
      const schemas = (document.components as { schemas: Record<string, { properties: Record<string, unknown> }> })
        .schemas
      expect(schemas["TurnResult"]!.properties["outcome"]).toEqual({ type: "string", enum: [...connectOutcomes] })
      // so is a read chat's `binding`: binding's BindingState, with its description
      expect(schemas["ChatRead"]!.properties["binding"]).toMatchObject({ type: "string", enum: [...bindingStates] })
    }), 60_000)

  it.effect(
    "the document declares the bearer scheme, on every route but /health (and says who gets 401 and 403)",
    () =>
      Effect.gen(function*() {
        const document = (yield* openapi) as {
          components: { securitySchemes: Record<string, unknown> }
          paths: Record<string, Record<string, { security?: Array<unknown>; responses: Record<string, unknown> }>>
        }
        expect(document.components.securitySchemes["bearer"]).toMatchObject({ type: "http", scheme: "Bearer" })
        for (const [path, operations] of Object.entries(document.paths)) {
          for (const [method, operation] of Object.entries(operations)) {
            const open = path === "/health"
            expect([method, path, operation.security]).toEqual([method, path, open ? [] : [{ bearer: [] }]])
            expect([method, path, "401" in operation.responses]).toEqual([method, path, !open])
            expect([method, path, "403" in operation.responses]).toEqual([
              method,
              path,
              /\/workspaces\/\{workspace_id\}\//.test(path)
            ])
          }
        }
      }),
    60_000
  )

  it.effect(
    "a client generated from the document typechecks and calls the server from another process",
    () =>
      Effect.gen(function*() {
        const document = yield* openapi
        const url = yield* Server.baseUrl
        const output = yield* Effect.promise(async () => {
          const types = astToString(await openapiTS(JSON.parse(JSON.stringify(document))))
          await mkdir(dir, { recursive: true })
          await writeFile(`${dir}package.json`, JSON.stringify({ type: "module" }))
          await writeFile(`${dir}api.ts`, types)
          await writeFile(`${dir}client.ts`, client)
          const tsc = require.resolve("typescript/bin/tsc")
          await run(process.execPath, [
            tsc,
            "--noEmit",
            "--strict",
            "--skipLibCheck",
            "--target",
            "es2022",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            `${dir}client.ts`
          ], { timeout: 60_000 })
          const { stdout } = await run(process.execPath, [
            "--import",
            "tsx",
            `${dir}client.ts`,
            url,
            Users.tokens.alice
          ], {
            timeout: 30_000,
            cwd: dir
          })
          return JSON.parse(stdout) as {
            created: number
            chatId: string
            got: string | null
            bad: number
            badMessage: string | null
          }
        })
        expect(output.created).toBe(201)
        expect(output.got).toBe(output.chatId)
        expect(output.bad).toBe(400)
        expect(output.badMessage).toContain("workspace_id: Expected a workspace's id (a UUID)")
      }),
    120_000
  )
})
