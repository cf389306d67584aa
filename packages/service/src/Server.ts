/**
 * The HTTP server: `Api` implemented over `Chats` (binding's store and turn
 * path), `ChatOwners` and the control plane, with an access log, `/health`
 * and `/ready`.
 *
 * Every request gets one access log line (method, route, status, duration,
 * chat id), at INFO, or WARN for a 5xx the API declares (a turn of a stopped
 * workspace is a routine 503); a request that failed unexpectedly, and a
 * database outage, get an ERROR line with the cause. All go through Effect's
 * `Logger`: replace the logger (`Logger.replace`) to send them elsewhere.
 * The route of a log line and of the HTTP metrics is the route's template
 * (`/chats/:chat_id/turns`), or `unmatched`: never a path as sent, so that no
 * request can add a label value.
 *
 * Who may call what is `Api`'s table: a caller is authenticated by the
 * `Auth.Authentication` the server is given (`ListenOptions.authentication`,
 * or the service in its context); a server given none does not start.
 *
 * Every request has two deadlines, kept by Node's HTTP server:
 *
 * | deadline | option | the service's variable (`Settings`) | default |
 * |---|---|---|---|
 * | its headers, from its first byte | `headersTimeout` | `LAZYDIAL_HTTP_HEADERS_TIMEOUT` | 10 s |
 * | the whole request, body included, from its first byte | `requestTimeout` | `LAZYDIAL_HTTP_REQUEST_TIMEOUT` | 30 s |
 *
 * On expiry Node answers 408 and closes the connection (it closes it without
 * an answer if the response has begun). Node checks them every quarter of the
 * headers' deadline, at most every second (its own default: every 30 s).
 *
 * @since 0.1.0
 */
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import type { ChatId, CurrentAgent, WorkspaceId } from "@lazydial/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import type * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as HttpApiSwagger from "effect/http-api/HttpApiSwagger"
import * as HttpEffect from "effect/http/HttpEffect"
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
import { randomUUID } from "node:crypto"
import { createServer } from "node:http"
import type { AgentAddresses } from "./AgentAddresses.js"
import * as Api from "./Api.js"
import * as Auth from "./Auth.js"
import { ChatOwners } from "./ChatOwners.js"
import {
  type ChatNotFound,
  chatNotFound,
  type ChatRead,
  Chats,
  type ChatView,
  type ConnectError,
  type ConnectOutcome,
  type DatabaseUnavailable,
  failureReason
} from "./Chats.js"
import * as ControlPlane from "./ControlPlane.js"
import { Fleet, type RetireMode, type StopMode } from "./Fleet.js"
import * as Boundary from "./internal/boundary.js"
import { withDeadline } from "./internal/deadline.js"

const chatJson = (view: ChatView): Api.Chat =>
  new Api.Chat({
    chat_id: view.chatId,
    parent_chat_id: Option.getOrNull(view.parentChatId),
    workspace_id: Option.getOrNull(view.workspaceId),
    build_id: Option.getOrNull(view.buildId),
    agent_id: Option.getOrNull(view.agentId)
  })

// The stored row, with the current pair in place of a superseded one: in the answer only, never written.
const readJson = (read: ChatRead): Api.ChatRead => {
  const chat = chatJson(read.binding)
  const current = read.state === "stale" ? Option.getOrUndefined(read.current) : undefined
  return new Api.ChatRead({
    ...chat,
    build_id: current === undefined ? chat.build_id : current.buildId,
    agent_id: current === undefined ? chat.agent_id : current.agentId,
    binding: read.state
  })
}

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

// The rule of ownership, for chats: a chat of another user does not exist for the caller, with the very body of a
// missing one.
const makeOwnChat = (owners: ChatOwners["Service"]) => (user: Auth.User, chatId: ChatId) =>
  Effect.flatMap(
    owners.ownerOf(chatId),
    (owner): Effect.Effect<void, ChatNotFound> =>
      Option.contains(owner, user.name) ? Effect.void : Effect.fail(chatNotFound(chatId))
  )

