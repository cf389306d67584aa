/**
 * Who may call what, on the real server (in-process, 127.0.0.1:0): 401
 * without a known token on every route that needs one, 404 for another
 * user's chat or workspace (the body of a missing one), 403 for a
 * non-operator on the control routes, `/health` open, `/ready` and
 * `/metrics` open to loopback only; the route labels of the metrics are
 * templates whatever the path; and the request deadlines.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import type { WorkspaceId } from "@lazydial/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as FileSystem from "effect/FileSystem"
import type * as Etag from "effect/http/Etag"
import type * as HttpPlatform from "effect/http/HttpPlatform"
import * as HttpRouter from "effect/http/HttpRouter"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Path from "effect/Path"
import type * as SqlClient from "effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import type { AgentAddresses } from "../src/AgentAddresses.js"
import * as Auth from "../src/Auth.js"
import type { ChatOwners } from "../src/ChatOwners.js"
import type { Chats } from "../src/Chats.js"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"
import * as Users from "./users.js"

const TestLayer = Users.serverLayer({ headersTimeout: "400 millis", requestTimeout: "800 millis" })

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: any
}

type As = Users.Name | "nobody" | "unknown"

const send = (as: As, method: string, path: string, body?: unknown) =>
  Effect.flatMap(Server.baseUrl, (url) =>
    Effect.promise(async (): Promise<Answer> => {
      const headers: Record<string, string> = body === undefined ? {} : { "content-type": "application/json" }
      if (as === "unknown") headers["authorization"] = "Bearer not-a-token-of-the-file-0123456789"
      else if (as !== "nobody") Object.assign(headers, Users.bearer(as))
      const response = await fetch(url + path, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(20_000)
      })
      const text = await response.text()
      let json: unknown = undefined
      try {
        json = JSON.parse(text)
      } catch {
        // not JSON: the test looks at text
      }
      return { status: response.status, headers: response.headers, text, json }
    }))

const newWorkspaceId = () => randomUUID() as WorkspaceId

/** alice's running workspace with a bound chat, bob's running workspace, and a stopped one of alice's. */
const world = Effect.gen(function*() {
  const aliceWorkspace = newWorkspaceId()
  const bobWorkspace = newWorkspaceId()
  const stopped = newWorkspaceId()
  yield* ControlPlane.startWorkspace(aliceWorkspace, "alice")
  yield* ControlPlane.startWorkspace(bobWorkspace, "bob")
  yield* ControlPlane.startWorkspace(stopped, "alice")
  yield* ControlPlane.stop(stopped, "die")
  const chat = yield* send("alice", "POST", "/chats", { workspace_id: aliceWorkspace })
  expect(chat.status).toBe(201)
  const chatId = chat.json.chat_id as string
  expect((yield* send("alice", "POST", `/chats/${chatId}/turns`, { message: "bind" })).status).toBe(200)
  return { aliceWorkspace, bobWorkspace, stopped, chatId }
})

/** One request of each route that needs a user, for `chatId` and `workspaceId`. */
const userRoutes = (chatId: string, workspaceId: string) =>
  [
    ["POST", "/chats", { workspace_id: workspaceId }],
    ["GET", `/chats/${chatId}`, undefined],
    ["PUT", `/chats/${chatId}/workspace`, { workspace_id: workspaceId }],
    ["POST", `/chats/${chatId}/children`, undefined],
    ["POST", `/chats/${chatId}/turns`, { message: "hi" }],
    ["GET", "/workspaces", undefined],
    ["POST", `/workspaces/${workspaceId}/rebuild`, { mode: "die" }],
    ["POST", `/workspaces/${workspaceId}/stop`, { mode: "die" }],
    ["POST", `/workspaces/${workspaceId}/start`, undefined]
  ] as const

// the same body whatever the id: a chat of another user reads as a missing one
const withoutId = (answer: Answer, id: string) => answer.text.replaceAll(id, "<id>")

