/**
 * The service's HTTP API, as an `HttpApi` value. The server implements it
 * (`Server.ts`), and `HttpApiClient.make(Api)` is the typed SDK.
 *
 * | method | path | what |
 * |---|---|---|
 * | POST | /chats | create a chat, optionally on a workspace |
 * | GET | /chats/:chat_id | the chat and its binding (`null` when unset) |
 * | PUT | /chats/:chat_id/workspace | change the workspace; clears build and agent |
 * | POST | /chats/:chat_id/children | spawn a child chat; it inherits the binding |
 * | POST | /chats/:chat_id/turns | run a turn: connect (binding filled lazily) and exchange one message |
 * | GET | /workspaces | workspaces with their current build and agent |
 * | POST | /workspaces/:workspace_id/stop | stop a workspace: its agent dies or hangs, and lookups answer "no agent" (only where the agents run) |
 * | POST | /workspaces/:workspace_id/rebuild | rebuild a workspace: its old agent dies, hangs or leaves its port (only where the agents run: the one-process run, or `fleet`) |
 * | GET | /health | the process is up (always 200 while it serves) |
 * | GET | /ready | the database answers (503 `database_unavailable` during an outage) |
 * | GET | /metrics | the process's metrics in Prometheus text format |
 * | GET | /openapi.json | this API as an OpenAPI 3.1 document (`/docs`: Swagger UI) |
 *
 * Bad IDs and bodies are 400s whose `issues` name the field; an unknown chat
 * is a 404; a turn of a chat with no workspace is a 409 (the client's to fix);
 * an agent that cannot be reached is a 503 `TurnFailed`; a database fault on
 * any route is a 503 `DatabaseUnavailable` whose `reason` is
 * `database_unavailable`.
 *
 * @since 0.1.0
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { AgentId, BuildId, ChatId, WorkspaceId } from "@lazydial/core"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as AST from "effect/SchemaAST"
import { failureReasons } from "./Chats.js"
import { retireModes, stopModes } from "./Fleet.js"

/**
 * A chat as JSON: unset binding fields are `null`.
 *
 * @since 0.1.0
 * @category schemas
 */
export class Chat extends Schema.Class<Chat>("Chat")({
  chat_id: ChatId,
  parent_chat_id: Schema.NullOr(ChatId),
  workspace_id: Schema.NullOr(WorkspaceId),
  build_id: Schema.NullOr(BuildId),
  agent_id: Schema.NullOr(AgentId)
}) {}

/**
 * @since 0.1.0
 * @category schemas
 */
export class Workspace extends Schema.Class<Workspace>("Workspace")({
  workspace_id: WorkspaceId,
  build_id: Schema.NullOr(BuildId),
  agent_id: Schema.NullOr(AgentId)
}) {}

/**
 * @since 0.1.0
 * @category schemas
 */
export class TurnResult extends Schema.Class<TurnResult>("TurnResult")({
  /** The chat after the turn: its binding as the turn left it. */
  chat: Chat,
  agent_id: AgentId,
  /** How the turn path connected: `fast`, `confirmed`, `switched`, `retried`, `lazy_bind`, ... */
  outcome: Schema.String,
  reply: Schema.String
}) {}

/**
 * @since 0.1.0
 * @category errors
 */