// ... and for workspaces: a workspace of another user does not exist for the caller either.
const makeOwnWorkspace =
  (control: ControlPlane.ControlPlane["Service"]) => (user: Auth.User, workspaceId: WorkspaceId) =>
    Effect.flatMap(
      control.ownerOf(workspaceId),
      (owner): Effect.Effect<void, Api.WorkspaceNotFound> =>
        Option.contains(owner, user.name)
          ? Effect.void
          : Effect.fail(
            new Api.WorkspaceNotFound({
              workspace_id: workspaceId,
              message: new ControlPlane.UnknownWorkspace({ workspaceId }).message
            })
          )
    )

// safe: a fresh UUID is a valid ChatId
const newChatId = (): ChatId => randomUUID() as ChatId

/**
 * The chats routes, for the caller (`Auth.CurrentUser`): a chat is created
 * with the caller as its owner (recorded first, so no chat exists without
 * one), on a workspace the caller owns; every other route answers only the
 * chat's owner.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerChats = HttpApiBuilder.group(Api.Api, "chats", (handlers) =>
  Effect.gen(function*() {
    const chats = yield* Chats
    const owners = yield* ChatOwners
    const control = yield* ControlPlane.ControlPlane
    const ownChat = makeOwnChat(owners)
    const ownWorkspace = makeOwnWorkspace(control)
    // the caller's own chat, then `use` of it: a chat of another user is a 404 before anything else is read
    const owned = <A, E, R>(chatId: ChatId, use: Effect.Effect<A, E, R>) =>
      Effect.flatMap(Auth.CurrentUser, (user) => Effect.andThen(ownChat(user, chatId), use))
    return handlers
      .handle("create", ({ payload }) =>
        Effect.gen(function*() {
          const user = yield* Auth.CurrentUser
          const workspaceId = Option.fromNullishOr(payload.workspace_id)
          if (Option.isSome(workspaceId)) yield* ownWorkspace(user, workspaceId.value)
          const chatId = newChatId()
          yield* owners.record(chatId, user.name)
          return chatJson(yield* chats.create(workspaceId, chatId))
        }).pipe(Effect.catchTag("DatabaseUnavailable", unavailable)))
      .handle("get", ({ params }) =>
        owned(params.chat_id, chats.read(params.chat_id)).pipe(Effect.map(readJson), Effect.catch(chatError)))
      .handle("setWorkspace", ({ params, payload }) =>
        Effect.gen(function*() {
          const user = yield* Auth.CurrentUser
          yield* ownChat(user, params.chat_id)
          const workspaceId = Option.fromNullishOr(payload.workspace_id)
          if (Option.isSome(workspaceId)) {
            yield* ownWorkspace(user, workspaceId.value)
          }
          return chatJson(yield* chats.setWorkspace(params.chat_id, workspaceId))
        }).pipe(Effect.catchTags({ ChatNotFound: chatError, DatabaseUnavailable: chatError })))
      .handle("spawnChild", ({ params }) =>
        Effect.gen(function*() {
          const user = yield* Auth.CurrentUser
          yield* ownChat(user, params.chat_id)
          // the child is the caller's, as its parent is
          const childId = newChatId()
          yield* owners.record(childId, user.name)
          return chatJson(yield* chats.createChild(params.chat_id, childId))
        }).pipe(Effect.catch(chatError)))
      .handle("turn", ({ params, payload }) =>
        Effect.scoped(Effect.gen(function*() {
          const turn = yield* Effect.catch(owned(params.chat_id, chats.connect(params.chat_id)), turnError)
          // the request's span says how the turn connected, in the names of the API's `outcome`
          yield* Effect.annotateCurrentSpan("lazydial.outcome", turn.outcome satisfies ConnectOutcome)
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

const unknownWorkspace = (error: ControlPlane.UnknownWorkspace) =>
  Effect.fail(new Api.WorkspaceNotFound({ workspace_id: error.workspaceId, message: error.message }))

const makeWorkspaces = Effect.gen(function*() {
  const control = yield* ControlPlane.ControlPlane
  const context = yield* Effect.context<ControlPlane.ControlPlane | AgentAddresses>()
  // only the process that runs the agents can rebuild them
  const fleet = yield* Effect.serviceOption(Fleet)
  // the caller's workspaces only: another user's do not exist for the caller
  const list = Effect.gen(function*() {
    const user = yield* Auth.CurrentUser
    const all = yield* control.list
    return all.filter(([, , owner]) => owner === user.name).map(([id, current]) => workspaceJson(id, current))
  })
  // only the fleet changes workspaces; the operations say when a workspace does not exist
  const onTheFleet = <A, E>(
    change: Effect.Effect<A, E, Fleet | ControlPlane.ControlPlane | AgentAddresses>
  ): Effect.Effect<A, E | Api.NotTheFleet> =>
    Option.match(fleet, {
      onNone: () =>
        Effect.fail(
          new Api.NotTheFleet({
            message: "this replica runs no agents: send rebuilds, stops and starts to the fleet process's API " +
              "(lazydial-service fleet --port)"
          })
        ),
      onSome: (fleet) => change.pipe(Effect.provideService(Fleet, fleet), Effect.provide(context))
    })
  const rebuild = (workspaceId: WorkspaceId, mode: RetireMode) =>
    onTheFleet(ControlPlane.rebuild(workspaceId, mode)).pipe(
      Effect.map((next) => workspaceJson(workspaceId, Option.some(next))),
      Effect.catchTags({
        UnknownWorkspace: unknownWorkspace,
        WorkspaceStopped: (error) =>
          Effect.fail(new Api.WorkspaceStopped({ workspace_id: error.workspaceId, message: error.message }))
      })
    )
  const stop = (workspaceId: WorkspaceId, mode: StopMode) =>
    onTheFleet(ControlPlane.stop(workspaceId, mode)).pipe(
      Effect.as(workspaceJson(workspaceId, Option.none())),
      Effect.catchTag("UnknownWorkspace", unknownWorkspace)
    )
  const start = (workspaceId: WorkspaceId) =>
    onTheFleet(ControlPlane.start(workspaceId)).pipe(
      Effect.map((next) => workspaceJson(workspaceId, Option.some(next))),
      Effect.catchTags({
        UnknownWorkspace: unknownWorkspace,
        WorkspaceNotStopped: (error) =>
          Effect.fail(new Api.WorkspaceRunning({ workspace_id: error.workspaceId, message: error.message }))
      })
    )
  return { list, rebuild, stop, start }
})

/**
 * The workspaces routes: the list is the caller's own workspaces; rebuild,
 * stop and start are operators' (`Api.OperatorsOnly`), on the fleet only.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWorkspaces = HttpApiBuilder.group(
  Api.Api,
  "workspaces",
  (handlers) =>
    Effect.map(makeWorkspaces, ({ list, rebuild, start, stop }) =>
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
        )
        .handle(
          "start",
          ({ params }) => Effect.catchTag(start(params.workspace_id), "DatabaseUnavailable", unavailable)
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
  // the Layer's: a probe left behind by a hung server is interrupted in it, and ends with the server at the latest
  const scope = yield* Effect.scope
  return {
    health: Effect.succeed({ status: "up" as const }),
    ready: sql`SELECT 1`.pipe(
      // a deadline that holds when the server hangs (Effect's timeout waits for the hung statement's interruption)
      withDeadline(scope, readyTimeout, () => "no answer within " + Duration.format(readyTimeout)),
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
 * The agents' sockets, on the `/metrics` of the process that runs them (the
 * one-process run, `fleet`): set from the fleet's counters at each scrape.
 *
 * @since 0.2.0
 * @category metrics
 */