layer(TestLayer, { timeout: 60_000, excludeTestServices: true })("who may call what", (it) => {
  it.effect(
    "no token, or a token not in the file: 401 Unauthorized on every route that needs a user",
    () =>
      Effect.gen(function*() {
        const { aliceWorkspace, chatId } = yield* world
        for (const as of ["nobody", "unknown"] as const) {
          for (const [method, path, body] of userRoutes(chatId, aliceWorkspace)) {
            const answer = yield* send(as, method, path, body)
            expect([as, method, path, answer.status]).toEqual([as, method, path, 401])
            expect(answer.headers.get("www-authenticate")).toBe("Bearer")
            expect(answer.json).toEqual({
              _tag: "Unauthorized",
              message: "send Authorization: Bearer <token>, with a token of the server's token file (--token-auth-file)"
            })
          }
        }
        // a bad id is refused as unauthenticated first: nothing about the route is decoded for a stranger
        expect((yield* send("nobody", "GET", "/chats/not-a-uuid")).status).toBe(401)
        // the chat did not change
        const after = yield* send("alice", "GET", `/chats/${chatId}`)
        expect(after.json.workspace_id).toBe(aliceWorkspace)
      }),
    30_000
  )

  it.effect(
    "/health, /openapi.json and /docs are open; /ready and /metrics are open to a loopback connection",
    () =>
      Effect.gen(function*() {
        for (const path of ["/health", "/openapi.json", "/docs", "/ready", "/metrics"]) {
          const answer = yield* send("nobody", "GET", path)
          expect([path, answer.status]).toEqual([path, 200])
        }
        // with an unknown token, a loopback connection is still let in: the address decides there
        expect((yield* send("unknown", "GET", "/metrics")).status).toBe(200)
      }),
    30_000
  )

  it.effect(
    "another user's chat is a 404 with the body of a missing chat, on every chat route",
    () =>
      Effect.gen(function*() {
        const { bobWorkspace, chatId } = yield* world
        const missing = randomUUID()
        const routes = [
          ["GET", "", undefined],
          ["PUT", "/workspace", { workspace_id: bobWorkspace }],
          ["POST", "/children", undefined],
          ["POST", "/turns", { message: "hi" }]
        ] as const
        for (const [method, suffix, body] of routes) {
          const stranger = yield* send("bob", method, `/chats/${chatId}${suffix}`, body)
          const none = yield* send("bob", method, `/chats/${missing}${suffix}`, body)
          expect([method, suffix, stranger.status]).toEqual([method, suffix, 404])
          expect(stranger.json._tag).toBe("ChatNotFound")
          expect(withoutId(stranger, chatId)).toBe(withoutId(none, missing))
        }
        // the operator is no owner either
        expect((yield* send("ops", "GET", `/chats/${chatId}`)).status).toBe(404)
        // and alice's chat is as she left it
        const mine = yield* send("alice", "GET", `/chats/${chatId}`)
        expect(mine.status).toBe(200)
        expect(mine.json.workspace_id).not.toBe(bobWorkspace)
      }),
    30_000
  )

  it.effect("a child belongs to the user who spawned it, and is another user's 404", () =>
    Effect.gen(function*() {
      const { chatId } = yield* world
      const child = yield* send("alice", "POST", `/chats/${chatId}/children`)
      expect(child.status).toBe(201)
      expect((yield* send("alice", "GET", `/chats/${child.json.chat_id}`)).status).toBe(200)
      expect((yield* send("bob", "GET", `/chats/${child.json.chat_id}`)).status).toBe(404)
    }), 30_000)

  it.effect(
    "another user's workspace, or one that does not exist, is a 404 WorkspaceNotFound: no chat is created on it or moved to it",
    () =>
      Effect.gen(function*() {
        const { aliceWorkspace, bobWorkspace, chatId } = yield* world
        const missing = randomUUID()
        const foreign = yield* send("alice", "POST", "/chats", { workspace_id: bobWorkspace })
        const none = yield* send("alice", "POST", "/chats", { workspace_id: missing })
        expect(foreign.status).toBe(404)
        expect(foreign.json._tag).toBe("WorkspaceNotFound")
        expect(withoutId(foreign, bobWorkspace)).toBe(withoutId(none, missing))
        const moved = yield* send("alice", "PUT", `/chats/${chatId}/workspace`, { workspace_id: bobWorkspace })
        expect(moved.status).toBe(404)
        expect(withoutId(moved, bobWorkspace)).toBe(
          withoutId(yield* send("alice", "PUT", `/chats/${chatId}/workspace`, { workspace_id: missing }), missing)
        )
        expect((yield* send("alice", "GET", `/chats/${chatId}`)).json.workspace_id).toBe(aliceWorkspace)
        // a chat with no workspace, and one on a workspace of one's own, are created
        expect((yield* send("bob", "POST", "/chats", {})).status).toBe(201)
        expect((yield* send("bob", "POST", "/chats", { workspace_id: bobWorkspace })).status).toBe(201)
      }),
    30_000
  )

  it.effect("GET /workspaces lists the caller's own workspaces only", () =>
    Effect.gen(function*() {
      const { aliceWorkspace, bobWorkspace, stopped } = yield* world
      const alice = (yield* send("alice", "GET", "/workspaces")).json as Array<{ workspace_id: string }>
      const bob = (yield* send("bob", "GET", "/workspaces")).json as Array<{ workspace_id: string }>
      const ids = (list: Array<{ workspace_id: string }>) => list.map((w) => w.workspace_id)
      expect(ids(alice)).toEqual(expect.arrayContaining([aliceWorkspace, stopped]))
      expect(ids(alice)).not.toContain(bobWorkspace)
      expect(ids(bob)).toContain(bobWorkspace)
      expect(ids(bob)).not.toContain(aliceWorkspace)
    }), 30_000)

  it.effect(
    "the control routes need the group operators: 403 Forbidden for the owner and for other groups",
    () =>
      Effect.gen(function*() {
        const { aliceWorkspace, stopped } = yield* world
        for (const as of ["alice", "bob"] as const) {
          for (const [path, body] of [["rebuild", { mode: "die" }], ["stop", { mode: "die" }]] as const) {
            const answer = yield* send(as, "POST", `/workspaces/${aliceWorkspace}/${path}`, body)
            expect([as, path, answer.status, answer.json._tag]).toEqual([as, path, 403, "Forbidden"])
          }
          const start = yield* send(as, "POST", `/workspaces/${stopped}/start`)
          expect([as, start.status]).toEqual([as, 403])
        }
        // nothing changed: alice's workspace runs, the stopped one is stopped
        const listed = (yield* send("alice", "GET", "/workspaces")).json as Array<
          { workspace_id: string; agent_id: string | null }
        >
        expect(listed.find((w) => w.workspace_id === aliceWorkspace)?.agent_id).not.toBeNull()
        expect(listed.find((w) => w.workspace_id === stopped)?.agent_id).toBeNull()
      }),
    30_000
  )

  it.effect(
    "an operator: a rebuild of a stopped workspace is a 409 that says to start it; a start of a running one is a 409; start, then rebuild, work",
    () =>
      Effect.gen(function*() {
        const { aliceWorkspace, chatId, stopped } = yield* world
        const rebuildStopped = yield* send("ops", "POST", `/workspaces/${stopped}/rebuild`, { mode: "die" })
        expect(rebuildStopped.status).toBe(409)
        expect(rebuildStopped.json).toMatchObject({ _tag: "WorkspaceStopped", workspace_id: stopped })
        expect(rebuildStopped.json.message).toContain(`start it first (POST /workspaces/${stopped}/start)`)
        const startRunning = yield* send("ops", "POST", `/workspaces/${aliceWorkspace}/start`)
        expect(startRunning.status).toBe(409)
        expect(startRunning.json._tag).toBe("WorkspaceRunning")
        const started = yield* send("ops", "POST", `/workspaces/${stopped}/start`)
        expect(started.status).toBe(200)
        expect(started.json.agent_id).not.toBeNull()
        const rebuilt = yield* send("ops", "POST", `/workspaces/${stopped}/rebuild`, { mode: "die" })
        expect(rebuilt.status).toBe(200)
        expect(rebuilt.json.agent_id).not.toBe(started.json.agent_id)
        // a chat on the started workspace turns on its agent
        const chat = yield* send("alice", "PUT", `/chats/${chatId}/workspace`, { workspace_id: stopped })
        expect(chat.status).toBe(200)
        const turn = yield* send("alice", "POST", `/chats/${chatId}/turns`, { message: "hi" })
        expect(turn.json.agent_id).toBe(rebuilt.json.agent_id)
        for (const path of ["rebuild", "stop", "start"]) {
          const missing = yield* send(
            "ops",
            "POST",
            `/workspaces/${randomUUID()}/${path}`,
            path === "start" ? undefined : { mode: "die" }
          )
          expect([path, missing.status, missing.json._tag]).toEqual([path, 404, "WorkspaceNotFound"])
        }
      }),
    30_000
  )

  it.effect(
    "metrics are labelled by route template: 400 bad-id requests add no label value, and the text does not grow",
    () =>
      Effect.gen(function*() {
        const { chatId } = yield* world
        const junk = (i: number) =>
          [
            ["GET", `/chats/bad-id-${i}`, undefined],
            ["POST", `/chats/${i}-nope/turns`, { message: "x" }],
            ["PUT", `/chats/x${i}/workspace`, { workspace_id: null }],
            ["POST", `/workspaces/w-${i}/rebuild`, { mode: "die" }],
            ["GET", `/no/such/route/${i}`, undefined],
            ["DELETE", `/chats/${chatId}`, undefined]
          ] as const
        const round = (from: number, as: As) =>
          Effect.forEach(Array.from({ length: 20 }, (_, i) => from + i), (i) =>
            Effect.forEach(junk(i), ([method, path, body]) => send(as, method, path, body), { discard: true }), {
            discard: true,
            concurrency: 4
          })
        // every status and route once, with and without a token, so that their series exist
        yield* round(0, "alice")
        yield* round(100, "nobody")
        const before = (yield* send("nobody", "GET", "/metrics")).text
        yield* round(1000, "alice")
        yield* round(2000, "nobody")
        const after = (yield* send("nobody", "GET", "/metrics")).text
        const routes = new Set(Array.from(after.matchAll(/^http_requests_total\{[^}]*route="([^"]*)"/gm), (m) =>
          m[1]))
        expect([...routes].sort()).toEqual(
          expect.arrayContaining(["/chats/:chat_id", "/chats/:chat_id/turns", "unmatched"])
        )
        for (const route of routes) {
          expect(route).toMatch(/^(\/[a-z._]+|\/:[a-z_]+)+$|^unmatched$/)
        }
        expect(after).not.toMatch(/bad-id|nope|\/no\/such/)
        // the same series, only their numbers grew
        const series = (text: string) =>
          text.split("\n").filter((line) =>
            line.startsWith("http_request")
          ).map((line) => line.replace(/ [^ ]+$/, ""))
        expect(series(after)).toEqual(series(before))
        expect(after.length - before.length).toBeLessThan(500)
      }),
    60_000
  )
})

