/**
 * The HTTP server: `Api` implemented over `Chats` (binding's store and turn
 * path) and the control plane, with an access log, `/health` and `/ready`.
 *
 * Every request gets one access log line (method, route, status, duration,
 * chat id) and every 5xx an error log line with its cause, through Effect's
 * `Logger`: replace the logger (`Logger.replace`) to send them elsewhere.
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type { CurrentAgent, WorkspaceId } from "@lazydial/core"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import type * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as HttpApiSwagger from "effect/http-api/HttpApiSwagger"
import * as HttpMiddleware from "effect/http/HttpMiddleware"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import * as HttpServerError from "effect/http/HttpServerError"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SqlClient from "effect/sql/SqlClient"
import { createServer } from "node:http"
import type { AgentAddresses } from "./AgentAddresses.js"
import * as Api from "./Api.js"
import {
  type ChatNotFound,
  Chats,
  type ChatView,
  type ConnectError,
  type DatabaseUnavailable,
  failureReason
} from "./Chats.js"
import * as ControlPlane from "./ControlPlane.js"
import { Fleet, type RetireMode, type StopMode } from "./Fleet.js"
import * as Boundary from "./internal/boundary.js"

const chatJson = (view: ChatView): Api.Chat =>
  new Api.Chat({
    chat_id: view.chatId,
    parent_chat_id: Option.getOrNull(view.parentChatId),
    workspace_id: Option.getOrNull(view.workspaceId),
    build_id: Option.getOrNull(view.buildId),
    agent_id: Option.getOrNull(view.agentId)
  })

const notFound = (error: ChatNotFound) => new Api.ChatNotFound({ chat_id: error.chatId, message: error.message })

// The cause goes to the error log; the client gets the reason and the advice.
const unavailable = (error: DatabaseUnavailable) =>
  Effect.andThen(
    Effect.logError("database unavailable", Cause.fail(error)),
    Effect.fail(new Api.DatabaseUnavailable({ reason: "database_unavailable", message: error.message }))
  )

const chatError = (
  error: ChatNotFound | DatabaseUnavailable
): Effect.Effect<never, Api.ChatNotFound | Api.DatabaseUnavailable> =>
  error._tag === "ChatNotFound" ? Effect.fail(notFound(error)) : unavailable(error)

const turnError = (
  error: ConnectError
): Effect.Effect<never, Api.ChatNotFound | Api.NoWorkspace | Api.TurnFailed | Api.DatabaseUnavailable> => {
  const reason = failureReason(error)
  switch (reason) {
    case "not_found":
      return Effect.fail(new Api.ChatNotFound({ chat_id: (error as ChatNotFound).chatId, message: error.message }))
    case "no_workspace":
      return Effect.fail(new Api.NoWorkspace({ reason, message: error.message }))
    case "database_unavailable":
      return unavailable(error as DatabaseUnavailable)
    default:
      return Effect.fail(new Api.TurnFailed({ reason, message: error.message }))
  }
}

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
      .handle("create", ({ payload }) =>
        chats.create(Option.fromNullishOr(payload.workspace_id)).pipe(
          Effect.map(chatJson),
          Effect.catch(unavailable)
        ))
      .handle("get", ({ params }) => chats.get(params.chat_id).pipe(Effect.map(chatJson), Effect.catch(chatError)))
      .handle("setWorkspace", ({ params, payload }) =>
        chats.setWorkspace(params.chat_id, Option.fromNullishOr(payload.workspace_id)).pipe(
          Effect.map(chatJson),
          Effect.catch(chatError)
        ))
      .handle("spawnChild", ({ params }) =>
        chats.createChild(params.chat_id).pipe(Effect.map(chatJson), Effect.catch(chatError)))
      .handle("turn", ({ params, payload }) =>
        Effect.scoped(Effect.gen(function*() {
          const turn = yield* Effect.catch(chats.connect(params.chat_id), turnError)
          const reply = yield* turn.connection.exchange(`turn ${payload.message}`).pipe(
            Effect.timeoutOrElse({
              duration: answerTimeout,
              orElse: () =>
                Effect.fail(
                  new Api.TurnFailed({ reason: "timeout", message: "the agent accepted the turn and never answered" })
                )
            }),
            Effect.catchTag(
              "AgentDialError",
              (error) =>
                Effect.fail(new Api.TurnFailed({ reason: "dial_failed", message: error.message }))
            )
          )
          // the turn path returned the row as it left it: no second read
          return new Api.TurnResult({
            chat: chatJson(turn.binding),
            agent_id: turn.connection.agentId,
            outcome: turn.outcome,
            reply
          })
        })))
  }))

const workspaceJson = (workspaceId: WorkspaceId, current: Option.Option<CurrentAgent>) =>
  new Api.Workspace({
    workspace_id: workspaceId,
    build_id: Option.getOrNull(Option.map(current, (c) => c.buildId)),
    agent_id: Option.getOrNull(Option.map(current, (c) => c.agentId))
  })

const makeWorkspaces = Effect.gen(function*() {
  const control = yield* ControlPlane.ControlPlane
  const context = yield* Effect.context<ControlPlane.ControlPlane | AgentAddresses>()
  // only the process that runs the agents can rebuild them
  const fleet = yield* Effect.serviceOption(Fleet)
  const list = Effect.map(control.list, (all) => all.map(([id, current]) => workspaceJson(id, current)))
  // only the fleet changes workspaces, and only the ones it knows
  const onTheFleet = <A>(
    workspaceId: WorkspaceId,
    change: Effect.Effect<A, DatabaseUnavailable, Fleet | ControlPlane.ControlPlane | AgentAddresses>
  ) =>
    Effect.gen(function*() {
      if (Option.isNone(fleet)) {
        return yield* new Api.NotTheFleet({
          message:
            "this replica runs no agents: send rebuilds and stops to the fleet process's API (lazydial-service fleet --port)"
        })
      }
      const known = yield* control.list
      if (!known.some(([id]) => id === workspaceId)) {
        return yield* new Api.WorkspaceNotFound({
          workspace_id: workspaceId,
          message: `workspace ${workspaceId} does not exist: GET /workspaces lists them`
        })
      }
      return yield* change.pipe(Effect.provideService(Fleet, fleet.value), Effect.provide(context))
    })
  const rebuild = (workspaceId: WorkspaceId, mode: RetireMode) =>
    onTheFleet(workspaceId, ControlPlane.rebuild(workspaceId, mode)).pipe(
      Effect.map((next) => workspaceJson(workspaceId, next))
    )
  const stop = (workspaceId: WorkspaceId, mode: StopMode) =>
    onTheFleet(workspaceId, ControlPlane.stop(workspaceId, mode)).pipe(
      Effect.as(workspaceJson(workspaceId, Option.none()))
    )
  return { list, rebuild, stop }
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layerWorkspaces = HttpApiBuilder.group(
  Api.Api,
  "workspaces",
  (handlers) =>
    Effect.map(makeWorkspaces, ({ list, rebuild, stop }) =>
      handlers
        .handle("list", () => Effect.catchTag(list, "DatabaseUnavailable", unavailable))
        .handle(
          "rebuild",
          ({ params, payload }) =>
            Effect.catchTag(rebuild(params.workspace_id, payload.mode), "DatabaseUnavailable", unavailable)
        )
        .handle(
          "stop",
          ({ params, payload }) =>
            Effect.catchTag(stop(params.workspace_id, payload.mode), "DatabaseUnavailable", unavailable)
        ))
)

/**
 * How long `/ready` waits for the database.
 *
 * @since 0.1.0
 * @category constants
 */
