/**
 * `GET /chats/:chat_id` through the typed client: the stored row, read with
 * this replica's view of its workspace (binding's `ChatConnector.read`).
 * When the view knows the stored build was superseded, the answer carries the
 * current agent and build and says `"binding": "stale"`, and the row stays as
 * it was. Real agents, the embedded database, notices on; real time, each
 * wait bounded.
 */
import { expect, layer } from "@effect/vitest"
import type { WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { randomUUID } from "node:crypto"
import { Chats } from "../src/Chats.js"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"
import * as Users from "./users.js"

const TestLayer = Server.layer({ port: 0, authentication: Users.authentication }).pipe(
  Layer.provideMerge(
    Service.layer({ validationDelay: "500 millis", dialTimeout: "5 seconds" }, Service.makeCounters())
  ),
  Layer.provide(Service.layerDatabase(undefined)),
  Layer.merge(FetchHttpClient.layer)
)

const client = Users.client("alice")
// safe: a fresh UUID is a valid WorkspaceId
const newWorkspace = () => randomUUID() as WorkspaceId

/** A chat of alice's on a fresh workspace, bound by one turn. */
const boundChat = Effect.gen(function*() {
  const api = yield* client
  const workspaceId = newWorkspace()
  const agent = yield* ControlPlane.startWorkspace(workspaceId, "alice")
  const chat = yield* api.chats.create({ payload: { workspace_id: workspaceId } })
  yield* api.chats.turn({ params: { chat_id: chat.chat_id }, payload: { message: "bind" } })
  return { api, workspaceId, agent, chatId: chat.chat_id }
})

/** The row as the store holds it: build and agent. */
const stored = (chatId: Parameters<Chats["Service"]["get"]>[0]) =>
  Effect.flatMap(Chats, (chats) =>
    Effect.map(chats.get(chatId), (row) => ({
      build_id: Option.getOrNull(row.buildId),
      agent_id: Option.getOrNull(row.agentId)
    })))

/** Polls `effect` every 20 ms until `done` holds of its answer, for at most 10 seconds. */
const until = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean) =>
  effect.pipe(
    Effect.filterOrFail(done, () => "not yet"),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "10 seconds" })))
  )

layer(TestLayer, { timeout: 60_000, excludeTestServices: true })("GET /chats/:chat_id", (it) => {
  it.effect("unbound: a chat with no turn yet answers null build and agent", () =>
    Effect.gen(function*() {
      const api = yield* client
      const workspaceId = newWorkspace()
      yield* ControlPlane.startWorkspace(workspaceId, "alice")
      const chat = yield* api.chats.create({ payload: { workspace_id: workspaceId } })
      expect(yield* api.chats.get({ params: { chat_id: chat.chat_id } })).toMatchObject({
        workspace_id: workspaceId,
        build_id: null,
        agent_id: null,
        binding: "unbound"
      })
      const bare = yield* api.chats.create({ payload: {} })
      expect((yield* api.chats.get({ params: { chat_id: bare.chat_id } })).binding).toBe("unbound")
    }))

  it.effect("current: a bound chat answers its stored agent and build", () =>
    Effect.gen(function*() {
      const { agent, api, chatId } = yield* boundChat
      expect(yield* api.chats.get({ params: { chat_id: chatId } })).toMatchObject({
        build_id: agent.buildId,
        agent_id: agent.agentId,
        binding: "current"
      })
    }))

  it.effect(
    "stale: after a rebuild's notice is read, the answer is the current agent and build, and the row is unchanged",
    () =>
      Effect.gen(function*() {
        const { agent, api, chatId, workspaceId } = yield* boundChat
        const before = yield* stored(chatId)
        const next = yield* ControlPlane.rebuild(workspaceId, "hang")
        const read = yield* until(
          api.chats.get({ params: { chat_id: chatId } }),
          (chat) => chat.binding !== "current"
        )
        expect(read).toMatchObject({ build_id: next.buildId, agent_id: next.agentId, binding: "stale" })
        expect(read.agent_id).not.toBe(agent.agentId)
        // written nothing: the row still names the old agent, and reading again changes nothing
        expect(yield* stored(chatId)).toEqual(before)
        expect(before).toEqual({ build_id: agent.buildId, agent_id: agent.agentId })
        expect(yield* api.chats.get({ params: { chat_id: chatId } })).toEqual(read)
        expect(yield* stored(chatId)).toEqual(before)
        // the next turn goes to the agent the read named, and writes it
        const turn = yield* api.chats.turn({ params: { chat_id: chatId }, payload: { message: "hi" } })
        expect(turn).toMatchObject({ outcome: "switched_by_notice", agent_id: next.agentId })
        expect(yield* api.chats.get({ params: { chat_id: chatId } })).toMatchObject({
          agent_id: next.agentId,
          binding: "current"
        })
      })
  )

  it.effect("stopped: after a stop's notice is read, the stored agent and build are answered, marked stopped", () =>
    Effect.gen(function*() {
      const { agent, api, chatId, workspaceId } = yield* boundChat
      yield* ControlPlane.stop(workspaceId, "hang")
      const read = yield* until(
        api.chats.get({ params: { chat_id: chatId } }),
        (chat) => chat.binding !== "current"
      )
      expect(read).toMatchObject({ build_id: agent.buildId, agent_id: agent.agentId, binding: "stopped" })
      expect(yield* stored(chatId)).toEqual({ build_id: agent.buildId, agent_id: agent.agentId })
    }))

  it.effect("another user's chat is a 404, with the body of a missing one", () =>
    Effect.gen(function*() {
      const { chatId } = yield* boundChat
      const bob = yield* Users.client("bob")
      const error = yield* Effect.flip(bob.chats.get({ params: { chat_id: chatId } }))
      expect(error).toMatchObject({ _tag: "ChatNotFound", chat_id: chatId })
    }))
})