describe("a server that cannot start as configured", () => {
  it.effect(
    "with no authentication given, or headers' deadline longer than the request's, it does not start",
    () =>
      Effect.gen(function*() {
        const service = Service.layer(
          { validationDelay: "500 millis", dialTimeout: "5 seconds", notices: false },
          Service.makeCounters()
        ).pipe(Layer.provideMerge(Service.layerDatabase(undefined)))
        const start = (options: Server.ListenOptions) =>
          Effect.flip(Layer.build(Server.layer(options).pipe(Layer.provide(service)))).pipe(Effect.scoped)
        const unauthenticated = yield* start({ port: 0 })
        expect(unauthenticated.message).toContain("the HTTP server was given no authentication")
        expect(unauthenticated.message).toContain("--token-auth-file PATH or LAZYDIAL_TOKEN_AUTH_FILE")
        const contradiction = yield* start({
          port: 0,
          authentication: Users.authentication,
          headersTimeout: "2 seconds",
          requestTimeout: "1 second"
        })
        expect(contradiction.message).toContain("the headers' deadline (2000 ms")
        // the Authentication of the context serves too
        const fromContext = yield* Layer.build(
          Server.layer(0).pipe(Layer.provide(service), Layer.provide(Layer.succeed(Auth.Authentication)(Auth.disabled)))
        ).pipe(Effect.asVoid, Effect.scoped, Effect.exit)
        expect(fromContext._tag).toBe("Success")
      }),
    60_000
  )
})

