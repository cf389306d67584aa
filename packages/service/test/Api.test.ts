/**
 * The HTTP API through its typed client (the SDK), on real agents and the
 * embedded database. One server for the file; each scenario is its own test,
 * on its own workspaces and chats. alice owns the chats and workspaces; ops,
 * an operator, rebuilds and stops.
 */
import { expect, layer } from "@effect/vitest"
import type { ChatId, WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as Layer from "effect/Layer"
import { randomUUID } from "node:crypto"
import * as Api from "../src/Api.js"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"
import * as Users from "./users.js"

// notices off: these scenarios check lazy validation's outcomes (`switched`),
// which a notice arriving first would turn into `switched_by_notice`
// (test/Notices.e2e.test.ts covers that path)
const TestLayer = Server.layer({ port: 0, authentication: Users.authentication }).pipe(
  Layer.provideMerge(
    Service.layer({ validationDelay: "500 millis", dialTimeout: "5 seconds", notices: false }, Service.makeCounters())
  ),
  Layer.provide(Service.layerDatabase(undefined)),
  Layer.merge(FetchHttpClient.layer)
)

const client = Users.client("alice")
const operator = Users.client("ops")
// safe: fresh UUIDs are valid ids
const newWorkspace = () => randomUUID() as WorkspaceId
const newChatId = () => randomUUID() as ChatId

/** A workspace with a running agent, and a chat on it that has had one turn (so it is bound). */
const boundChat = Effect.gen(function*() {
  const api = yield* client
  const workspaceId = newWorkspace()
  const agent = yield* ControlPlane.startWorkspace(workspaceId, "alice")
  const chat = yield* api.chats.create({ payload: { workspace_id: workspaceId } })
  yield* api.chats.turn({ params: { chat_id: chat.chat_id }, payload: { message: "bind" } })
  return { api, ops: yield* operator, workspaceId, agent, chat }
})

// real sockets and the validation delay need real time: no TestClock here
layer(TestLayer, { timeout: 60_000, excludeTestServices: true })("the chat API through the typed client", (it) => {
  it.effect("create: binding fields are present and null when unset", () =>
    Effect.gen(function*() {
      const api = yield* client
      const workspaceId = newWorkspace()
      yield* ControlPlane.startWorkspace(workspaceId, "alice")
      const bare = yield* api.chats.create({ payload: {} })
      expect(bare).toMatchObject({ parent_chat_id: null, workspace_id: null, build_id: null, agent_id: null })
      const chat = yield* api.chats.create({ payload: { workspace_id: workspaceId } })
      expect(chat).toMatchObject({ workspace_id: workspaceId, build_id: null, agent_id: null })
      // the GET answers the same fields, and what this replica's view says of the binding: none yet
      const { binding, ...fields } = yield* api.chats.get({ params: { chat_id: chat.chat_id } })
      expect(new Api.Chat(fields)).toEqual(chat)
      expect(binding).toBe("unbound")
    }), 30_000)

  it.effect("a turn fills the binding lazily (lazy_bind), and the next one is fast", () =>
    Effect.gen(function*() {
      const api = yield* client
      const workspaceId = newWorkspace()
      const agent = yield* ControlPlane.startWorkspace(workspaceId, "alice")
      const chat = yield* api.chats.create({ payload: { workspace_id: workspaceId } })
      const first = yield* api.chats.turn({ params: { chat_id: chat.chat_id }, payload: { message: "hello" } })
      expect(first.outcome).toBe("lazy_bind")
      expect(first.agent_id).toBe(agent.agentId)
      expect(first.reply).toBe(`ok ${agent.agentId} ${workspaceId} hello`)
      expect(first.chat).toMatchObject({ agent_id: agent.agentId, build_id: agent.buildId })
      const second = yield* api.chats.turn({ params: { chat_id: chat.chat_id }, payload: { message: "again" } })
      expect(second.outcome).toBe("fast")
      expect(second.chat).toEqual(first.chat)
    }), 30_000)

  it.effect("a child inherits its parent's binding", () =>
    Effect.gen(function*() {
      const { agent, api, chat, workspaceId } = yield* boundChat
      const child = yield* api.chats.spawnChild({ params: { chat_id: chat.chat_id } })
      expect(child).toMatchObject({
        parent_chat_id: chat.chat_id,
        workspace_id: workspaceId,
        build_id: agent.buildId,
        agent_id: agent.agentId
      })
    }), 30_000)

  it.effect(
    "after a rebuild, a stale binding is repaired by the next turn (switched)",
    () =>
      Effect.gen(function*() {
        const { agent, api, chat, ops, workspaceId } = yield* boundChat
        const rebuilt = yield* ops.workspaces.rebuild({
          params: { workspace_id: workspaceId },
          payload: { mode: "die" }
        })
        expect(rebuilt.agent_id).not.toBe(agent.agentId)
        const repaired = yield* api.chats.turn({ params: { chat_id: chat.chat_id }, payload: { message: "hi" } })
        expect(repaired.outcome).toBe("switched")
        expect(repaired.chat).toMatchObject({ agent_id: rebuilt.agent_id, build_id: rebuilt.build_id })
      }),
    30_000
  )

  it.effect(
    "after a stop, a bound chat's turn is a 503 TurnFailed no_agent, and the workspace lists no agent",
    () =>
      Effect.gen(function*() {
        const { api, chat, ops, workspaceId } = yield* boundChat
        const stopped = yield* ops.workspaces.stop({ params: { workspace_id: workspaceId }, payload: { mode: "die" } })
        expect(stopped).toMatchObject({ workspace_id: workspaceId, build_id: null, agent_id: null })
        const error = yield* Effect.flip(
          api.chats.turn({ params: { chat_id: chat.chat_id }, payload: { message: "x" } })
        )
        expect(error).toMatchObject({ _tag: "TurnFailed", reason: "no_agent" })
        const listed = (yield* api.workspaces.list()).find((workspace) => workspace.workspace_id === workspaceId)
        expect(listed).toMatchObject({ build_id: null, agent_id: null })
      }),
    30_000
  )

  it.effect("a workspace change clears build and agent", () =>
    Effect.gen(function*() {
      const { api, chat } = yield* boundChat
      const other = newWorkspace()
      yield* ControlPlane.startWorkspace(other, "alice")
      const moved = yield* api.chats.setWorkspace({
        params: { chat_id: chat.chat_id },
        payload: { workspace_id: other }
      })
      expect(moved).toMatchObject({ workspace_id: other, build_id: null, agent_id: null })
    }), 30_000)

  it.effect(
    "a turn of a chat with no workspace is a 409 NoWorkspace (the client's to fix)",
    () =>
      Effect.gen(function*() {
        const api = yield* client
        const bare = yield* api.chats.create({ payload: {} })
        const error = yield* Effect.flip(
          api.chats.turn({ params: { chat_id: bare.chat_id }, payload: { message: "x" } })
        )
        expect(error).toMatchObject({ _tag: "NoWorkspace", reason: "no_workspace" })
        const http = yield* HttpClient.HttpClient
        const response = yield* http.execute(
          HttpClientRequest.post(`${yield* Server.baseUrl}/chats/${bare.chat_id}/turns`).pipe(
            HttpClientRequest.bearerToken(Users.tokens.alice),
            HttpClientRequest.bodyJsonUnsafe({ message: "x" })
          )
        )
        expect(response.status).toBe(409)
      }),
    30_000
  )

  it.effect("an unknown chat is a 404 ChatNotFound", () =>
    Effect.gen(function*() {
      const api = yield* client
      const missing = yield* Effect.flip(api.chats.get({ params: { chat_id: newChatId() } }))
      expect(missing._tag).toBe("ChatNotFound")
      const http = yield* HttpClient.HttpClient
      const notFound = yield* http.get(`${yield* Server.baseUrl}/chats/${newChatId()}`, {
        headers: Users.bearer("alice")
      })
      expect(notFound.status).toBe(404)
    }), 30_000)

  it.effect("bad ids and bodies are 400s whose issues name the field", () =>
    Effect.gen(function*() {
      const api = yield* client
      const url = yield* Server.baseUrl
      const chat = yield* api.chats.create({ payload: {} })
      const http = yield* HttpClient.HttpClient
      const badId = yield* http.get(`${url}/chats/not-a-uuid`, { headers: Users.bearer("alice") })
      expect(badId.status).toBe(400)
      const badIdBody = (yield* badId.json) as { issues: Array<{ path: Array<string> }> }
      expect(badIdBody.issues[0]!.path).toEqual(["chat_id"])
      const badBody = yield* http.execute(
        HttpClientRequest.put(`${url}/chats/${chat.chat_id}/workspace`).pipe(
          HttpClientRequest.bearerToken(Users.tokens.alice),
          HttpClientRequest.bodyJsonUnsafe({ workspace_id: "nope" })
        )
      )
      expect(badBody.status).toBe(400)
      const badBodyJson = (yield* badBody.json) as { issues: Array<{ path: Array<string> }> }
      expect(badBodyJson.issues[0]!.path).toEqual(["workspace_id"])
    }), 30_000)

  it.effect("/health answers up, /ready answers ready while the database answers", () =>
    Effect.gen(function*() {
      const api = yield* client
      expect(yield* api.health.health()).toEqual({ status: "up" })
      expect(yield* api.health.ready()).toEqual({ status: "ready" })
    }), 30_000)
})