export const fleetMetrics = {
  socketsOpen: Metric.gauge("lazydial_fleet_sockets_open", {
    description: "Connections the fleet's agents accepted and that are still open"
  }),
  retiredSocketsOpen: Metric.gauge("lazydial_fleet_retired_sockets_open", {
    description: "Of those, the connections of retired agents (a hung agent keeps its own until the client closes them)"
  })
} as const

/**
 * `GET /metrics`: the process's whole Effect metric registry, in Effect's
 * own Prometheus format (`effect/observability/PrometheusMetrics`); where the
 * agents run, with `fleetMetrics` set first.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMetrics = HttpApiBuilder.group(
  Api.Api,
  "metrics",
  (handlers) =>
    Effect.map(Effect.serviceOption(Fleet), (fleet) =>
      handlers.handle("metrics", () =>
        Option.match(fleet, {
          onNone: () => PrometheusMetrics.format(),
          onSome: (fleet) =>
            fleet.stats.pipe(
              Effect.tap((stats) => Metric.update(fleetMetrics.socketsOpen, stats.acceptedOpen)),
              Effect.tap((stats) => Metric.update(fleetMetrics.retiredSocketsOpen, stats.retiredOpen)),
              Effect.andThen(PrometheusMetrics.format())
            )
        })))
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

// IPv4's 127.0.0.0/8, IPv6's ::1, and the first as an IPv4-mapped IPv6 address (a dual-stack socket's spelling)
const loopback = /^(?:(?:::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1)$/i

/**
 * Whether a connection's remote address is the loopback address: the
 * socket's own address (`HttpServerRequest.remoteAddress`, which nothing here
 * overrides from a header). None (a Unix socket, a test's request) is not.
 *
 * @since 0.2.0
 * @category predicates
 */
