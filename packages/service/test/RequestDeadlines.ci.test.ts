/**
 * The request deadlines of the real server (in-process, 127.0.0.1:0), run by
 * scripts/test-replicas.sh: real time, since the deadlines are Node's server
 * timers, which no test clock drives. Headers that never end and a body that
 * trickles get a 408 and a closed connection at their deadlines, counted by
 * route; a request in time is served.
 */
import { expect, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Server from "../src/Server.js"
import { portOf as portOfUrl, raw } from "./rawHttp.js"
import * as Users from "./users.js"

const TestLayer = Users.serverLayer({ headersTimeout: "400 millis", requestTimeout: "800 millis" })

const portOf = Effect.map(Server.baseUrl, portOfUrl)

const metricsText = Effect.flatMap(
  Server.baseUrl,
  (url) => Effect.promise(async () => (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(20_000) })).text())
)

layer(TestLayer, { timeout: 60_000, excludeTestServices: true })(
  "the request deadlines (400 ms headers, 800 ms request)",
  (it) => {
    it.effect(
      "headers that never end: 408 and the connection closed at the headers' deadline",
      () =>
        Effect.gen(function*() {
          const port = yield* portOf
          const result = yield* raw(
            port,
            ["GET /health HTTP/1.1\r\n", "host: x\r\n", ...Array(40).fill("x-slow: 1\r\n")],
            100
          )
          expect(result.text).toMatch(/^HTTP\/1\.1 408 /)
          // the deadline, plus at most Node's check interval (100 ms here) and some scheduling
          expect(result.closedAfterMs).toBeGreaterThanOrEqual(350)
          expect(result.closedAfterMs).toBeLessThan(1_500)
        }),
      20_000
    )

    it.effect(
      "a body that trickles: 408 and the connection closed at the request's deadline, counted as a 408",
      () =>
        Effect.gen(function*() {
          const port = yield* portOf
          const body = JSON.stringify({ workspace_id: null })
          const head = `POST /chats HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${Users.tokens.alice}\r\n` +
            `content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`
          const result = yield* raw(port, [head, ...body.split("")], 200)
          expect(result.text).toMatch(/^HTTP\/1\.1 408 /)
          expect(result.closedAfterMs).toBeGreaterThanOrEqual(750)
          expect(result.closedAfterMs).toBeLessThan(2_000)
          const metrics = yield* metricsText
          expect(metrics).toMatch(/^http_requests_total\{method="POST",route="\/chats",status="408"\} \d+$/m)
        }),
      20_000
    )

    it.effect("a request that arrives in time is served", () =>
      Effect.gen(function*() {
        const port = yield* portOf
        const result = yield* raw(port, ["GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"], 10)
        expect(result.text).toMatch(/^HTTP\/1\.1 200 /)
      }), 20_000)
  }
)
