/**
 * The service's HTTP API, as an `HttpApi` value. The server implements it
 * (`Server.ts`), and `HttpApiClient.make(Api)` is the typed SDK.
 *
 * | method | path | who | what |
 * |---|---|---|---|
 * | POST | /chats | a user | create a chat, optionally on a workspace the caller owns |
 * | GET | /chats/:chat_id | its owner | the chat and its binding (`null` when unset), with `binding` saying what this replica knows of it (`stale`: the current agent and build are answered, nothing is written) |
 * | PUT | /chats/:chat_id/workspace | its owner | change the workspace (one the caller owns); clears build and agent |
 * | POST | /chats/:chat_id/children | its owner | spawn a child chat; it inherits the binding and the owner |
 * | POST | /chats/:chat_id/turns | its owner | run a turn: connect (binding filled lazily) and exchange one message |
 * | GET | /workspaces | a user | the caller's workspaces with their current build and agent |
 * | POST | /workspaces/:workspace_id/stop | an operator | stop a workspace: its agent dies or hangs, and lookups answer "no agent" (only where the agents run) |
 * | POST | /workspaces/:workspace_id/start | an operator | start a stopped workspace: a new agent (only where the agents run) |
 * | POST | /workspaces/:workspace_id/rebuild | an operator | rebuild a running workspace: its old agent dies, hangs or leaves its port (only where the agents run: the one-process run, or `fleet`) |
 * | GET | /health | anyone | the process is up (always 200 while it serves) |
 * | GET | /ready | loopback, or a user | the database answers (503 `database_unavailable` during an outage) |
 * | GET | /metrics | loopback, or a user | the process's metrics in Prometheus text format |
 * | GET | /openapi.json | anyone | this API as an OpenAPI 3.1 document (`/docs`: Swagger UI, with its Authorize button) |
 *
 * "A user" is a caller with a token of the server's token file, sent as
 * `Authorization: Bearer <token>` (the document declares the `bearer`
 * scheme); without one, or with an unknown one, a route answers 401
 * `Unauthorized`. "An operator" is a user in the group `operators`; anyone
 * else gets 403 `Forbidden`. A chat or a workspace of another user does not
 * exist for the caller: 404, with the body of a missing one. "Loopback" is
 * judged on the connection's own remote address (127.0.0.0/8, ::1), never on
 * a header.
 *
 * Bad IDs and bodies are 400s (`HttpApiDecodeError`, declared on every route
 * by the `Boundary` middleware) whose `issues` name the field; an unknown chat
 * is a 404; a turn of a chat with no workspace is a 409 (the client's to fix);
 * an agent that cannot be reached is a 503 `TurnFailed`; a database fault on
 * any route is a 503 `DatabaseUnavailable` whose `reason` is
 * `database_unavailable`. A rebuild of a stopped workspace, or a start of a
 * running one, is a 409 that says which to send instead.
 *
 * @since 0.1.0
 */
import { AgentId, BuildId, ChatId, WorkspaceId } from "@lazydial/core"
import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpApiMiddleware from "effect/http-api/HttpApiMiddleware"
import * as HttpApiSchema from "effect/http-api/HttpApiSchema"
import * as HttpApiSecurity from "effect/http-api/HttpApiSecurity"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as SchemaTransformation from "effect/SchemaTransformation"
import type { CurrentUser } from "./Auth.js"
import { BindingState, ConnectOutcome, failureReasons } from "./Chats.js"
import { retireModes, stopModes } from "./Fleet.js"

/**
 * A struct that keeps its own name in the OpenAPI document. Effect 4 names a
 * schema's JSON side after its type, with `Encoded` appended (`ChatEncoded`),
 * unless the JSON side is named itself: the names are the contract the
 * generated clients use.
 */
const named = <const Fields extends Schema.Struct.Fields>(identifier: string, fields: Fields) =>
  Schema.Struct(fields).annotate({ identifier })

/**
 * A chat as JSON: unset binding fields are `null`.
 *
 * @since 0.1.0
 * @category schemas
 */
export class Chat extends Schema.Class<Chat>("Chat")(named("Chat", {
  chat_id: ChatId,
  parent_chat_id: Schema.NullOr(ChatId),
  workspace_id: Schema.NullOr(WorkspaceId),
  build_id: Schema.NullOr(BuildId),
  agent_id: Schema.NullOr(AgentId)
})) {}