export const isLoopback = (remoteAddress: Option.Option<string>): boolean =>
  Option.exists(remoteAddress, (address) => loopback.test(address))

// The same words for every 401: the answer never says whether a token was missing or unknown. It names the scheme
// that would be accepted (`WWW-Authenticate: Bearer`, RFC 6750), set as the response is sent: the error's body is
// encoded by HttpApi, the header is the request's.
const unauthorized = Effect.andThen(
  HttpEffect.appendPreResponseHandler((_request, response) =>
    Effect.succeed(HttpServerResponse.setHeader(response, "www-authenticate", "Bearer"))
  ),
  Effect.fail(
    new Api.Unauthorized({
      message: "send Authorization: Bearer <token>, with a token of the server's token file (--token-auth-file)"
    })
  )
)

/**
 * The security middlewares of `Api` over an `Auth.Authentication`: a known
 * token makes its user the handler's `Auth.CurrentUser` (`Authenticated`);
 * `/ready` and `/metrics` also answer a loopback connection
 * (`LoopbackOrToken`); the control routes need the group `operators`
 * (`OperatorsOnly`). Tokens are never logged: they reach this code redacted.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerSecurity: Layer.Layer<
  Api.Authenticated | Api.LoopbackOrToken | Api.OperatorsOnly,
  never,
  Auth.Authentication
> = Layer.effectContext(Effect.gen(function*() {
  const auth = yield* Auth.Authentication
  const authenticated = Api.Authenticated.of({
    bearer: (httpEffect, { credential }) =>
      Option.match(auth.authenticate(credential), {
        onNone: () => unauthorized,
        onSome: (user) => Effect.provideService(httpEffect, Auth.CurrentUser, user)
      })
  })
  const loopbackOrToken = Api.LoopbackOrToken.of({
    bearer: (httpEffect, { credential }) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        if (!isLoopback(request.remoteAddress) && Option.isNone(auth.authenticate(credential))) {
          return yield* unauthorized
        }
        return yield* httpEffect
      })
  })
  const operatorsOnly = Api.OperatorsOnly.of((httpEffect) =>
    Effect.gen(function*() {
      const user = yield* Auth.CurrentUser
      if (!Auth.isOperator(user)) {
        return yield* new Api.Forbidden({
          message: `only members of the group ${Auth.operators} may rebuild, stop or start workspaces`
        })
      }
      return yield* httpEffect
    })
  )
  return Context.make(Api.Authenticated, authenticated).pipe(
    Context.add(Api.LoopbackOrToken, loopbackOrToken),
    Context.add(Api.OperatorsOnly, operatorsOnly)
  )
}))

const groups = Layer.mergeAll(layerChats, layerWorkspaces, layerHealth, layerMetrics)

/**
 * The API's handlers, for a server or a test, with `/openapi.json`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerApi = HttpApiBuilder.layer(Api.Api, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide(groups),
  Layer.provide(Layer.merge(layerBoundary, layerSecurity))
)

/**
 * The `fleet` process's API: workspaces (with rebuilds), health and metrics.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFleetApi = HttpApiBuilder.layer(Api.FleetApi, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide(Layer.mergeAll(layerWorkspaces, layerHealth, layerMetrics)),
  Layer.provide(Layer.merge(layerBoundary, layerSecurity))
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

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

// The methods a label may name; Node's parser knows a few dozen more, which all count as OTHER.
const labelledMethods = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])

/**
 * The route templates of an API, and of the two documents served beside
 * it: the `route` label of a request is one of these, or `unmatched`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const routeTemplates = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>
): (path: string) => string => {
  const routes = [
    ...Boundary.routesOf(api),
    ...["/openapi.json", "/docs"].map((path) => ({ path, pattern: new RegExp(`^${path.replace(".", "\\.")}$`) }))
  ]
  return (path) => routes.find((route) => route.pattern.test(path))?.path ?? "unmatched"
}

/**
 * The access log: one line per request (WARN for a declared 5xx, INFO
 * otherwise), and an error line with the cause for a request that failed
 * unexpectedly. A defect becomes a JSON 500 (never an empty body). The `route`
 * of the line and of the metrics is the template of the route the path
 * matches (`routeTemplates`), whatever the request's ids, or `unmatched`;
 * `method` is one of the usual seven or `OTHER`: no request adds a label
 * value. A request that Node cut at its deadline counts as the 408 Node
 * answered.
 *
 * @since 0.1.0
 * @category middleware
 */