describe("loopback, judged on the socket's address", () => {
  it("127.0.0.0/8, ::1 and ::ffff:127.x are loopback; other addresses, and none, are not", () => {
    for (const address of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::FFFF:127.0.0.9"]) {
      expect([address, Server.isLoopback(Option.some(address))]).toEqual([address, true])
    }
    for (
      const address of [
        "10.0.0.1",
        "192.168.1.127",
        "::ffff:10.0.0.1",
        "::2",
        "fe80::1",
        "1127.0.0.1",
        "127.0.0.1.evil"
      ]
    ) {
      expect([address, Server.isLoopback(Option.some(address))]).toEqual([address, false])
    }
    expect(Server.isLoopback(Option.none())).toBe(false)
  })

  layer(TestLayer, { timeout: 60_000, excludeTestServices: true })(
    "a request with no remote address (not loopback)",
    (it) => {
      it.effect(
        "/ready and /metrics need a token there (401 without, 200 with); /health does not",
        () =>
          Effect.gen(function*() {
            // the test server's services, less its router (the web handler has its own)
            const context = Context.omit(HttpRouter.HttpRouter)(
              yield* Effect.context<
                | SqlClient.SqlClient
                | Chats
                | ChatOwners
                | AgentAddresses
                | ControlPlane.ControlPlane
                | FileSystem.FileSystem
                | Path.Path
                | Etag.Generator
                | HttpPlatform.HttpPlatform
              >()
            )
            const app = Server.layerApi.pipe(
              Layer.provide(Layer.succeed(Auth.Authentication)(Users.authentication)),
              Layer.provide(Layer.succeedContext(context))
            )
            const { dispose, handler } = HttpRouter.toWebHandler(app, { disableLogger: true })
            const call = (path: string, headers: Record<string, string> = {}) =>
              Effect.promise(() =>
                handler(new Request(`http://lazydial.test${path}`, { headers })).then((r) => r.status)
              )
            expect(yield* call("/health")).toBe(200)
            for (const path of ["/ready", "/metrics"]) {
              expect([path, yield* call(path)]).toEqual([path, 401])
              expect([path, yield* call(path, { authorization: "Bearer not-a-token-of-the-file-01234" })]).toEqual([
                path,
                401
              ])
              expect([path, yield* call(path, Users.bearer("bob"))]).toEqual([path, 200])
            }
            yield* Effect.promise(dispose)
          }),
        30_000
      )
    }
  )
})