export const readyTimeout: Duration.Duration = Duration.seconds(2)

const makeHealth = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return {
    health: Effect.succeed({ status: "up" as const }),
    ready: sql`SELECT 1`.pipe(
      Effect.timeoutOrElse({
        duration: readyTimeout,
        orElse: () => Effect.fail("no answer within " + Duration.format(readyTimeout))
      }),
      Effect.as({ status: "ready" as const }),
      Effect.catch((cause) =>
        Effect.fail(
          new Api.DatabaseUnavailable({
            reason: "database_unavailable",
            message: `the database does not answer (${
              typeof cause === "string" ? cause : cause.message
            }): this replica serves no turns until it does`
          })
        )
      )
    )
  }
})

/**
 * @since 0.1.0
 * @category layers
 */
export const layerHealth = HttpApiBuilder.group(
  Api.Api,
  "health",
  (handlers) =>
    Effect.map(makeHealth, ({ health, ready }) => handlers.handle("health", () => health).handle("ready", () => ready))
)

/**
 * `GET /metrics`: the process's whole Effect metric registry, in Effect's
 * own Prometheus format (`effect/observability/PrometheusMetrics`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMetrics = HttpApiBuilder.group(
  Api.Api,
  "metrics",
  (handlers) => Effect.succeed(handlers.handle("metrics", () => PrometheusMetrics.format()))
)

/**
 * The `Boundary` middleware of every route: a request whose path or body does
 * not decode is the declared 400 `HttpApiDecodeError`, in words that name the
 * field. A response that does not encode stays a 500.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerBoundary: Layer.Layer<Api.Boundary> = HttpApiMiddleware.layerSchemaErrorTransform(
  Api.Boundary,
  (error) =>
    error.kind === "Body" || error.kind === "ResponseHeaders"
      ? Effect.fail(error)
      : Effect.fail(Boundary.decodeError(error))
)

const groups = Layer.mergeAll(layerChats, layerWorkspaces, layerHealth, layerMetrics)

/**
 * The API's handlers, for a server or a test, with `/openapi.json`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApi = HttpApiBuilder.layer(Api.Api, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide(groups),
  Layer.provide(layerBoundary)
)

/**
 * The `fleet` process's API: workspaces (with rebuilds), health and metrics.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFleetApi = HttpApiBuilder.layer(Api.FleetApi, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide(Layer.mergeAll(layerWorkspaces, layerHealth, layerMetrics)),
  Layer.provide(layerBoundary)
)

/**
 * `http_requests_total`, by method, route and status.
 *
 * @since 0.1.0
 * @category metrics
 */