export const accessLog = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>
) => {
  const templateOf = routeTemplates(api)
  return <E, R>(
    app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R | HttpServerRequest.HttpServerRequest> =>
    Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const began = performance.now()
      const path = request.url.split("?")[0] ?? request.url
      const route = templateOf(path)
      // the id as sent, only when it is one: a log line carries no arbitrary text from a path
      const chatSegment = /^\/chats\/([^/]+)/.exec(path)?.[1]
      const chatId = chatSegment !== undefined && uuid.test(chatSegment) ? chatSegment.toLowerCase() : null
      const exit = yield* Effect.exit(app)
      // A failure the platform turned into a client error (404 RouteNotFound)
      // was answered as such: log and count it with that status, not as a 500.
      const answered = Exit.isFailure(exit) ? (yield* HttpServerError.causeResponse(exit.cause))[0] : undefined
      const clientError = answered !== undefined && answered.status < 500 ? answered : undefined
      const interrupted = Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
      const response = Exit.isSuccess(exit) ? exit.value : clientError ?? HttpServerResponse.jsonUnsafe(
        { _tag: "InternalError", message: "the server failed unexpectedly: see its error log" },
        { status: interrupted ? (Boundary.cutAtDeadline(request) ? 408 : 499) : 500 }
      )
      const annotations = {
        method: request.method,
        route,
        status: response.status,
        duration_ms: Math.round((performance.now() - began) * 10) / 10,
        chat_id: chatId
      }
      if (Exit.isFailure(exit) && clientError === undefined && !interrupted) {
        yield* Effect.logError("request failed", exit.cause).pipe(Effect.annotateLogs(annotations))
      }
      // A 5xx the API declares (a turn whose workspace is stopped, 503 no_agent; a database outage, whose
      // cause its handler logs at ERROR) is an answer, routine for a stopped workspace: a warning, not an error.
      const level = response.status >= 500 ? Effect.logWarning : Effect.logInfo
      yield* level("request").pipe(Effect.annotateLogs(annotations))
      const labels = {
        method: labelledMethods.has(request.method) ? request.method : "OTHER",
        route,
        status: String(response.status)
      }
      yield* Metric.update(Metric.withAttributes(requestsTotal, labels), 1)
      yield* Metric.update(Metric.withAttributes(requestDuration, labels), (performance.now() - began) / 1000)
      return response
    })
}

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
  /** The largest request body accepted (413 above it); `defaultMaxBodyBytes` unless given. */
  readonly maxBodyBytes?: number | undefined
  /**
   * Who may call: a token file (`Auth.fromTokenFile`) or no one checked
   * (`Auth.disabled`). Unless given, the `Auth.Authentication` of the
   * context; with neither, the server does not start.
   */
  readonly authentication?: Auth.Authentication["Service"] | undefined
  /** The deadline of a request's headers; `defaultHeadersTimeout` unless given. */
  readonly headersTimeout?: Duration.Input | undefined
  /** The deadline of a whole request, its body included; `defaultRequestTimeout` unless given. */
  readonly requestTimeout?: Duration.Input | undefined
}

