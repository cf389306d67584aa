/**
 * The HTTP boundary's checks that run before `HttpApiBuilder` decodes a
 * request, and the rendering of its decode errors. Each outcome, as the
 * client sees it:
 *
 * | request | answer |
 * |---|---|
 * | a body on a route with a method the path does not have | 405, `Allow` lists the methods it has |
 * | a path no route has | 404 `RouteNotFound` |
 * | a body that is not `application/json` | 415 `UnsupportedMediaType` |
 * | a body above the limit (`Content-Length`, or counted while read) | 413 `PayloadTooLarge` |
 * | a body cut at the request's deadline (Node has answered 408 and closed the connection) | 408, for the log and the metrics |
 * | a body that breaks off otherwise (the client went away) | 400 `UnreadableBody`, for the log and the metrics |
 * | a body that is not JSON (a UTF-8 BOM included) | 400 `MalformedJson` |
 * | JSON nested deeper than `maxJsonDepth` | 400 `MalformedJson` |
 * | a path or body that decodes badly | 400 `HttpApiDecodeError`: each issue names the field and what is expected, never the value |
 *
 * The JSON is parsed here once: the server request caches its text, so the
 * decoder reads the same string.
 *
 * @internal
 */
import * as ByteSize from "effect/ByteSize"
import * as Effect from "effect/Effect"
import * as HttpApi from "effect/http-api/HttpApi"
import type { HttpApiSchemaError } from "effect/http-api/HttpApiError"
import type * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Result from "effect/Result"
import * as SchemaAST from "effect/SchemaAST"
import * as SchemaIssue from "effect/SchemaIssue"
import * as Api from "../Api.js"

/**
 * How deep a request's JSON may nest. The API's deepest body is one object;
 * the bound keeps a hostile body (5,000 levels in 10 KB) away from the
 * recursive decoder.
 */
export const maxJsonDepth = 32

const problem = (status: number, tag: string, message: string, headers?: Record<string, string>) =>
  HttpServerResponse.jsonUnsafe({ _tag: tag, message }, { status, ...(headers ? { headers } : {}) })

interface Route {
  readonly method: string
  /** The route's template, as the API declares it: `/chats/:chat_id`. */
  readonly path: string
  readonly pattern: RegExp
}

/** The API's routes as (method, template, path pattern), from the `HttpApi` value itself. */
export const routesOf = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>
): ReadonlyArray<Route> => {
  const routes: Array<Route> = []
  HttpApi.reflect(api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => {
      const source = endpoint.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[A-Za-z_]+/g, "[^/]+")
      routes.push({ method: endpoint.method, path: endpoint.path, pattern: new RegExp(`^${source}$`) })
    }
  })
  return routes
}

/** The deepest nesting of a parsed JSON value; stops counting past `limit`. */
const depthOf = (value: unknown, limit: number): number => {
  let deepest = 0
  const stack: Array<[unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [next, depth] = stack.pop()!
    if (typeof next !== "object" || next === null) continue
    if (depth > deepest) deepest = depth
    if (deepest > limit) return deepest
    for (const child of Object.values(next)) stack.push([child, depth + 1])
  }
  return deepest
}

/**
 * Whether Node cut the request at its deadline (and answered 408 itself): the socket carries the error it was
 * destroyed with.
 */
export const cutAtDeadline = (request: HttpServerRequest.HttpServerRequest): boolean => {
  // safe: a read-only probe of the Node request behind the server request; every step is checked
  const socket = (request.source as { readonly socket?: { readonly errored?: unknown } }).socket
  const errored = socket?.errored
  return typeof errored === "object" && errored !== null && "code" in errored &&
    errored.code === "ERR_HTTP_REQUEST_TIMEOUT"
}

const hasBody = (request: HttpServerRequest.HttpServerRequest) => {
  const length = request.headers["content-length"]
  return length !== undefined ? Number(length) > 0 : request.headers["transfer-encoding"] !== undefined
}

const isJson = (contentType: string | undefined) =>
  contentType !== undefined && /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType)

/**
 * Checks method, media type, size and JSON shape before `app` sees the
 * request.
 */
export const guard = (
  routes: ReadonlyArray<Route>,
  maxBodyBytes: number
) =>
<E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = request.url.split("?")[0] ?? request.url
    const matching = routes.filter((route) => route.pattern.test(path))
    if (matching.length > 0 && !matching.some((route) => route.method === request.method)) {
      const allow = [...new Set(matching.map((route) => route.method))].join(", ")
      return problem(405, "MethodNotAllowed", `${request.method} is not allowed on ${path}: use ${allow}`, {
        allow
      })
    }
    if (hasBody(request) && request.method !== "GET") {
      if (!isJson(request.headers["content-type"])) {
        return problem(415, "UnsupportedMediaType", "send the body as JSON, with Content-Type: application/json")
      }
      const tooLarge = problem(
        413,
        "PayloadTooLarge",
        `the body is larger than ${maxBodyBytes} bytes (LAZYDIAL_HTTP_MAX_BODY_BYTES)`
      )
      if (Number(request.headers["content-length"] ?? 0) > maxBodyBytes) return tooLarge
      const read = yield* request.arrayBuffer.pipe(
        Effect.provideService(HttpServerRequest.MaxBodySize, ByteSize.bytes(maxBodyBytes)),
        Effect.result
      )
      if (Result.isFailure(read)) {
        const reason = read.failure.reason
        if (reason._tag === "RequestParseError" && reason.reason === "BodyTooLarge") return tooLarge
        return cutAtDeadline(request)
          ? problem(408, "RequestTimeout", "the body did not arrive within the request's deadline")
          : problem(400, "UnreadableBody", "the body broke off before its end")
      }
      const bytes = read.success
      // A leading BOM is refused, as RFC 8259 allows a parser to: the request's
      // text (a TextDecoder's) would drop it silently.
      const head = new Uint8Array(bytes, 0, Math.min(3, bytes.byteLength))
      if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) {
        return problem(400, "MalformedJson", "the body is not valid JSON (a UTF-8 byte order mark precedes it)")
      }
      let parsed: unknown
      try {
        parsed = JSON.parse(yield* Effect.orDie(request.text))
      } catch (error) {
        return problem(400, "MalformedJson", `the body is not valid JSON (${String((error as Error).message)})`)
      }
      if (depthOf(parsed, maxJsonDepth) > maxJsonDepth) {
        return problem(400, "MalformedJson", `the body's JSON nests deeper than ${maxJsonDepth} levels`)
      }
    }
    return yield* app
  })