export const requestsTotal = Metric.counter("http_requests_total", {
  description: "HTTP requests answered, by method, route and status",
  incremental: true
})

/**
 * `http_request_duration_seconds`, by method, route and status.
 *
 * @since 0.1.0
 * @category metrics
 */
export const requestDuration = Metric.histogram("http_request_duration_seconds", {
  boundaries: Metric.exponentialBoundaries({ start: 0.001, factor: 2, count: 16 }),
  description: "HTTP request duration in seconds, by method, route and status"
})

const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi

const isRouteNotFound = (error: unknown) =>
  HttpServerError.isHttpServerError(error) && error.reason._tag === "RouteNotFound"

/**
 * The access log: one line per request, and an error line with the cause for
 * every 5xx. A defect becomes a JSON 500 (never an empty body).
 *
 * @since 0.1.0
 * @category middleware
 */
export const accessLog = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const began = performance.now()
    const path = request.url.split("?")[0] ?? request.url
    const chatId = /^\/chats\/([^/]+)/.exec(path)?.[1] ?? null
    const route = path.replace(uuid, (id) => (id === chatId ? ":chat_id" : ":id"))
    const exit = yield* Effect.exit(app)
    // A failure the platform turned into a client error (404 RouteNotFound)
    // was answered as such: log and count it with that status, not as a 500.
    const answered = Exit.isFailure(exit) ? (yield* HttpServerError.causeResponse(exit.cause))[0] : undefined
    const clientError = answered !== undefined && answered.status < 500 ? answered : undefined
    const response = Exit.isSuccess(exit) ? exit.value : clientError ?? HttpServerResponse.jsonUnsafe(
      { _tag: "InternalError", message: "the server failed unexpectedly: see its error log" },
      { status: Cause.hasInterruptsOnly(exit.cause) ? 499 : 500 }
    )
    // a path no route has is one label value, whatever was asked: scanners must not grow the registry
    const unmatched = Exit.isFailure(exit) && Option.exists(Cause.findErrorOption(exit.cause), isRouteNotFound)
    const annotations = {
      method: request.method,
      route: unmatched ? "unmatched" : route,
      status: response.status,
      duration_ms: Math.round((performance.now() - began) * 10) / 10,
      chat_id: chatId
    }
    if (Exit.isFailure(exit) && clientError === undefined && !Cause.hasInterruptsOnly(exit.cause)) {
      yield* Effect.logError("request failed", exit.cause).pipe(Effect.annotateLogs(annotations))
    } else if (response.status >= 500) {
      yield* Effect.logError("request answered " + response.status).pipe(Effect.annotateLogs(annotations))
    }
    yield* Effect.logInfo("request").pipe(Effect.annotateLogs(annotations))
    const labels = { method: request.method, route: annotations.route, status: String(response.status) }
    yield* Metric.update(Metric.withAttributes(requestsTotal, labels), 1)
    yield* Metric.update(Metric.withAttributes(requestDuration, labels), (performance.now() - began) / 1000)
    return response
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface ListenOptions {
  readonly port: number
  /** 127.0.0.1 unless given. */
  readonly host?: string | undefined
  /** How long in-flight requests may take to finish at shutdown (10 seconds unless given). */
  readonly grace?: Duration.Input | undefined
  /** The largest request body accepted (413 above it); `maxBodyBytes` (the Config) unless given. */
  readonly maxBodyBytes?: number | undefined
}

