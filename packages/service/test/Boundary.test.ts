/**
 * The HTTP boundary against the real server (in-process, 127.0.0.1:0): each
 * row of the bad-input table is a test, plus /metrics, /openapi.json, /docs
 * and the trace context of incoming requests.
 */
import { expect, layer } from "@effect/vitest"
import type { WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { randomUUID } from "node:crypto"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"
import * as Users from "./users.js"

// every span the server starts, through the default tracer
const spans: Array<Tracer.Span> = []
const layerRecordingTracer = Layer.succeed(Tracer.Tracer)(Tracer.make({
  span: (options) => {
    const span = Tracer.nativeTracer.span(options)
    spans.push(span)
    return span
  }
}))

const TestLayer = Server.layer({ port: 0, authentication: Users.authentication }).pipe(
  Layer.provideMerge(
    Service.layer({ validationDelay: "500 millis", dialTimeout: "5 seconds" }, Service.makeCounters())
  ),
  // merged: the second server of the 10 MB message test needs the database too
  Layer.provideMerge(Service.layerDatabase(undefined)),
  Layer.provide(layerRecordingTracer)
)

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly json: any
}

// as alice, unless the request says otherwise
const send = (path: string, init: RequestInit = {}) =>
  Effect.flatMap(Server.baseUrl, (url) =>
    Effect.promise(async (): Promise<Answer> => {
      const response = await fetch(url + path, {
        ...init,
        headers: { ...Users.bearer("alice"), ...(init.headers as Record<string, string> | undefined) }
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

const postJson = (path: string, body: string) =>
  send(path, { method: "POST", headers: { "content-type": "application/json" }, body })

const newChat = Effect.map(postJson("/chats", "{}"), (answer) => answer.json.chat_id as string)

layer(TestLayer, { timeout: 60_000, excludeTestServices: true })("the HTTP boundary", (it) => {
  it.effect(
    "malformed JSON, or a UTF-8 BOM before {}, is a 400 that says the JSON is malformed",
    () =>
      Effect.gen(function*() {
        for (const body of ["{", "\uFEFF{}"]) {
          const answer = yield* postJson("/chats", body)
          expect(answer.status).toBe(400)
          expect(answer.json).toMatchObject({ _tag: "MalformedJson" })
          expect(answer.json.message).toMatch(/not valid JSON/)
        }
      }),
    30_000
  )

  it.effect("JSON nested 5,000 deep is a 400", () =>
    Effect.gen(function*() {
      const answer = yield* postJson("/chats", "[".repeat(5000) + "]".repeat(5000))
      expect(answer.status).toBe(400)
      expect(answer.json.message).toMatch(/nests deeper than 32/)
    }), 30_000)

  it.effect(
    "a 10 MB body is a 413 above the limit (LAZYDIAL_HTTP_MAX_BODY_BYTES, 1 MiB)",
    () =>
      Effect.gen(function*() {
        const answer = yield* postJson("/chats", JSON.stringify({ workspace_id: null, pad: "x".repeat(10_000_000) }))
        expect(answer.status).toBe(413)
        expect(answer.json).toMatchObject({ _tag: "PayloadTooLarge" })
      }),
    30_000
  )

  it.effect("a 10 MB message is a 400 with a short body that does not echo it", () =>
    Effect.gen(function*() {
      const chat = yield* newChat
      const answer = yield* postJson(`/chats/${chat}/turns`, JSON.stringify({ message: "x".repeat(10_000_000) }))
      expect(answer.status).toBe(400)
      expect(answer.text.length).toBeLessThan(500)
      expect(answer.json.issues[0]).toMatchObject({ path: ["message"] })
      expect(answer.json.message).toContain("message: a message is one line of at most 1000 characters")
    }).pipe(
      Effect.provide(Server.layer({ port: 0, maxBodyBytes: 16_000_000, authentication: Users.authentication }))
    ), 30_000)

  it.effect("unknown fields are a 400 that names the field", () =>
    Effect.gen(function*() {
      const answer = yield* postJson("/chats", JSON.stringify({ workspace_id: null, evil: 1 }))
      expect(answer.status).toBe(400)
      expect(answer.json.issues[0].path).toEqual(["evil"])
      expect(answer.json.message).toMatch(/^evil: is unexpected/)
    }), 30_000)

  it.effect("a form-encoded body is a 415", () =>
    Effect.gen(function*() {
      const answer = yield* send("/chats", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "workspace_id="
      })
      expect(answer.status).toBe(415)
      expect(answer.json).toMatchObject({ _tag: "UnsupportedMediaType" })
    }), 30_000)

  it.effect("DELETE /chats/:id is a 405 with Allow", () =>
    Effect.gen(function*() {
      const chat = yield* newChat
      const answer = yield* send(`/chats/${chat}`, { method: "DELETE" })
      expect(answer.status).toBe(405)
      expect(answer.headers.get("allow")).toBe("GET")
    }), 30_000)

  it.effect("a chat id in upper case is the same chat", () =>
    Effect.gen(function*() {
      const chat = yield* newChat
      const answer = yield* send(`/chats/${chat.toUpperCase()}`)
      expect(answer.status).toBe(200)
      expect(answer.json.chat_id).toBe(chat)
    }), 30_000)

  it.effect(
    "a chat on a workspace that does not exist is not created: a 404 WorkspaceNotFound",
    () =>
      Effect.gen(function*() {
        const unknown = randomUUID()
        const answer = yield* postJson("/chats", JSON.stringify({ workspace_id: unknown }))
        expect(answer.status).toBe(404)
        expect(answer.json).toMatchObject({ _tag: "WorkspaceNotFound", workspace_id: unknown })
      }),
    30_000
  )

  it.effect(
    "a stopped workspace's chat: its turn is a 503 TurnFailed no_agent",
    () =>
      Effect.gen(function*() {
        const workspaceId = randomUUID() as WorkspaceId
        yield* ControlPlane.startWorkspace(workspaceId, "alice")
        yield* ControlPlane.stop(workspaceId, "die")
        const answer = yield* postJson("/chats", JSON.stringify({ workspace_id: workspaceId }))
        expect(answer.status).toBe(201)
        const turn = yield* postJson(`/chats/${answer.json.chat_id}/turns`, JSON.stringify({ message: "hi" }))
        expect(turn.status).toBe(503)
        expect(turn.json).toMatchObject({ _tag: "TurnFailed", reason: "no_agent" })
      }),
    30_000
  )

  it.effect("decode errors say which field is wrong and what is expected, in words", () =>
    Effect.gen(function*() {
      const chat = yield* newChat
      const answer = yield* send(`/chats/${chat}/workspace`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ workspace_id: "nope" })
      })
      expect(answer.status).toBe(400)
      expect(answer.json.message).toBe("workspace_id: Expected a workspace's id (a UUID) or Expected null")
      expect(answer.text).not.toMatch(/From side|refinement|nope/)
    }), 30_000)

  it.effect(
    "/metrics lists the lazydial metrics and the request counts by route and status",
    () =>
      Effect.gen(function*() {
        const workspaceId = randomUUID() as WorkspaceId
        yield* ControlPlane.startWorkspace(workspaceId, "alice")
        const created = yield* postJson("/chats", JSON.stringify({ workspace_id: workspaceId }))
        yield* postJson(`/chats/${created.json.chat_id}/turns`, JSON.stringify({ message: "hi" }))
        const answer = yield* send("/metrics")
        expect(answer.status).toBe(200)
        expect(answer.headers.get("content-type")).toMatch(/^text\/plain/)
        const missing = yield* send(`/no/such/route/${randomUUID()}`)
        expect(missing.status).toBe(404)
        const after = yield* send("/metrics")
        // a path no route has is counted as a 404 under one label, not a 500 per path
        expect(after.text).toMatch(/^http_requests_total\{method="GET",route="unmatched",status="404"\} \d+$/m)
        expect(after.text).not.toContain("/no/such/route")
        expect(answer.text).toMatch(/^# TYPE lazydial_binding_turns_total counter$/m)
        expect(answer.text).toMatch(/^http_requests_total\{method="POST",route="\/chats",status="201"\} \d+$/m)
        expect(answer.text).toMatch(
          /^http_request_duration_seconds_bucket\{method="POST",route="\/chats\/:chat_id\/turns",status="200",le="\+Inf"\} \d+$/m
        )
      }),
    30_000
  )

  it.effect("/docs answers Swagger UI's HTML with no asset from another host", () =>
    Effect.gen(function*() {
      const answer = yield* send("/docs")
      expect(answer.status).toBe(200)
      expect(answer.headers.get("content-type")).toMatch(/^text\/html/)
      expect(answer.text).toContain("SwaggerUIBundle")
      expect(answer.text).not.toMatch(/<script[^>]+src=|<link[^>]+href="https?:/)
    }), 30_000)

  it.effect("a request's W3C traceparent becomes the parent of the server's span", () =>
    Effect.gen(function*() {
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
      const parentId = "00f067aa0ba902b7"
      const answer = yield* send("/health", { headers: { traceparent: `00-${traceId}-${parentId}-01` } })
      expect(answer.status).toBe(200)
      const server = spans.find((span) => span.name === "http.server GET" && span.traceId === traceId)
      expect(server).toBeDefined()
      const parent = Option.getOrThrow(server!.parent)
      expect({ traceId: parent.traceId, spanId: parent.spanId }).toEqual({ traceId, spanId: parentId })
    }), 30_000)

  it.effect(
    "a turn's request span says how the turn connected (lazydial.outcome), in the API's names",
    () =>
      Effect.gen(function*() {
        // safe: a fresh UUID is a valid WorkspaceId
        const workspace = randomUUID() as WorkspaceId
        yield* ControlPlane.startWorkspace(workspace, "alice")
        const chat = (yield* postJson("/chats", JSON.stringify({ workspace_id: workspace }))).json.chat_id as string
        const before = spans.length
        const turn = yield* postJson(`/chats/${chat}/turns`, JSON.stringify({ message: "hi" }))
        expect(turn.status).toBe(200)
        expect(turn.json.outcome).toBe("lazy_bind")
        const server = spans.slice(before).filter((span) => span.name === "http.server POST")
        expect(server.map((span) => span.attributes.get("lazydial.outcome"))).toEqual(["lazy_bind"])
      }),
    30_000
  )
})