export class ChatNotFound extends Schema.TaggedError<ChatNotFound>()("ChatNotFound", {
  chat_id: ChatId,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

/**
 * @since 0.1.0
 * @category errors
 */
export class WorkspaceNotFound extends Schema.TaggedError<WorkspaceNotFound>()("WorkspaceNotFound", {
  workspace_id: WorkspaceId,
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

/**
 * The turn could not reach an agent: 503, retry later. `reason`: `no_agent`
 * (the workspace is stopped), `timeout`, `dial_failed`.
 *
 * @since 0.1.0
 * @category errors
 */
export class TurnFailed extends Schema.TaggedError<TurnFailed>()("TurnFailed", {
  reason: Schema.Literal(...failureReasons.filter((r) => r === "no_agent" || r === "timeout" || r === "dial_failed")),
  message: Schema.String
}, HttpApiSchema.annotations({ status: 503 })) {}

/**
 * The chat has no workspace, so a turn has no agent to reach: 409, the
 * client's to fix (set a workspace, then retry).
 *
 * @since 0.1.0
 * @category errors
 */
export class NoWorkspace extends Schema.TaggedError<NoWorkspace>()("NoWorkspace", {
  reason: Schema.Literal("no_workspace"),
  message: Schema.String
}, HttpApiSchema.annotations({ status: 409 })) {}

/**
 * The database failed while serving the request: 503, retry later. Any route
 * can answer it; the replica keeps running.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatabaseUnavailable extends Schema.TaggedError<DatabaseUnavailable>()("DatabaseUnavailable", {
  reason: Schema.Literal("database_unavailable"),
  message: Schema.String
}, HttpApiSchema.annotations({ status: 503 })) {}

/**
 * A rebuild asked of a replica that runs no agents: 409. Rebuilds go to the
 * `fleet` process's API, which has the same route.
 *
 * @since 0.1.0
 * @category errors
 */
export class NotTheFleet extends Schema.TaggedError<NotTheFleet>()("NotTheFleet", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 409 })) {}

/**
 * An id as the client sends it: UUIDs are case-insensitive, so the boundary
 * lower-cases them before the branded Schema checks them; the store and every
 * comparison see one spelling.
 */
const anyCase = <A, R>(id: Schema.Schema<A, string, R>) =>
  Schema.compose(Schema.Lowercase, id).annotations({
    // the contract shows what the client sends: a UUID, in any case
    jsonSchema: {
      type: "string",
      format: "uuid",
      description: `${AST.getDescriptionAnnotation(id.ast).pipe(Option.getOrElse(() => "a UUID"))}, in any case`
    }
  })

/**
 * A request body: a field the endpoint does not know is a 400 that names it,
 * rather than being dropped silently (a misspelt `workspaceId` would
 * otherwise create a chat with no workspace).
 */
const body = <Fields extends Schema.Struct.Fields>(fields: Fields) =>
  Schema.Struct(fields).annotations({ parseOptions: { onExcessProperty: "error" } })

// the rule in words, never the value: a 10 MB message must not come back in the 400
const messageRule = "a message is one line of at most 1000 characters"

const chatPath = Schema.Struct({ chat_id: anyCase(ChatId) })
const workspaceField = anyCase(WorkspaceId)

/**
 * @since 0.1.0
 * @category api
 */
export class ChatsGroup extends HttpApiGroup.make("chats")
  .add(
    HttpApiEndpoint.post("create", "/chats")
      .setPayload(body({ workspace_id: Schema.optionalWith(Schema.NullOr(workspaceField), { exact: true }) }))
      .addSuccess(Chat, { status: 201 })
  )
  .add(
    HttpApiEndpoint.get("get", "/chats/:chat_id")
      .setPath(chatPath)
      .addSuccess(Chat)
      .addError(ChatNotFound)
  )
  .add(
    HttpApiEndpoint.put("setWorkspace", "/chats/:chat_id/workspace")
      .setPath(chatPath)
      .setPayload(body({ workspace_id: Schema.NullOr(workspaceField) }))
      .addSuccess(Chat)
      .addError(ChatNotFound)
  )
  .add(
    HttpApiEndpoint.post("spawnChild", "/chats/:chat_id/children")
      .setPath(chatPath)
      .addSuccess(Chat, { status: 201 })
      .addError(ChatNotFound)
  )
  .add(
    HttpApiEndpoint.post("turn", "/chats/:chat_id/turns")
      .setPath(chatPath)
      .setPayload(body({
        message: Schema.String.pipe(
          Schema.maxLength(1000, { message: () => messageRule }),
          Schema.pattern(/^[^\r\n]*$/, { message: () => messageRule })
        )
      }))
      .addSuccess(TurnResult)
      .addError(ChatNotFound)
      .addError(NoWorkspace)
      .addError(TurnFailed)
  )
  .addError(DatabaseUnavailable)
{}

/**
 * @since 0.1.0
 * @category api
 */
export class WorkspacesGroup extends HttpApiGroup.make("workspaces")
  .add(HttpApiEndpoint.get("list", "/workspaces").addSuccess(Schema.Array(Workspace)))
  .add(
    HttpApiEndpoint.post("rebuild", "/workspaces/:workspace_id/rebuild")
      .setPath(Schema.Struct({ workspace_id: workspaceField }))
      .setPayload(body({ mode: Schema.Literal(...retireModes) }))
      .addSuccess(Workspace)
      .addError(WorkspaceNotFound)
      .addError(NotTheFleet)
  )
  .add(
    HttpApiEndpoint.post("stop", "/workspaces/:workspace_id/stop")
      .setPath(Schema.Struct({ workspace_id: workspaceField }))
      .setPayload(body({ mode: Schema.Literal(...stopModes) }))
      .addSuccess(Workspace)
      .addError(WorkspaceNotFound)
      .addError(NotTheFleet)
  )
  .addError(DatabaseUnavailable)
{}

/**
 * @since 0.1.0
 * @category api
 */
export class HealthGroup extends HttpApiGroup.make("health")
  .add(HttpApiEndpoint.get("health", "/health").addSuccess(Schema.Struct({ status: Schema.Literal("up") })))
  .add(
    HttpApiEndpoint.get("ready", "/ready")
      .addSuccess(Schema.Struct({ status: Schema.Literal("ready") }))
      .addError(DatabaseUnavailable)
  )
{}

/**
 * `GET /metrics`: every metric of the process's Effect registry (the
 * lazydial metrics, and `http_requests_total` and
 * `http_request_duration_seconds` by method, route and status) in
 * Prometheus text format.
 *
 * @since 0.1.0
 * @category api
 */
export class MetricsGroup extends HttpApiGroup.make("metrics")
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(HttpApiSchema.Text({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
  )
{}

/**
 * @since 0.1.0
 * @category api
 */
export class Api extends HttpApi.make("lazydial")
  .add(ChatsGroup)
  .add(WorkspacesGroup)
  .add(HealthGroup)
  .add(MetricsGroup)
  .annotate(OpenApi.Title, "lazydial chat service")
  .annotate(OpenApi.Version, "0.1.0")
{}

/**
 * The `fleet` process's API: the workspaces and health routes of `Api`.
 *
 * @since 0.1.0
 * @category api
 */
// the same id as `Api`: the fleet's server reuses the handlers of these groups
export class FleetApi extends HttpApi.make("lazydial").add(WorkspacesGroup).add(HealthGroup).add(MetricsGroup) {}