/**
 * The largest request body, in bytes: `LAZYDIAL_HTTP_MAX_BODY_BYTES`, 1 MiB
 * unless set, from 1 KiB to 64 MiB. The API's largest real body is a turn's
 * message (1,000 characters), so the default leaves ample room.
 *
 * @since 0.1.0
 * @category config
 */
export const maxBodyBytes: Config.Config<number> = Config.schema(
  Schema.Int.check(
    Schema.isBetween({ minimum: 1024, maximum: 67_108_864 }, {
      message: "LAZYDIAL_HTTP_MAX_BODY_BYTES must be an integer from 1024 to 67108864"
    })
  ),
  "LAZYDIAL_HTTP_MAX_BODY_BYTES"
).pipe(Config.withDefault(1_048_576))

// The server span of a request is named `http.server <METHOD>`, as the
// trace backends already know it (Effect 4's default name is the method alone).
const spanNames = Layer.succeed(HttpMiddleware.SpanNameGenerator)((request) => `http.server ${request.method}`)

// The served app: the boundary's checks, then the access log and metrics
// around the API (and /openapi.json and /docs, from the same HttpApi value).
const serveApi = <Id extends string, Groups extends HttpApiGroup.Constraint, E, R>(
  api: HttpApi.HttpApi<Id, Groups>,
  routes: Layer.Layer<never, E, R>,
  options: ListenOptions
) =>
  Layer.unwrap(
    Effect.map(
      options.maxBodyBytes === undefined ? maxBodyBytes : Effect.succeed(options.maxBodyBytes),
      (limit) => {
        const guard = Boundary.guard(Boundary.routesOf(api), limit)
        const docs = HttpApiSwagger.layer(api, { path: "/docs" })
        return HttpRouter.serve(Layer.mergeAll(routes, docs), {
          disableLogger: true,
          disableListenLog: true,
          middleware: (app) => accessLog(guard(app))
        })
      }
    )
  ).pipe(Layer.provide(spanNames))

// The app on a Node server, with the order of shutdown: the server stops
// accepting and closes its idle keep-alive connections (Node's `close`),
// requests in flight get `grace` to finish, then the ones left are interrupted
// (an empty 503) and their connections closed.
const listen = <A, E, R>(options: ListenOptions, app: Layer.Layer<A, E, R>) =>
  Layer.unwrap(Effect.sync(() => {
    const server = createServer()
    // Node's `close` closes the connections idle at that moment only: one whose
    // request finishes later stays open until its keep-alive ends (up to 5 s),
    // and the close waits for it. Measured with a turn that ends 4.7 s into an
    // 8 s grace: the close took 7.7 s without this, and ends with the turn with
    // it. Built last, so released first, before the app's drain begins.
    const closeIdleWhileDraining = Layer.effectDiscard(Effect.addFinalizer(() =>
      Effect.sync(() => {
        const timer = setInterval(() => server.closeIdleConnections(), 50).unref()
        server.once("close", () => clearInterval(timer))
      })
    ))
    return closeIdleWhileDraining.pipe(
      Layer.provideMerge(app),
      Layer.provideMerge(NodeHttpServer.layer(() => server, {
        port: options.port,
        host: options.host ?? "127.0.0.1",
        gracefulShutdownTimeout: options.grace ?? Duration.seconds(10)
      }))
    )
  }))

/**
 * The server on `host`:`port` (127.0.0.1 unless given; port 0: any free port).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: number | ListenOptions) => {
  const listenOptions = typeof options === "number" ? { port: options } : options
  return listen(listenOptions, serveApi(Api.Api, layerApi, listenOptions))
}

/**
 * The fleet's server.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFleet = (options: ListenOptions) => listen(options, serveApi(Api.FleetApi, layerFleetApi, options))

/**
 * The `http://host:port` a server listens on.
 *
 * @since 0.1.0
 * @category accessors
 */
export const baseUrl: Effect.Effect<string, never, HttpServer.HttpServer> = HttpServer.addressFormattedWith(
  Effect.succeed
)
