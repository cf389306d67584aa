/**
 * The HTTP boundary's checks that run before `HttpApiBuilder` decodes a
 * request, and the rewrite of its decode errors. Each outcome, as the client
 * sees it:
 *
 * | request | answer |
 * |---|---|
 * | a body on a route with a method the path does not have | 405, `Allow` lists the methods it has |
 * | a path no route has | 404 `RouteNotFound` |
 * | a body that is not `application/json` | 415 `UnsupportedMediaType` |
 * | a body above the limit (`Content-Length`, or counted while read) | 413 `PayloadTooLarge` |
 * | a body that is not JSON (a UTF-8 BOM included) | 400 `MalformedJson` |
 * | JSON nested deeper than `maxJsonDepth` | 400 `MalformedJson` |
 * | a body that decodes badly | 400 `HttpApiDecodeError`: each issue names the field and what is expected, never the value |
 *
 * The JSON is parsed here once: the server request caches its text, so the
 * decoder reads the same string.
 *
 * @internal
 */
import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiReflect from "@effect/platform/HttpApi"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/**
 * How deep a request's JSON may nest. The API's deepest body is one object;
 * the bound keeps a hostile body (5,000 levels in 10 KB) away from the
 * recursive decoder.
 */
export const maxJsonDepth = 32

const problem = (status: number, tag: string, message: string, headers?: Record<string, string>) =>
  HttpServerResponse.unsafeJson({ _tag: tag, message }, { status, ...(headers ? { headers } : {}) })

interface Route {
  readonly method: string
  readonly pattern: RegExp
}

/** The API's routes as (method, path pattern) pairs, from the `HttpApi` value itself. */
export const routesOf = (api: HttpApi.HttpApi.Any): ReadonlyArray<Route> => {
  const routes: Array<Route> = []
  // safe: reflect only reads the groups and endpoints, whatever the API's types
  HttpApiReflect.reflect(api as HttpApi.HttpApi.AnyWithProps, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => {
      const source = endpoint.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:[A-Za-z_]+/g, "[^/]+")
      routes.push({ method: endpoint.method, pattern: new RegExp(`^${source}$`) })
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

const hasBody = (request: HttpServerRequest.HttpServerRequest) => {
  const length = request.headers["content-length"]
  return length !== undefined ? Number(length) > 0 : request.headers["transfer-encoding"] !== undefined
}

const isJson = (contentType: string | undefined) =>
  contentType !== undefined && /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType)

/**
 * Checks method, media type, size and JSON shape before `app` sees the
 * request, and rewrites its decode errors.
 */
export const guard = (
  routes: ReadonlyArray<Route>,
  maxBodyBytes: number
) =>
(app: HttpApp.Default): HttpApp.Default =>
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
      const text = yield* request.text.pipe(
        HttpServerRequest.withMaxBodySize(Option.some(maxBodyBytes)),
        Effect.option
      )
      if (Option.isNone(text)) return tooLarge
      let parsed: unknown
      try {
        // JSON.parse rejects a leading BOM, as RFC 8259 allows a parser to
        parsed = JSON.parse(text.value)
      } catch (error) {
        return problem(400, "MalformedJson", `the body is not valid JSON (${String((error as Error).message)})`)
      }
      if (depthOf(parsed, maxJsonDepth) > maxJsonDepth) {
        return problem(400, "MalformedJson", `the body's JSON nests deeper than ${maxJsonDepth} levels`)
      }
    }
    // a pre-response handler: the app sends its own response before a
    // middleware sees it, so only this hook can replace the body
    yield* HttpApp.appendPreResponseHandler((_, response) => Effect.succeed(readableDecodeError(response)))
    return yield* app
  })

/** One of Schema's `ArrayFormatter` issues, as `HttpApiDecodeError` encodes them. */
interface Issue {
  readonly _tag: string
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

// A message longer than this is cut: an issue must never carry a large input back.
const maxIssueChars = 200

/**
 * `HttpApiBuilder` fails a bad request with an `HttpApiDecodeError` whose
 * message is Schema's tree ("From side refinement failure", the input
 * echoed). Replace it: each issue names its field and says what is expected,
 * in words; a union's alternatives at one field are joined with "or".
 */
const readableDecodeError = (
  response: HttpServerResponse.HttpServerResponse
): HttpServerResponse.HttpServerResponse => {
  if (response.status !== 400 || response.body._tag !== "Uint8Array") return response
  let error: { readonly message?: unknown; readonly issues?: unknown }
  try {
    error = JSON.parse(new TextDecoder().decode(response.body.body))
  } catch {
    return response
  }
  // the encoded HttpApiDecodeError: `issues` and `message` (its `_tag` is not in the body)
  if (!Array.isArray(error.issues) || typeof error.message !== "string") return response
  const byField = new Map<string, { tag: string; path: ReadonlyArray<PropertyKey>; rules: Array<string> }>()
  // safe: an array of issues is what HttpApiDecodeError encodes (ArrayFormatter's)
  for (const issue of error.issues as ReadonlyArray<Issue>) {
    const field = issue.path.length === 0 ? "the body" : issue.path.map(String).join(".")
    // `Expected a chat's id (a UUID), actual "nope"` → `Expected a chat's id (a UUID)`: the rule, not the value
    const cut = issue.message.replace(/,? actual [\s\S]*$/, "")
    const rule = cut.length > maxIssueChars ? `${cut.slice(0, maxIssueChars)}…` : cut
    const entry = byField.get(field) ?? { tag: issue._tag, path: issue.path, rules: [] }
    if (!entry.rules.includes(rule)) entry.rules.push(rule)
    byField.set(field, entry)
  }
  const issues = [...byField].map(([field, { path, rules, tag }]) => ({
    _tag: tag,
    path,
    message: `${field}: ${rules.join(" or ")}`
  }))
  return HttpServerResponse.unsafeJson(
    { _tag: "HttpApiDecodeError", issues, message: issues.map((issue) => issue.message).join("; ") },
    { status: 400 }
  )
}