/**
 * A chat as `GET /chats/:chat_id` answers it: the stored row, read with this
 * replica's view of its workspace, written nothing. `binding` says what the
 * view knows of the stored build and agent (`Chats.bindingStates`); when it
 * is `stale`, `build_id` and `agent_id` are the workspace's current ones (the
 * agent the chat's next turn goes to), not the stored ones, which the next
 * turn rewrites. In every other state they are as stored.
 *
 * @since 0.2.0
 * @category schemas
 */
export class ChatRead extends Schema.Class<ChatRead>("ChatRead")(named("ChatRead", {
  ...Chat.fields,
  binding: BindingState.annotate({
    description: "current: the stored build is the workspace's current one, as this replica knows; stale: a newer " +
      "build superseded it (build_id and agent_id are the current ones, in this answer only); stopped: the " +
      "workspace stopped after it; unknown: this replica cannot judge (it has not heard of the workspace, or does " +
      "not listen to notices); unbound: no agent yet (the next turn binds one)"
  })
})) {}

/**
 * @since 0.1.0
 * @category schemas
 */
export class Workspace extends Schema.Class<Workspace>("Workspace")(named("Workspace", {
  workspace_id: WorkspaceId,
  build_id: Schema.NullOr(BuildId),
  agent_id: Schema.NullOr(AgentId)
})) {}

/**
 * @since 0.1.0
 * @category schemas
 */
export class TurnResult extends Schema.Class<TurnResult>("TurnResult")(named("TurnResult", {
  /** The chat after the turn: its binding as the turn left it. */
  chat: Chat,
  agent_id: AgentId,
  /**
   * How the turn path connected: binding's `TurnOutcome` (`fast`, `confirmed`, `lookup_failed_kept`,
   * `switched`, `retried`, `lazy_bind`, `switched_by_notice`), or `direct` on a `--strategy latest` replica.
   */
  outcome: ConnectOutcome,
  reply: Schema.String
})) {}

/**
 * The kinds of issue a 400 names, in the words of the API's first version.
 *
 * @since 0.1.0
 * @category schemas
 */
export const issueKinds = [
  "Pointer",
  "Unexpected",
  "Missing",
  "Composite",
  "Refinement",
  "Transformation",
  "Type",
  "Forbidden"
] as const

/**
 * One thing wrong with a request: where (`path`, the field), and what is
 * expected there, in words (`message`), never the value sent.
 *
 * @since 0.1.0
 * @category schemas
 */
export class Issue extends Schema.Class<Issue>("Issue")(
  named("Issue", {
    _tag: Schema.Literals(issueKinds).annotate({ description: "The tag identifying the type of parse issue" }),
    path: Schema.Array(Schema.Union([Schema.String, Schema.Int])).annotate({
      description: "The path to the property where the issue occurred"
    }),
    message: Schema.String.annotate({ description: "A descriptive message explaining the issue" })
  }).annotate({ description: "Represents an error encountered while parsing a value to match the schema" })
) {}

const decodeErrorDescription = "The request did not match the expected schema"

/**
 * A request whose path, or body, does not match the route's schema: 400.
 * `message` joins the issues' messages.
 *
 * @since 0.1.0
 * @category errors
 */
export class HttpApiDecodeError extends Schema.Error<HttpApiDecodeError>("HttpApiDecodeError")(
  named("HttpApiDecodeError", {
    _tag: Schema.tag("HttpApiDecodeError"),
    issues: Schema.Array(Issue),
    message: Schema.String
  }).annotate({ description: decodeErrorDescription }),
  { httpApiStatus: 400, description: decodeErrorDescription }
) {}

/**
 * The middleware of every route: it declares `HttpApiDecodeError`, so the
 * OpenAPI document and the typed client know every route's 400. The server
 * (`Server.ts`) renders Effect's schema errors into it.
 *
 * @since 0.1.0
 * @category middleware
 */
export class Boundary extends HttpApiMiddleware.Service<Boundary>()("@lazydial/service/Api/Boundary", {
  error: HttpApiDecodeError
}) {}

