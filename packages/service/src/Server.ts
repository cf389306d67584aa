/**
 * The HTTP server: `Api` implemented over `Chats` (binding's store and turn
 * path) and the control plane.
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServer from "@effect/platform/HttpServer"
import type { Errors } from "@lazydial/binding"
import type { CurrentAgent, WorkspaceId } from "@lazydial/core"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import * as Api from "./Api.js"
import { Chats, type ChatView } from "./Chats.js"
import * as ControlPlane from "./ControlPlane.js"
import type * as Fleet from "./Fleet.js"
import * as Service from "./Service.js"

const chatJson = (view: ChatView): Api.Chat =>
  new Api.Chat({
    chat_id: view.chatId,
    parent_chat_id: Option.getOrNull(view.parentChatId),
    workspace_id: Option.getOrNull(view.workspaceId),
    build_id: Option.getOrNull(view.buildId),
    agent_id: Option.getOrNull(view.agentId)
  })

const notFound = (error: Errors.ChatNotFound) => new Api.ChatNotFound({ chat_id: error.chatId, message: error.message })

/**
 * How long a turn waits for the agent's answer once connected.
 *
 * @since 0.1.0
 * @category constants
 */
export const answerTimeout: Duration.Duration = Duration.seconds(10)

/**
 * @since 0.1.0
 * @category layers
 */
export const layerChats = HttpApiBuilder.group(Api.Api, "chats", (handlers) =>
  Effect.gen(function*() {
    const chats = yield* Chats
    return handlers
      .handle("create", ({ payload }) => Effect.map(chats.create(Option.fromNullable(payload.workspace_id)), chatJson))
      .handle("get", ({ path }) => chats.get(path.chat_id).pipe(Effect.map(chatJson), Effect.mapError(notFound)))
      .handle("setWorkspace", ({ path, payload }) =>
        chats.setWorkspace(path.chat_id, Option.fromNullable(payload.workspace_id)).pipe(
          Effect.map(chatJson),
          Effect.mapError(notFound)
        ))
      .handle("spawnChild", ({ path }) =>
        chats.createChild(path.chat_id).pipe(Effect.map(chatJson), Effect.mapError(notFound)))
      .handle("turn", ({ path, payload }) =>
        Effect.scoped(Effect.gen(function*() {
          const turn = yield* chats.connect(path.chat_id)
          const reply = yield* turn.connection.exchange(`turn ${payload.message}`).pipe(
            Effect.timeoutFail({
              duration: answerTimeout,
              onTimeout: () =>
                new Api.TurnFailed({ reason: "timeout", message: "the agent accepted the turn and never answered" })
            })
          )
          const chat = yield* chats.get(path.chat_id)
          return new Api.TurnResult({
            chat: chatJson(chat),
            agent_id: turn.connection.agentId,
            outcome: turn.outcome,
            reply
          })
        })).pipe(
          Effect.catchTags({
            ChatNotFound: (error) =>
              Effect.fail(notFound(error)),
            ChatHasNoWorkspace: (error) =>
              Effect.fail(new Api.TurnFailed({ reason: "no_workspace", message: error.message })),
            NoCurrentAgent: (error) =>
              Effect.fail(new Api.TurnFailed({ reason: "no_agent", message: error.message })),
            DialTimeout: (error) =>
              Effect.fail(new Api.TurnFailed({ reason: "timeout", message: error.message })),
            AgentDialError: (error) =>
              Effect.fail(new Api.TurnFailed({ reason: "dial_failed", message: error.message })),
            AgentLookupError: (error) =>
              Effect.fail(new Api.TurnFailed({ reason: "dial_failed", message: error.message }))
          })
        ))
  }))

const workspaceJson = (workspaceId: WorkspaceId, current: Option.Option<CurrentAgent>) =>
  new Api.Workspace({
    workspace_id: workspaceId,
    build_id: Option.getOrNull(Option.map(current, (c) => c.buildId)),
    agent_id: Option.getOrNull(Option.map(current, (c) => c.agentId))
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layerWorkspaces = HttpApiBuilder.group(Api.Api, "workspaces", (handlers) =>
  Effect.gen(function*() {
    const control = yield* ControlPlane.ControlPlane
    const context = yield* Effect.context<Fleet.Fleet | ControlPlane.ControlPlane>()
    return handlers
      .handle("list", () =>
        Effect.map(control.list, (all) => all.map(([workspaceId, current]) => workspaceJson(workspaceId, current))))
      .handle("rebuild", ({ path, payload }) =>
        Effect.gen(function*() {
          const known = yield* control.list
          if (
            !known.some(([workspaceId]) =>
              workspaceId === path.workspace_id
            )
          ) {
            return yield* new Api.WorkspaceNotFound({
              workspace_id: path.workspace_id,
              message: `workspace ${path.workspace_id} does not exist`
            })
          }
          const next = yield* ControlPlane.rebuild(path.workspace_id, payload.mode)
          return workspaceJson(path.workspace_id, next)
        }).pipe(Effect.provide(context)))
  }))

/**
 * The API's handlers, for a server or a test.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApi = HttpApiBuilder.api(Api.Api).pipe(Layer.provide([layerChats, layerWorkspaces]))

/**
 * The server on 127.0.0.1:`port` (0: any free port).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (port: number) =>
  HttpApiBuilder.serve().pipe(
    Layer.provide(layerApi),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" }))
  )

/**
 * A fresh instance with `workspaces` running workspaces, served until the
 * process is stopped.
 *
 * @since 0.1.0
 * @category running
 */
export const serveForever = (options: {
  readonly port: number
  readonly workspaces: number
  readonly databaseUrl?: string | undefined
}): Effect.Effect<never, never, never> =>
  Effect.gen(function*() {
    // safe: fresh UUIDs are valid WorkspaceIds
    const ids = Array.from({ length: options.workspaces }, () => randomUUID() as WorkspaceId)
    yield* Effect.forEach(ids, ControlPlane.startWorkspace, { discard: true })
    return yield* Layer.launch(
      Layer.effectDiscard(Effect.gen(function*() {
        const server = yield* HttpServer.HttpServer
        const address = server.address._tag === "TcpAddress" ? `http://127.0.0.1:${server.address.port}` : "?"
        yield* Console.error(
          `serving the chat API on ${address} (Ctrl-C to stop). Workspaces:\n  ${ids.join("\n  ")}\n` +
            `try: curl -s -X POST ${address}/chats -H 'content-type: application/json' -d '{"workspace_id":"${
              ids[0]
            }"}'`
        )
      })).pipe(Layer.provideMerge(layer(options.port)))
    )
  }).pipe(
    Effect.provide(Service.layer({ validationDelay: "1 second", dialTimeout: "10 seconds" }, Service.makeCounters())),
    Effect.provide(Service.layerDatabase(options.databaseUrl)),
    Effect.orDie
  )