// A message longer than this is cut: an issue must never carry a large input back.
const maxIssueChars = 200

/** An issue of Effect's schema tree, flattened: where, which kind, and the rule in words. */
interface Flat {
  readonly path: ReadonlyArray<PropertyKey>
  readonly tag: typeof Api.issueKinds[number]
  readonly rule: string
}

const messageOf = (annotations: { readonly message?: unknown } | undefined): string | undefined =>
  typeof annotations?.message === "string" ? annotations.message : undefined

/** The fields a struct knows, for the message of a field it does not. */
const knownFields = (ast: SchemaAST.AST): string =>
  SchemaAST.isObjects(ast) ? ast.propertySignatures.map((field) => JSON.stringify(field.name)).join(" | ") : ""

// Effect's own words for a leaf (`Expected string`, `Expected "die" | "hang"`)
const standard = SchemaIssue.makeFormatterStandardSchemaV1()
const effectRule = (issue: SchemaIssue.Issue): string => standard(issue).issues[0]?.message ?? "Expected a valid value"

/** Walks Effect's issue tree down to its leaves, each with its path and its rule. */
const flatten = (issue: SchemaIssue.Issue, path: ReadonlyArray<PropertyKey>, rule?: string): Array<Flat> => {
  switch (issue._tag) {
    case "Filter": {
      // the filter's own words: its message, else what it expects
      const own = messageOf(issue.filter.annotations) ??
        (typeof issue.filter.annotations?.expected === "string"
          ? `Expected ${issue.filter.annotations.expected}`
          : undefined)
      return flatten(issue.issue, path, rule ?? own).map((flat): Flat =>
        flat.tag === "Type" ? { ...flat, tag: "Refinement" } : flat
      )
    }
    case "Encoding":
      return flatten(issue.issue, path, rule)
    case "Pointer":
      return flatten(issue.issue, [...path, ...issue.path], rule)
    case "Composite":
      return issue.issues.flatMap((inner) => flatten(inner, path, rule))
    case "AnyOf": {
      if (issue.issues.length === 0) return [{ path, tag: "Type", rule: rule ?? effectRule(issue) }]
      // A union tries only the members of the input's type: say the others too (a field that may be null).
      const untried = SchemaAST.isUnion(issue.ast) && rule === undefined
        ? issue.ast.types.filter(SchemaAST.isNull).map((): Flat => ({ path, tag: "Type", rule: "Expected null" }))
        : []
      return [...issue.issues.flatMap((inner) => flatten(inner, path, rule)), ...untried]
    }
    case "MissingKey":
      return [{ path, tag: "Missing", rule: rule ?? "is missing" }]
    case "UnexpectedKey": {
      const known = knownFields(issue.ast)
      return [{ path, tag: "Unexpected", rule: rule ?? `is unexpected${known === "" ? "" : `, expected: ${known}`}` }]
    }
    case "Forbidden":
      return [{ path, tag: "Forbidden", rule: rule ?? effectRule(issue) }]
    case "InvalidValue":
      return [{ path, tag: "Refinement", rule: rule ?? effectRule(issue) }]
    case "InvalidType":
    case "OneOf":
      return [{ path, tag: "Type", rule: rule ?? effectRule(issue) }]
  }
}

/**
 * Effect's decode error of a request, as the 400 the API declares: each issue
 * names its field and says what is expected, in words; a union's alternatives
 * at one field are joined with "or". The value sent is never echoed.
 */
export const decodeError = (error: HttpApiSchemaError): Api.HttpApiDecodeError => {
  const byField = new Map<string, { tag: Flat["tag"]; path: ReadonlyArray<PropertyKey>; rules: Array<string> }>()
  for (const flat of flatten(error.cause.issue, [])) {
    const field = flat.path.length === 0 ? "the body" : flat.path.map(String).join(".")
    // `Expected a chat's id (a UUID), got "nope"` → `Expected a chat's id (a UUID)`: the rule, not the value
    const cut = flat.rule.replace(/,? (?:got|actual) [\s\S]*$/, "")
    const rule = cut.length > maxIssueChars ? `${cut.slice(0, maxIssueChars)}…` : cut
    const entry = byField.get(field) ?? { tag: flat.tag, path: flat.path, rules: [] }
    if (!entry.rules.includes(rule)) entry.rules.push(rule)
    byField.set(field, entry)
  }
  const issues = [...byField].map(([field, { path, rules, tag }]) =>
    new Api.Issue({
      _tag: tag,
      path: path.map((key) => typeof key === "number" ? key : String(key)),
      message: `${field}: ${rules.join(" or ")}`
    })
  )
  return new Api.HttpApiDecodeError({ issues, message: issues.map((issue) => issue.message).join("; ") })
}