/**
 * No token, or a token the server does not know: 401. The message never
 * says which.
 *
 * @since 0.2.0
 * @category errors
 */
export class Unauthorized extends Schema.Error<Unauthorized>("Unauthorized")(
  named("Unauthorized", {
    _tag: Schema.tag("Unauthorized"),
    message: Schema.String
  }),
  { httpApiStatus: 401 }
) {}

/**
 * The caller is known, and the route is not theirs to use: 403.
 *
 * @since 0.2.0
 * @category errors
 */
export class Forbidden extends Schema.Error<Forbidden>("Forbidden")(
  named("Forbidden", {
    _tag: Schema.tag("Forbidden"),
    message: Schema.String
  }),
  { httpApiStatus: 403 }
) {}

/**
 * The bearer scheme every authenticated route declares: a token of the
 * server's token file.
 *
 * @since 0.2.0
 * @category security
 */
export const bearer: HttpApiSecurity.Http = HttpApiSecurity.bearer.pipe(
  HttpApiSecurity.annotate(
    OpenApi.Description,
    "A token of the server's token file (--token-auth-file, in Kubernetes' format: token,user,uid[,groups])"
  )
)

/**
 * The middleware of every route but `/health`, `/ready` and `/metrics`: the
 * caller's bearer token names a user of the token file (else 401), who is
 * the `CurrentUser` of the handler.
 *
 * @since 0.2.0
 * @category middleware
 */
export class Authenticated extends HttpApiMiddleware.Service<Authenticated, { provides: CurrentUser }>()(
  "@lazydial/service/Api/Authenticated",
  { error: Unauthorized, security: { bearer } }
) {}

/**
 * The middleware of `/ready` and `/metrics`: open to a connection from the
 * loopback address (a probe or a scraper on the same host), else it needs a
 * token as `Authenticated` does.
 *
 * @since 0.2.0
 * @category middleware
 */
export class LoopbackOrToken extends HttpApiMiddleware.Service<LoopbackOrToken>()(
  "@lazydial/service/Api/LoopbackOrToken",
  { error: Unauthorized, security: { bearer } }
) {}

/**
 * The middleware of the control routes (rebuild, stop, start): the caller
 * must be in the group `operators` (else 403). Runs after `Authenticated`.
 *
 * @since 0.2.0
 * @category middleware
 */
export class OperatorsOnly extends HttpApiMiddleware.Service<OperatorsOnly, { requires: CurrentUser }>()(
  "@lazydial/service/Api/OperatorsOnly",
  { error: Forbidden }
) {}

/**
 * @since 0.1.0
 * @category errors
 */
export class ChatNotFound extends Schema.Error<ChatNotFound>("ChatNotFound")(
  named("ChatNotFound", {
    _tag: Schema.tag("ChatNotFound"),
    chat_id: ChatId,
    message: Schema.String
  }),
  { httpApiStatus: 404 }
) {}

/**
 * @since 0.1.0
 * @category errors
 */
export class WorkspaceNotFound extends Schema.Error<WorkspaceNotFound>("WorkspaceNotFound")(
  named("WorkspaceNotFound", {
    _tag: Schema.tag("WorkspaceNotFound"),
    workspace_id: WorkspaceId,
    message: Schema.String
  }),
  { httpApiStatus: 404 }
) {}

/**
 * The turn could not reach an agent: 503, retry later. `reason`: `no_agent`
 * (the workspace is stopped), `timeout`, `dial_failed`.
 *
 * @since 0.1.0
 * @category errors
 */
export class TurnFailed extends Schema.Error<TurnFailed>("TurnFailed")(
  named("TurnFailed", {
    _tag: Schema.tag("TurnFailed"),
    reason: Schema.Literals(failureReasons.filter((r) => r === "no_agent" || r === "timeout" || r === "dial_failed")),
    message: Schema.String
  }),
  { httpApiStatus: 503 }
) {}

/**
 * The chat has no workspace, so a turn has no agent to reach: 409, the
 * client's to fix (set a workspace, then retry).
 *
 * @since 0.1.0
 * @category errors
 */