/**
 * The largest request body, in bytes, unless `ListenOptions.maxBodyBytes`
 * says otherwise: 1 MiB. The API's largest real body is a turn's message
 * (1,000 characters), so it leaves ample room. The service reads it from
 * `LAZYDIAL_HTTP_MAX_BODY_BYTES` (`Settings.maxBodyBytes`, 1 KiB to 64 MiB).
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultMaxBodyBytes = 1_048_576

/**
 * The deadline of a request's headers, from its first byte, unless
 * `ListenOptions.headersTimeout` says otherwise: 10 s. Node's own default is
 * 60 s.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultHeadersTimeout: Duration.Duration = Duration.seconds(10)

/**
 * The deadline of a whole request, its body included, from its first byte,
 * unless `ListenOptions.requestTimeout` says otherwise: 30 s. Node's own
 * default is 300 s. The largest body (1 MiB) must arrive at about 35 KB/s.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultRequestTimeout: Duration.Duration = Duration.seconds(30)

/**
 * A server that cannot start as configured: no authentication given, or
 * deadlines that contradict each other.
 *
 * @since 0.2.0
 * @category errors
 */
export class ServerMisconfigured extends Schema.TaggedError<ServerMisconfigured>()("ServerMisconfigured", {
  message: Schema.String
}) {}

/**
 * The server could not listen on its address: the message names the address
 * and the cause (the port in use, no permission, no such address).
 *
 * @since 0.2.0
 * @category errors
 */
export class CannotListen extends Schema.TaggedError<CannotListen>()("CannotListen", {
  address: Schema.String,
  code: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    const why = this.code === "EADDRINUSE"
      ? "the port is in use (EADDRINUSE): choose another --port, or stop what holds it"
      : this.code === "EACCES"
      ? "permission denied (EACCES): a port below 1024 needs privileges"
      : this.code === "EADDRNOTAVAIL"
      ? "no such address on this host (EADDRNOTAVAIL): check --host"
      : this.cause instanceof Error
      ? this.cause.message
      : String(this.cause)
    return `cannot listen on ${this.address}: ${why}`
  }
}

const listenError = (options: ListenOptions) => (error: { readonly cause: unknown }) => {
  const cause = error.cause
  const code = typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : "unknown"
  return new CannotListen({ address: `${options.host ?? "127.0.0.1"}:${options.port}`, code, cause })
}

