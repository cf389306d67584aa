/**
 * The users of the in-process server tests, from a token file's text: two
 * users and an operator, each with a fixed token.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpApiClient from "effect/http-api/HttpApiClient"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as Layer from "effect/Layer"
import * as Api from "../src/Api.js"
import * as Auth from "../src/Auth.js"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"

export const tokens = {
  alice: "alice-token-0123456789abcdef",
  bob: "bob-token-0123456789abcdef",
  ops: "ops-token-0123456789abcdef"
} as const

export type Name = keyof typeof tokens

export const tokenFileText = [
  "# the test users",
  `${tokens.alice},alice,1001`,
  `${tokens.bob},bob,1002,dev`,
  `${tokens.ops},ops,1003,"dev,${Auth.operators}"`
].join("\n")

export const authentication: Auth.Authentication["Service"] = Auth.fromTokenFile(
  Effect.runSync(Auth.parseTokenFile("test/users.ts", tokenFileText))
)

/** `fetch`'s headers of a user's requests. */
export const bearer = (name: Name): Record<string, string> => ({ authorization: `Bearer ${tokens[name]}` })

/** The typed client of the API, calling as `name`. */
export const client = (name: Name) =>
  Effect.flatMap(Server.baseUrl, (baseUrl) =>
    HttpApiClient.make(Api.Api, {
      baseUrl,
      transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(tokens[name]))
    }))

/**
 * The real server (127.0.0.1:0) with these users, over an in-process instance
 * on PGlite with notices off, and the request deadlines given.
 */
export const serverLayer = (
  deadlines: { readonly headersTimeout: Duration.Input; readonly requestTimeout: Duration.Input }
) =>
  Server.layer({ port: 0, authentication, ...deadlines }).pipe(
    Layer.provideMerge(
      Service.layer({ validationDelay: "500 millis", dialTimeout: "5 seconds", notices: false }, Service.makeCounters())
    ),
    Layer.provideMerge(Service.layerDatabase(undefined))
  )
