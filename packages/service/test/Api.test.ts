/**
 * The HTTP API through its typed client (the SDK), on real agents and the
 * embedded database.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, it } from "@effect/vitest"
import type { WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { randomUUID } from "node:crypto"
import * as Api from "../src/Api.js"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"

const TestLayer = Server.layer(0).pipe(
  Layer.provideMerge(
    Service.layer({ validationDelay: "500 millis", dialTimeout: "5 seconds" }, Service.makeCounters())
  ),
  Layer.provide(Service.layerDatabase(undefined)),
  Layer.merge(FetchHttpClient.layer)
)

const baseUrl = Effect.map(
  HttpServer.HttpServer,
  (server) => server.address._tag === "TcpAddress" ? `http://127.0.0.1:${server.address.port}` : ""
)

describe("the chat API through the typed client", () => {
  it.live("create, get, spawn, turn, change workspace, rebuild, and errors", () =>
    Effect.gen(function*() {
      const url = yield* baseUrl
      const client = yield* HttpApiClient.make(Api.Api, { baseUrl: url })
      const workspaceA = randomUUID() as WorkspaceId
      const workspaceB = randomUUID() as WorkspaceId
      const agentA = yield* ControlPlane.startWorkspace(workspaceA)
      yield* ControlPlane.startWorkspace(workspaceB)

      // create: binding fields present and null when unset
      const bare = yield* client.chats.create({ payload: {} })
      expect(bare).toMatchObject({ parent_chat_id: null, workspace_id: null, build_id: null, agent_id: null })
      const chat = yield* client.chats.create({ payload: { workspace_id: workspaceA } })
      expect(chat).toMatchObject({ workspace_id: workspaceA, build_id: null, agent_id: null })
      const got = yield* client.chats.get({ path: { chat_id: chat.chat_id } })
      expect(got).toEqual(chat)

      // a turn fills the binding lazily
      const first = yield* client.chats.turn({ path: { chat_id: chat.chat_id }, payload: { message: "hello" } })
      expect(first.outcome).toBe("lazy_bind")
      expect(first.agent_id).toBe(agentA.agentId)
      expect(first.reply).toBe(`ok ${agentA.agentId} ${workspaceA} hello`)
      expect(first.chat).toMatchObject({ agent_id: agentA.agentId, build_id: agentA.buildId })
      const second = yield* client.chats.turn({ path: { chat_id: chat.chat_id }, payload: { message: "again" } })
      expect(second.outcome).toBe("fast")

      // a child inherits the binding
      const child = yield* client.chats.spawnChild({ path: { chat_id: chat.chat_id } })
      expect(child).toMatchObject({
        parent_chat_id: chat.chat_id,
        workspace_id: workspaceA,
        build_id: agentA.buildId,
        agent_id: agentA.agentId
      })

      // a rebuild leaves the child's binding stale; its next turn repairs it
      const rebuilt = yield* client.workspaces.rebuild({ path: { workspace_id: workspaceA }, payload: { mode: "die" } })
      expect(rebuilt.agent_id).not.toBe(agentA.agentId)
      const repaired = yield* client.chats.turn({ path: { chat_id: child.chat_id }, payload: { message: "hi" } })
      expect(repaired.outcome).toBe("switched")
      expect(repaired.chat).toMatchObject({ agent_id: rebuilt.agent_id, build_id: rebuilt.build_id })

      // a workspace change clears build and agent
      const moved = yield* client.chats.setWorkspace({
        path: { chat_id: chat.chat_id },
        payload: { workspace_id: workspaceB }
      })
      expect(moved).toMatchObject({ workspace_id: workspaceB, build_id: null, agent_id: null })

      // a turn of a chat with no workspace fails clearly
      const noWorkspace = yield* Effect.flip(
        client.chats.turn({ path: { chat_id: bare.chat_id }, payload: { message: "x" } })
      )
      expect(noWorkspace).toMatchObject({ _tag: "TurnFailed", reason: "no_workspace" })

      // unknown chat: 404
      const missing = yield* Effect.flip(client.chats.get({ path: { chat_id: randomUUID() as typeof chat.chat_id } }))
      expect(missing._tag).toBe("ChatNotFound")

      // bad ids and bodies: 400 naming the field
      const http = yield* HttpClient.HttpClient
      const badId = yield* http.get(`${url}/chats/not-a-uuid`)
      expect(badId.status).toBe(400)
      const badIdBody = (yield* badId.json) as { issues: Array<{ path: Array<string> }> }
      expect(badIdBody.issues[0]!.path).toEqual(["chat_id"])
      const badBody = yield* http.execute(
        HttpClientRequest.put(`${url}/chats/${chat.chat_id}/workspace`).pipe(
          HttpClientRequest.bodyUnsafeJson({ workspace_id: "nope" })
        )
      )
      expect(badBody.status).toBe(400)
      const badBodyJson = (yield* badBody.json) as { issues: Array<{ path: Array<string> }> }
      expect(badBodyJson.issues[0]!.path).toEqual(["workspace_id"])
      const notFound = yield* http.get(`${url}/chats/${randomUUID()}`)
      expect(notFound.status).toBe(404)
    }).pipe(Effect.provide(TestLayer)), { timeout: 60_000 })
})