export class NoWorkspace extends Schema.Error<NoWorkspace>("NoWorkspace")(
  named("NoWorkspace", {
    _tag: Schema.tag("NoWorkspace"),
    reason: Schema.Literal("no_workspace"),
    message: Schema.String
  }),
  { httpApiStatus: 409 }
) {}

/**
 * The database failed while serving the request: 503, retry later. Any route
 * can answer it; the replica keeps running.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseUnavailable extends Schema.Error<DatabaseUnavailable>("DatabaseUnavailable")(
  named("DatabaseUnavailable", {
    _tag: Schema.tag("DatabaseUnavailable"),
    reason: Schema.Literal("database_unavailable"),
    message: Schema.String
  }),
  { httpApiStatus: 503 }
) {}

/**
 * A rebuild, stop or start asked of a replica that runs no agents: 409. They
 * go to the `fleet` process's API, which has the same routes.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotTheFleet extends Schema.Error<NotTheFleet>("NotTheFleet")(
  named("NotTheFleet", {
    _tag: Schema.tag("NotTheFleet"),
    message: Schema.String
  }),
  { httpApiStatus: 409 }
) {}

/**
 * A rebuild of a stopped workspace: 409. Start it (`POST
 * /workspaces/:workspace_id/start`); a start makes a new agent.
 *
 * @since 0.2.0
 * @category errors
 */
export class WorkspaceStopped extends Schema.Error<WorkspaceStopped>("WorkspaceStopped")(
  named("WorkspaceStopped", {
    _tag: Schema.tag("WorkspaceStopped"),
    workspace_id: WorkspaceId,
    message: Schema.String
  }),
  { httpApiStatus: 409 }
) {}

/**
 * A start of a workspace that runs: 409. Rebuild it instead for a new agent.
 *
 * @since 0.2.0
 * @category errors
 */
export class WorkspaceRunning extends Schema.Error<WorkspaceRunning>("WorkspaceRunning")(
  named("WorkspaceRunning", {
    _tag: Schema.tag("WorkspaceRunning"),
    workspace_id: WorkspaceId,
    message: Schema.String
  }),
  { httpApiStatus: 409 }
) {}

/**
 * An id as the client sends it: UUIDs are case-insensitive, so the boundary
 * lower-cases them before the branded Schema checks them; the store and every
 * comparison see one spelling. A bad id's issue says what the id is (the
 * branded Schema's description), not only that it is not a UUID.
 */
const anyCase = <S extends Schema.Codec<string, string>>(id: S) => {
  const description = SchemaAST.resolve(id.ast)?.description
  const what = typeof description === "string" ? description : "a UUID"
  return Schema.String.annotate({ format: "uuid", description: `${what}, in any case` }).pipe(
    Schema.decodeTo(
      Schema.String.check(Schema.isUUID(undefined, { expected: what })),
      SchemaTransformation.toLowerCase()
    ),
    Schema.decodeTo(id),
    // inline in the document, as the plain string the client sends, not a component named after the id
    (schema) => schema.annotate({ identifier: undefined })
  )
}

// the rule in words, never the value: a 10 MB message must not come back in the 400
const messageRule = "a message is one line of at most 1000 characters"

const chatPath = { chat_id: anyCase(ChatId) }
const workspaceField = anyCase(WorkspaceId)

/**
 * @since 0.1.0
 * @category api
 */
export class ChatsGroup extends HttpApiGroup.make("chats").add(
  HttpApiEndpoint.post("create", "/chats", {
    payload: Schema.Struct({ workspace_id: Schema.optionalKey(Schema.NullOr(workspaceField)) }),
    success: Chat.pipe(HttpApiSchema.status(201)),
    error: [WorkspaceNotFound, DatabaseUnavailable]
  }),
  HttpApiEndpoint.get("get", "/chats/:chat_id", {
    params: chatPath,
    success: ChatRead,
    error: [ChatNotFound, DatabaseUnavailable]
  }),
  HttpApiEndpoint.put("setWorkspace", "/chats/:chat_id/workspace", {
    params: chatPath,
    payload: Schema.Struct({ workspace_id: Schema.NullOr(workspaceField) }),
    success: Chat,
    error: [ChatNotFound, WorkspaceNotFound, DatabaseUnavailable]
  }),
  HttpApiEndpoint.post("spawnChild", "/chats/:chat_id/children", {
    params: chatPath,
    success: Chat.pipe(HttpApiSchema.status(201)),
    error: [ChatNotFound, DatabaseUnavailable]
  }),
  HttpApiEndpoint.post("turn", "/chats/:chat_id/turns", {
    params: chatPath,
    payload: Schema.Struct({
      message: Schema.String.check(
        Schema.isMaxLength(1000, { message: messageRule }),
        // `u`: Effect exports a pattern to the OpenAPI document only as a Unicode RegExp, as JSON Schema reads it
        Schema.isPattern(/^[^\r\n]*$/u, { message: messageRule })
      )
    }),
    success: TurnResult,
    error: [ChatNotFound, NoWorkspace, TurnFailed, DatabaseUnavailable]
  })
).middleware(Authenticated) {}