// A Layer of `A` that fails: what a failed listen is instead of the server's Layer.
const refuse = <A>(error: CannotListen): Layer.Layer<A, CannotListen> => Layer.effectContext(Effect.fail(error))

const resolveAuthentication = (options: ListenOptions) =>
  options.authentication !== undefined
    ? Effect.succeed(options.authentication)
    : Effect.flatMap(Effect.serviceOption(Auth.Authentication), (found) =>
      Option.match(found, {
        onSome: Effect.succeed,
        onNone: () =>
          Effect.fail(
            new ServerMisconfigured({
              message: "the HTTP server was given no authentication: give it a token file " +
                "(--token-auth-file PATH or LAZYDIAL_TOKEN_AUTH_FILE), or --no-auth to serve anyone who reaches it"
            })
          )
      }))

// The server span of a request is named `http.server <METHOD>`, as the
// trace backends already know it (Effect 4's default name is the method alone).
const spanNames = Layer.succeed(HttpMiddleware.SpanNameGenerator)((request) => `http.server ${request.method}`)

// The served app: the boundary's checks, then the access log and metrics
// around the API (and /openapi.json and /docs, from the same HttpApi value),
// whose security middlewares answer to the authentication resolved here.
const serveApi = <Id extends string, Groups extends HttpApiGroup.Constraint, E, R>(
  api: HttpApi.HttpApi<Id, Groups>,
  routes: Layer.Layer<never, E, R>,
  options: ListenOptions
) =>
  Layer.unwrap(
    Effect.gen(function*() {
      const limit = options.maxBodyBytes ?? defaultMaxBodyBytes
      const authentication = yield* resolveAuthentication(options)
      const guard = Boundary.guard(Boundary.routesOf(api), limit)
      const log = accessLog(api)
      const docs = HttpApiSwagger.layer(api, { path: "/docs" })
      return HttpRouter.serve(Layer.mergeAll(routes, docs), {
        disableLogger: true,
        disableListenLog: true,
        middleware: (app) => log(guard(app))
      }).pipe(Layer.provide(Layer.succeed(Auth.Authentication)(authentication)))
    })
  ).pipe(Layer.provide(spanNames))

// The app on a Node server, with the order of shutdown: the server stops
// accepting and closes its idle keep-alive connections (Node's `close`),
// requests in flight get `grace` to finish, then the ones left are interrupted
// (an empty 503) and their connections closed.
const listen = <A, E, R>(options: ListenOptions, app: Layer.Layer<A, E, R>) =>
  Layer.unwrap(Effect.gen(function*() {
    const headers = Duration.fromInputUnsafe(options.headersTimeout ?? defaultHeadersTimeout)
    const request = Duration.fromInputUnsafe(options.requestTimeout ?? defaultRequestTimeout)
    const headersMs = Duration.toMillis(headers)
    const requestMs = Duration.toMillis(request)
    if (headersMs > requestMs) {
      return yield* new ServerMisconfigured({
        message: `the headers' deadline (${headersMs} ms: --headers-timeout-ms, LAZYDIAL_HTTP_HEADERS_TIMEOUT) ` +
          `is longer than the whole request's (${requestMs} ms: --request-timeout-ms, ` +
          "LAZYDIAL_HTTP_REQUEST_TIMEOUT)"
      })
    }
    const server = createServer({
      headersTimeout: headersMs,
      requestTimeout: requestMs,
      // Node checks the deadlines every 30 s unless told: a quarter of the shorter one (the headers'), at most a
      // second, keeps a request from outliving its deadline by more than that
      connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(headersMs / 4)))
    })
    const node = NodeHttpServer.layer(() => server, {
      port: options.port,
      host: options.host ?? "127.0.0.1",
      gracefulShutdownTimeout: options.grace ?? Duration.seconds(10)
    })
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
      Layer.provideMerge(node.pipe(
        Layer.catchTag("ServeError", (error) => refuse<Layer.Success<typeof node>>(listenError(options)(error)))
      ))
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