/**
 * @since 0.1.0
 * @category api
 */
export class WorkspacesGroup extends HttpApiGroup.make("workspaces").add(
  HttpApiEndpoint.get("list", "/workspaces", { success: Schema.Array(Workspace), error: DatabaseUnavailable }),
  HttpApiEndpoint.post("rebuild", "/workspaces/:workspace_id/rebuild", {
    params: { workspace_id: workspaceField },
    payload: Schema.Struct({ mode: Schema.Literals(retireModes) }),
    success: Workspace,
    error: [WorkspaceNotFound, WorkspaceStopped, NotTheFleet, DatabaseUnavailable]
  }).middleware(OperatorsOnly),
  HttpApiEndpoint.post("stop", "/workspaces/:workspace_id/stop", {
    params: { workspace_id: workspaceField },
    payload: Schema.Struct({ mode: Schema.Literals(stopModes) }),
    success: Workspace,
    error: [WorkspaceNotFound, NotTheFleet, DatabaseUnavailable]
  }).middleware(OperatorsOnly),
  HttpApiEndpoint.post("start", "/workspaces/:workspace_id/start", {
    params: { workspace_id: workspaceField },
    success: Workspace,
    error: [WorkspaceNotFound, WorkspaceRunning, NotTheFleet, DatabaseUnavailable]
  }).middleware(OperatorsOnly)
).middleware(Authenticated) {}

/**
 * @since 0.1.0
 * @category api
 */
export class HealthGroup extends HttpApiGroup.make("health").add(
  HttpApiEndpoint.get("health", "/health", { success: Schema.Struct({ status: Schema.Literal("up") }) }),
  HttpApiEndpoint.get("ready", "/ready", {
    success: Schema.Struct({ status: Schema.Literal("ready") }),
    error: DatabaseUnavailable
  }).middleware(LoopbackOrToken)
) {}

/**
 * `GET /metrics`: every metric of the process's Effect registry (the
 * lazydial metrics, and `http_requests_total` and
 * `http_request_duration_seconds` by method, route template and status) in
 * Prometheus text format. Open to a loopback connection, else it needs a
 * token.
 *
 * @since 0.1.0
 * @category api
 */
export class MetricsGroup extends HttpApiGroup.make("metrics").add(
  HttpApiEndpoint.get("metrics", "/metrics", {
    success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
  }).middleware(LoopbackOrToken)
) {}

/**
 * @since 0.1.0
 * @category api
 */
export class Api extends HttpApi.make("lazydial")
  .add(ChatsGroup, WorkspacesGroup, HealthGroup, MetricsGroup)
  .middleware(Boundary)
  // A field the endpoint does not know is a 400 that names it, rather than
  // being dropped silently (a misspelt `workspaceId` would otherwise create a
  // chat with no workspace).
  .annotate(HttpApi.PayloadParseOptions, { onExcessProperty: "error" })
  .annotateMerge(OpenApi.annotations({ title: "lazydial chat service", version: "0.1.0" }))
{}

/**
 * The `fleet` process's API: the workspaces and health routes of `Api`.
 *
 * @since 0.1.0
 * @category api
 */
// the same groups as `Api`: the fleet's server reuses their handlers
export class FleetApi extends HttpApi.make("lazydial")
  .add(WorkspacesGroup, HealthGroup, MetricsGroup)
  .middleware(Boundary)
  .annotate(HttpApi.PayloadParseOptions, { onExcessProperty: "error" })
{}
