/**
 * Every variable the service reads changes what it does: one test each,
 * named by the variable, that reads the variable as `serve` or `fleet` does
 * (`Cli.serveOptions`, `Cli.fleetOptions`, with no flag given) and shows its
 * effect on the real wiring (the replica's turn path on PGlite, the HTTP
 * server, the fleet), and that a bad value is refused, naming the variable.
 * The last tests check that every variable of `Settings.variables` has its
 * test here, and that docs/deployment.md lists exactly these variables.
 *
 * Real sockets, agents and an embedded database: real time, each test
 * bounded. The effects that need PostgreSQL (the pool, the statement timeout,
 * the query deadline) are in Settings.ci.test.ts.
 */
import { expect, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { RebuildNotices } from "@lazydial/binding"
import { AgentDialer, type AgentId, type ChatId, type WorkspaceId } from "@lazydial/core"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as Net from "node:net"
import * as path from "node:path"
import * as Auth from "../src/Auth.js"
import { Chats } from "../src/Chats.js"
import * as Cli from "../src/Cli.js"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Fleet from "../src/Fleet.js"
import * as Probe from "../src/Probe.js"
import * as Processes from "../src/Processes.js"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"
import * as Settings from "../src/Settings.js"
import * as SocketDialer from "../src/SocketDialer.js"
import { counters, fleetWith, noServeFlags, onServer, refusal, serveWith, withEnv } from "./serveOptions.js"

const tested = new Set<string>()

const millis = (duration: Duration.Input | undefined) =>
  duration === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(duration))

// safe: fresh UUIDs are valid ids
const newWorkspace = () => randomUUID() as WorkspaceId

/** The replica's turn path (with agents in this process) as `options` wire it, for `use`. */
const onInstance = <A, E>(
  options: Processes.ServeOptions,
  use: Effect.Effect<A, E, Layer.Success<ReturnType<typeof Service.layer>> | Scope.Scope>
) =>
  Effect.scoped(
    Effect.flatMap(
      Layer.build(Service.layer(options, counters, options.strategy)),
      (context) => Effect.provide(use, context)
    )
  )

/** A workspace with a running agent, and a chat on it bound by a first turn. */
const boundChat = Effect.gen(function*() {
  const chats = yield* Chats
  const workspaceId = newWorkspace()
  const agent = yield* ControlPlane.startWorkspace(workspaceId)
  const chat = yield* chats.create(Option.some(workspaceId))
  yield* Effect.scoped(chats.connect(chat.chatId))
  return { workspaceId, chatId: chat.chatId, agentId: agent.agentId }
})

/** The current agent of the workspace hangs (accepts, never answers), and the control plane is not told. */
const hang = (agentId: AgentId) => Effect.flatMap(Fleet.Fleet, (fleet) => fleet.retire(agentId, "hang"))

const turn = (chatId: ChatId) => Effect.flatMap(Chats, (chats) => Effect.scoped(chats.connect(chatId)))

const metrics = PrometheusMetrics.format()

const freePort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = Net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
)

layer(Service.layerDatabase(undefined), { timeout: 120_000, excludeTestServices: true })(
  "the service's settings",
  (it) => {
    /** A test of one variable: its name leads, and it counts as that variable's test. */
    const variable = (
      name: string,
      what: string,
      test: () => Effect.Effect<void, unknown, Service.DatabaseServices>
    ) => {
      tested.add(name)
      it.effect(`${name}: ${what}`, test, 60_000)
    }

    variable(
      "LAZYDIAL_DATABASE_URL",
      "the database when --database-url is not given; another scheme is refused",
      () =>
        Effect.gen(function*() {
          const url = "postgres://lazydial:secret@127.0.0.1:5432/lazydial"
          const options = yield* serveWith({ LAZYDIAL_DATABASE_URL: url })
          expect(Option.getOrUndefined(options.databaseUrl)).toEqual({ url, source: "LAZYDIAL_DATABASE_URL" })
          expect(Option.isNone((yield* serveWith({})).databaseUrl)).toBe(true)
          expect(yield* refusal({ LAZYDIAL_DATABASE_URL: "mysql://127.0.0.1/x" })).toContain("LAZYDIAL_DATABASE_URL")
        })
    )

    variable(
      "LAZYDIAL_DB_CONNECT_TIMEOUT",
      "a database that accepts and never answers fails the start within it (binding's default is 5 s)",
      () =>
        Effect.gen(function*() {
          // a TCP server that accepts and says nothing: PostgreSQL's handshake never comes
          const sockets: Array<Net.Socket> = []
          const silent = Net.createServer((socket) => void sockets.push(socket))
          yield* Effect.acquireRelease(
            Effect.promise(() => new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve))),
            () => Effect.sync(() => (sockets.forEach((socket) => socket.destroy()), silent.close()))
          )
          const port = (silent.address() as Net.AddressInfo).port
          const options = yield* serveWith({
            LAZYDIAL_DATABASE_URL: `postgres://lazydial:secret@127.0.0.1:${port}/lazydial`,
            LAZYDIAL_DB_CONNECT_TIMEOUT: "300"
          })
          deepStrictEqual(options.database?.connectTimeout, Duration.millis(300))
          const started = performance.now()
          const failed = yield* Effect.flip(Layer.build(
            Service.layerDatabaseEither(
              Option.some(`postgres://lazydial:secret@127.0.0.1:${port}/lazydial`),
              options.database
            )
          ))
          const elapsed = performance.now() - started
          expect(failed._tag).toBe("DatabaseConnectError")
          expect(elapsed).toBeGreaterThanOrEqual(250)
          expect(elapsed).toBeLessThan(2500)
          expect(yield* refusal({ LAZYDIAL_DB_CONNECT_TIMEOUT: "0" })).toContain(
            "LAZYDIAL_DB_CONNECT_TIMEOUT: expected"
          )
        }).pipe(Effect.scoped)
    )

    for (
      const [name, key, text, value] of [
        ["LAZYDIAL_DB_POOL_SIZE", "poolSize", "3", 3],
        ["LAZYDIAL_DB_STATEMENT_TIMEOUT", "statementTimeout", "1.5 seconds", Duration.millis(1500)],
        ["LAZYDIAL_DB_QUERY_DEADLINE", "queryDeadline", "2500", Duration.millis(2500)]
      ] as const
    ) {
      variable(
        name,
        `binding's ${key} of the PostgreSQL pool (its effect on a real server: Settings.ci.test.ts); a bad value is refused`,
        () =>
          Effect.gen(function*() {
            const options = yield* serveWith({ [name]: text })
            deepStrictEqual(options.database?.[key], value)
            expect(yield* refusal({ [name]: "lots" })).toContain(`${name}: expected`)
          })
      )
    }

    variable(
      "LAZYDIAL_TOKEN_AUTH_FILE",
      "the token file when --token-auth-file is not given: its users may call",
      () =>
        Effect.gen(function*() {
          const tokens = yield* Auth.writeTokenFile([{ name: "alice" }])
          const token = fs.readFileSync(tokens.path, "utf8").split(",")[0]!
          const options = yield* Cli.serveOptions(noServeFlags).pipe(withEnv({ LAZYDIAL_TOKEN_AUTH_FILE: tokens.path }))
          const auth = options.server!.authentication!
          expect(auth.users).toEqual(["alice"])
          deepStrictEqual(
            Option.map(auth.authenticate(Redacted.make(token)), (user) => user.name),
            Option.some("alice")
          )
          expect(Option.isNone(auth.authenticate(Redacted.make("x".repeat(43))))).toBe(true)
        }).pipe(Effect.scoped)
    )

    variable(
      "LAZYDIAL_NO_AUTH",
      "no authentication when --no-auth is not given; with a token file, refused",
      () =>
        Effect.gen(function*() {
          const off = yield* Cli.serveOptions(noServeFlags).pipe(withEnv({ LAZYDIAL_NO_AUTH: "true" }))
          const anyone = off.server!.authentication!.authenticate(Redacted.make("anything"))
          deepStrictEqual(Option.map(anyone, (user) => user.name), Option.some(Auth.anonymous.name))
          const neither = yield* Effect.flip(
            Cli.serveOptions(noServeFlags).pipe(withEnv({ LAZYDIAL_NO_AUTH: "false" }))
          )
          expect(neither.message).toContain("serve needs a token file")
          const both = yield* Effect.flip(
            Cli.serveOptions(noServeFlags).pipe(
              withEnv({ LAZYDIAL_NO_AUTH: "true", LAZYDIAL_TOKEN_AUTH_FILE: "/nonexistent/tokens.csv" })
            )
          )
          expect(both.message).toContain("contradict each other")
        })
    )

    variable("LAZYDIAL_PORT", "the port the server listens on; --port wins over it", () =>
      Effect.gen(function*() {
        const port = yield* freePort
        const options = yield* serveWith({ LAZYDIAL_PORT: String(port) })
        const url = yield* onServer(options, Server.baseUrl)
        expect(url).toBe(`http://127.0.0.1:${port}`)
        expect((yield* serveWith({ LAZYDIAL_PORT: String(port) }, { port: Option.some(0) })).port).toBe(0)
        expect(yield* refusal({ LAZYDIAL_PORT: "70000" })).toContain(
          "LAZYDIAL_PORT: expected an integer from 0 to 65535"
        )
      }))

    variable("LAZYDIAL_HOST", "the address the server listens on", () =>
      Effect.gen(function*() {
        const options = yield* serveWith({ LAZYDIAL_HOST: "127.0.0.2", LAZYDIAL_PORT: "0" })
        const url = yield* onServer(options, Server.baseUrl)
        expect(new URL(url).hostname).toBe("127.0.0.2")
      }))

    variable(
      "LAZYDIAL_GRACE",
      "how long a request in flight may finish at shutdown: then it is cut",
      () =>
        Effect.gen(function*() {
          const options = yield* serveWith({
            LAZYDIAL_GRACE: "300",
            LAZYDIAL_PORT: "0",
            LAZYDIAL_DIAL_TIMEOUT: "20 seconds"
          })
          deepStrictEqual(options.grace, Duration.millis(300))
          // a turn on an agent that never answers is in flight when the server's scope closes
          const closedIn = yield* Effect.gen(function*() {
            const serverScope = yield* Scope.make()
            const context = yield* Layer.buildWithScope(
              Server.layer({ ...options.server, port: options.port, host: options.host, grace: options.grace }).pipe(
                Layer.provideMerge(Service.layer(options, counters, options.strategy))
              ),
              serverScope
            )
            const url = yield* Effect.provide(Server.baseUrl, context)
            const post = (route: string, body: object) =>
              Effect.promise(() =>
                fetch(`${url}${route}`, {
                  method: "POST",
                  headers: { "content-type": "application/json" },
                  body: JSON.stringify(body)
                }).then(async (response) => ({
                  status: response.status,
                  body: (await response.json().catch(() => ({}))) as Record<string, unknown>
                }))
              )
            // through the API, as anonymous (no authentication), who owns the workspaces made without an owner
            const workspaceId = newWorkspace()
            const agent = yield* Effect.provide(ControlPlane.startWorkspace(workspaceId, Auth.anonymous.name), context)
            const created = yield* post("/chats", { workspace_id: workspaceId })
            expect(created.status, JSON.stringify(created.body)).toBe(201)
            const chatId = String(created.body.chat_id)
            expect((yield* post(`/chats/${chatId}/turns`, { message: "bind" })).status).toBe(200)
            yield* Effect.provide(hang(agent.agentId), context)
            const request = yield* Effect.forkChild(post(`/chats/${chatId}/turns`, { message: "hi" }))
            yield* Effect.sleep("200 millis")
            const started = performance.now()
            yield* Scope.close(serverScope, Exit.void)
            yield* Fiber.join(request)
            return performance.now() - started
          })
          expect(closedIn).toBeGreaterThanOrEqual(250)
          expect(closedIn).toBeLessThan(3000)
        })
    )

    // The deadlines are Node's server timers, which no test clock drives: their 408s on a real server, read from
    // these variables the same way, are in Settings.ci.test.ts (scripts/test-replicas.sh).
    variable(
      "LAZYDIAL_HTTP_HEADERS_TIMEOUT",
      "the server's deadline for a request's headers (its 408: Settings.ci.test.ts)",
      () =>
        Effect.gen(function*() {
          expect(millis((yield* serveWith({ LAZYDIAL_HTTP_HEADERS_TIMEOUT: "400" })).server?.headersTimeout)).toBe(400)
          expect(millis((yield* serveWith({})).server?.headersTimeout)).not.toBe(400)
          expect(yield* refusal({ LAZYDIAL_HTTP_HEADERS_TIMEOUT: "50" })).toContain(
            "LAZYDIAL_HTTP_HEADERS_TIMEOUT: expected a duration from 100ms"
          )
        })
    )

    variable(
      "LAZYDIAL_HTTP_REQUEST_TIMEOUT",
      "the server's deadline for a whole request (its 408: Settings.ci.test.ts)",
      () =>
        Effect.gen(function*() {
          const options = yield* serveWith({
            LAZYDIAL_HTTP_HEADERS_TIMEOUT: "300",
            LAZYDIAL_HTTP_REQUEST_TIMEOUT: "700"
          })
          expect(millis(options.server?.requestTimeout)).toBe(700)
          expect(millis((yield* serveWith({})).server?.requestTimeout)).not.toBe(700)
        })
    )

    variable("LAZYDIAL_HTTP_MAX_BODY_BYTES", "a larger body is a 413 before it is read", () =>
      Effect.gen(function*() {
        const options = yield* serveWith({ LAZYDIAL_HTTP_MAX_BODY_BYTES: "1024", LAZYDIAL_PORT: "0" })
        const status = yield* onServer(
          options,
          Effect.flatMap(Server.baseUrl, (url) =>
            Effect.promise(() =>
              fetch(`${url}/chats`, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify({ workspace_id: null, padding: "x".repeat(2000) })
              }).then((response) => response.status)
            ))
        )
        expect(status).toBe(413)
        expect(yield* refusal({ LAZYDIAL_HTTP_MAX_BODY_BYTES: "10" })).toContain(
          "LAZYDIAL_HTTP_MAX_BODY_BYTES: expected an integer from 1024 to 67108864"
        )
      }))

    variable(
      "LAZYDIAL_STRATEGY",
      "latest: every turn looks the agent up (outcome direct)",
      () =>
        Effect.gen(function*() {
          const options = yield* serveWith({ LAZYDIAL_STRATEGY: "latest" })
          expect(options.strategy).toBe("latest")
          const outcome = yield* onInstance(
            options,
            Effect.flatMap(boundChat, ({ chatId }) => Effect.map(turn(chatId), (connected) => connected.outcome))
          )
          expect(outcome).toBe("direct")
          expect(yield* refusal({ LAZYDIAL_STRATEGY: "fastest" })).toContain("LAZYDIAL_STRATEGY")
        })
    )

    variable(
      "LAZYDIAL_VALIDATION_DELAY",
      "the validation delay in use (a duration), or adaptive; --validation-delay-ms wins over it",
      () =>
        Effect.gen(function*() {
          const fixed = yield* serveWith({ LAZYDIAL_VALIDATION_DELAY: "1.25 seconds" })
          yield* onInstance(fixed, Effect.void)
          expect(yield* metrics).toMatch(/^lazydial_validation_delay_seconds\{delay_mode="fixed"\} 1\.25$/m)
          const adaptive = yield* serveWith({ LAZYDIAL_VALIDATION_DELAY: "adaptive" })
          expect(adaptive.delayMode).toBe("adaptive")
          yield* onInstance(adaptive, Effect.void)
          expect(yield* metrics).toMatch(/^lazydial_validation_delay_seconds\{delay_mode="adaptive"\} 0\.5$/m)
          const flag = yield* serveWith({ LAZYDIAL_VALIDATION_DELAY: "1.25 seconds" }, {
            validationDelayMs: Option.some(700)
          })
          deepStrictEqual(flag.validationDelay, Duration.millis(700))
          expect(yield* refusal({ LAZYDIAL_VALIDATION_DELAY: "soon" })).toContain("LAZYDIAL_VALIDATION_DELAY")
        })
    )

    variable("LAZYDIAL_NOTICES", "off: the replica does not listen for rebuild notices", () =>
      Effect.gen(function*() {
        const listening = (options: Processes.ServeOptions) =>
          onInstance(
            options,
            Effect.flatMap(RebuildNotices.RebuildNotices, (notices) =>
              notices.status.pipe(
                Effect.filterOrFail((status) => status.listening),
                Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "3 seconds" }))),
                Effect.as(true),
                Effect.orElseSucceed(() => false)
              ))
          )
        expect(yield* listening(yield* serveWith({}))).toBe(true)
        expect(yield* listening(yield* serveWith({ LAZYDIAL_NOTICES: "off" }))).toBe(false)
      }))

    variable(
      "LAZYDIAL_DIAL_TIMEOUT",
      "a turn on an agent that never answers fails at it (DialTimeout)",
      () =>
        Effect.gen(function*() {
          // a turn's own dial: a kept connection to the agent (which hangs without closing it) would be borrowed
          const options = yield* serveWith({ LAZYDIAL_DIAL_TIMEOUT: "400 millis", LAZYDIAL_SHARED_CONNECTIONS: "off" })
          const result = yield* onInstance(
            options,
            Effect.gen(function*() {
              const { agentId, chatId } = yield* boundChat
              yield* hang(agentId)
              return yield* Effect.timed(Effect.flip(turn(chatId)))
            })
          )
          const [elapsed, error] = result
          expect(error._tag).toBe("DialTimeout")
          expect(Duration.toMillis(elapsed)).toBeGreaterThanOrEqual(380)
          expect(Duration.toMillis(elapsed)).toBeLessThan(2000)
          expect(yield* refusal({ LAZYDIAL_DIAL_TIMEOUT: "0" })).toContain("LAZYDIAL_DIAL_TIMEOUT: expected")
        })
    )

    /** Dials the replica's sockets made while `effect` ran. */
    const dialsOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.gen(function*() {
        const before = counters.dialer.dials
        const result = yield* effect
        return { result, dials: counters.dialer.dials - before }
      })

    /** Polls `condition` every 10 ms, for at most `within`. */
    const until = (condition: () => boolean, within: Duration.Input = "5 seconds") =>
      Effect.sync(condition).pipe(
        Effect.filterOrFail((met) => met),
        Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: within })))
      )

    variable(
      "LAZYDIAL_SHARED_CONNECTIONS",
      "on (unset): a bound chat's next turns borrow its agent's connection, with no dial; off: each turn dials",
      () =>
        Effect.gen(function*() {
          const threeTurns = (env: Record<string, string>) =>
            Effect.flatMap(serveWith(env), (options) =>
              onInstance(
                options,
                Effect.flatMap(
                  boundChat,
                  ({ chatId }) =>
                    dialsOf(Effect.forEach([1, 2, 3], () => Effect.map(turn(chatId), (connected) => connected.outcome)))
                )
              ))
          deepStrictEqual(yield* threeTurns({}), { result: ["fast", "fast", "fast"], dials: 0 })
          deepStrictEqual(yield* threeTurns({ LAZYDIAL_SHARED_CONNECTIONS: "off" }), {
            result: ["fast", "fast", "fast"],
            dials: 3
          })
          expect(yield* refusal({ LAZYDIAL_SHARED_CONNECTIONS: "sometimes" })).toContain(
            "LAZYDIAL_SHARED_CONNECTIONS"
          )
        })
    )

    variable(
      "LAZYDIAL_CONNECTION_IDLE_TTL",
      "a connection no turn borrows for this long is closed: the next turn dials",
      () =>
        Effect.gen(function*() {
          const afterIdle = (env: Record<string, string>) =>
            Effect.flatMap(serveWith(env), (options) =>
              onInstance(
                options,
                Effect.gen(function*() {
                  const { chatId } = yield* boundChat
                  const closedBefore = counters.dialer.closed
                  yield* Effect.sleep("800 millis")
                  const closed = counters.dialer.closed - closedBefore
                  const { dials } = yield* dialsOf(turn(chatId))
                  return { closed, dials }
                })
              ))
          deepStrictEqual(yield* afterIdle({ LAZYDIAL_CONNECTION_IDLE_TTL: "300 millis" }), { closed: 1, dials: 1 })
          deepStrictEqual(yield* afterIdle({}), { closed: 0, dials: 0 })
          expect(yield* refusal({ LAZYDIAL_CONNECTION_IDLE_TTL: "2 days" })).toContain(
            "LAZYDIAL_CONNECTION_IDLE_TTL: expected"
          )
        })
    )

    variable(
      "LAZYDIAL_CONNECTION_PROBE_AFTER_IDLE",
      "a connection idle this long is probed before it is lent: a hung agent's is dropped, and the turn dials",
      () =>
        Effect.gen(function*() {
          // the agent hangs with its socket open: only a probe can tell
          const afterIdle = (env: Record<string, string>) =>
            Effect.flatMap(
              serveWith({ LAZYDIAL_CONNECTION_PROBE_TIMEOUT: "100 millis", LAZYDIAL_DIAL_TIMEOUT: "1 second", ...env }),
              (options) =>
                onInstance(
                  options,
                  Effect.gen(function*() {
                    const { agentId, chatId } = yield* boundChat
                    yield* hang(agentId)
                    yield* Effect.sleep("400 millis")
                    const { dials, result } = yield* dialsOf(
                      Effect.match(turn(chatId), { onFailure: (error) => error._tag, onSuccess: (ok) => ok.outcome })
                    )
                    return { dials, result }
                  })
                )
            )
          deepStrictEqual(yield* afterIdle({ LAZYDIAL_CONNECTION_PROBE_AFTER_IDLE: "200 millis" }), {
            dials: 1,
            result: "DialTimeout"
          })
          deepStrictEqual(yield* afterIdle({}), { dials: 0, result: "fast" })
          // unset, the instance picks it: core's with notices, every borrow without (lazy validation's only probe)
          const picked = (env: Record<string, string>) =>
            Effect.map(serveWith(env), (options) => Service.sharedConnectionOptions(options).probeAfterIdle)
          expect(yield* picked({})).toBeUndefined()
          deepStrictEqual(yield* picked({ LAZYDIAL_NOTICES: "off" }), Duration.zero)
          deepStrictEqual(
            yield* picked({ LAZYDIAL_NOTICES: "off", LAZYDIAL_CONNECTION_PROBE_AFTER_IDLE: "5 seconds" }),
            Duration.seconds(5)
          )
          expect(yield* refusal({ LAZYDIAL_CONNECTION_PROBE_AFTER_IDLE: "-1" })).toContain(
            "LAZYDIAL_CONNECTION_PROBE_AFTER_IDLE: expected"
          )
        })
    )

    variable(
      "LAZYDIAL_CONNECTION_PROBE_TIMEOUT",
      "a probe unanswered this long drops the connection: the turn dials afresh then",
      () =>
        Effect.gen(function*() {
          // every borrow after a use probes; the agent hangs with its socket open, so the probe waits it out
          const untilDial = (env: Record<string, string>) =>
            Effect.flatMap(
              serveWith({ LAZYDIAL_CONNECTION_PROBE_AFTER_IDLE: "0", LAZYDIAL_DIAL_TIMEOUT: "2 seconds", ...env }),
              (options) =>
                onInstance(
                  options,
                  Effect.gen(function*() {
                    const { agentId, chatId } = yield* boundChat
                    yield* hang(agentId)
                    const before = counters.dialer.dials
                    const began = performance.now()
                    const fiber = yield* Effect.forkChild(Effect.exit(turn(chatId)))
                    yield* until(() => counters.dialer.dials > before)
                    const elapsed = performance.now() - began
                    yield* Fiber.interrupt(fiber)
                    return elapsed
                  })
                )
            )
          const slow = yield* untilDial({ LAZYDIAL_CONNECTION_PROBE_TIMEOUT: "600 millis" })
          expect(slow).toBeGreaterThanOrEqual(580)
          expect(slow).toBeLessThan(1500)
          expect(yield* untilDial({ LAZYDIAL_CONNECTION_PROBE_TIMEOUT: "50 millis" })).toBeLessThan(400)
          expect(yield* refusal({ LAZYDIAL_CONNECTION_PROBE_TIMEOUT: "0" })).toContain(
            "LAZYDIAL_CONNECTION_PROBE_TIMEOUT: expected"
          )
        })
    )

    variable(
      "LAZYDIAL_MAX_IN_FLIGHT",
      "1: of three turns at once on a hung agent, one dials it; the others wait",
      () =>
        Effect.gen(function*() {
          const accepted = (env: Record<string, string>) =>
            // each turn's own dial: a kept connection to the agent (which hangs without closing it) would be borrowed
            Effect.flatMap(
              serveWith({ LAZYDIAL_DIAL_TIMEOUT: "1 second", LAZYDIAL_SHARED_CONNECTIONS: "off", ...env }),
              (options) =>
                onInstance(
                  options,
                  Effect.gen(function*() {
                    const { agentId, chatId } = yield* boundChat
                    yield* hang(agentId)
                    const before = counters.fleet.accepted
                    const turns = yield* Effect.forkChild(
                      Effect.forEach([1, 2, 3], () => Effect.flip(turn(chatId)), { concurrency: "unbounded" })
                    )
                    // well inside the dial timeout, while the first admitted turn still holds its permit
                    yield* Effect.sleep("300 millis")
                    const dialed = counters.fleet.accepted - before
                    yield* Fiber.join(turns)
                    return dialed
                  })
                )
            )
          expect(yield* accepted({ LAZYDIAL_MAX_IN_FLIGHT: "1" })).toBe(1)
          expect(yield* accepted({})).toBe(3)
          expect(yield* refusal({ LAZYDIAL_MAX_IN_FLIGHT: "0" })).toContain(
            "LAZYDIAL_MAX_IN_FLIGHT: expected an integer"
          )
        })
    )

    variable(
      "LAZYDIAL_NOTICE_VIEW_SIZE",
      "1: the view keeps one workspace, so a rebuild of another is found by the dial, not by its notice",
      () =>
        Effect.gen(function*() {
          // two bound workspaces, A and B, each rebuilt (their old agents die), and both notices read: how does A's
          // chat's next turn switch? A view of one workspace holds B's and has forgotten A's
          const outcomeAfterRebuild = (env: Record<string, string>) =>
            Effect.flatMap(serveWith(env), (options) =>
              onInstance(
                options,
                Effect.gen(function*() {
                  const notices = yield* RebuildNotices.RebuildNotices
                  yield* notices.status.pipe(
                    Effect.filterOrFail((status) => status.listening),
                    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "10 seconds" })))
                  )
                  const reads = Effect.map(metrics, (text) => Probe.counterTotal(text, "lazydial_notices_reads_total"))
                  const a = yield* boundChat
                  const b = yield* boundChat
                  // each notice prompts a read of the directory, in the background: wait for it (bounded)
                  const rebuilt = (workspaceId: WorkspaceId) =>
                    Effect.gen(function*() {
                      const before = yield* reads
                      yield* ControlPlane.rebuild(workspaceId, "die")
                      yield* reads.pipe(
                        Effect.filterOrFail((now) => now > before),
                        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "10 seconds" })))
                      )
                    })
                  yield* rebuilt(a.workspaceId)
                  yield* rebuilt(b.workspaceId)
                  // the view takes in what it heard when a turn asks: A's new build, then B's, which a view of one
                  // workspace keeps instead of A's
                  return (yield* turn(a.chatId)).outcome
                })
              ))
          expect(yield* outcomeAfterRebuild({ LAZYDIAL_NOTICE_VIEW_SIZE: "1" })).toBe("switched")
          expect(yield* outcomeAfterRebuild({})).toBe("switched_by_notice")
          expect(yield* refusal({ LAZYDIAL_NOTICE_VIEW_SIZE: "-1" })).toContain("LAZYDIAL_NOTICE_VIEW_SIZE: expected")
        })
    )

    variable(
      "LAZYDIAL_LOOKUP_BATCH_WINDOW",
      "a lookup waits it out for others to join its query",
      () =>
        Effect.gen(function*() {
          // notices off, so that a new chat's first turn looks its agent up
          const options = yield* serveWith({ LAZYDIAL_LOOKUP_BATCH_WINDOW: "400 millis", LAZYDIAL_NOTICES: "off" })
          const elapsed = yield* onInstance(
            options,
            Effect.gen(function*() {
              const chats = yield* Chats
              const workspaceId = newWorkspace()
              yield* ControlPlane.startWorkspace(workspaceId)
              const chat = yield* chats.create(Option.some(workspaceId))
              const [took, connected] = yield* Effect.timed(turn(chat.chatId))
              expect(connected.outcome).toBe("lazy_bind")
              return Duration.toMillis(took)
            })
          )
          expect(elapsed).toBeGreaterThanOrEqual(380)
          expect(elapsed).toBeLessThan(3000)
          expect(yield* refusal({ LAZYDIAL_LOOKUP_BATCH_WINDOW: "forever" })).toContain("LAZYDIAL_LOOKUP_BATCH_WINDOW")
        })
    )

    /** How a bound chat's next turn ends under `env`'s faults: `connected`, or its error's tag. */
    const turnWithFaults = (env: Record<string, string>) =>
      Effect.flatMap(serveWith(env), (options) =>
        onInstance(
          options,
          Effect.flatMap(boundChat, ({ chatId }) =>
            Effect.match(turn(chatId), {
              onFailure: (error) => error._tag,
              onSuccess: () => "connected"
            }))
        ))
    // the first turn binds the chat (a lookup and a dial) before the faults that the second meets: a plan that fails
    // every dial fails the first turn too, so the bound chat is made with the plan off and the faults come after
    const failEveryDial = JSON.stringify({ failureRate: 1 })

    variable(
      "LAZYDIAL_FAULTS",
      "on: the plans are injected; unset, the same plans inject nothing",
      () =>
        Effect.gen(function*() {
          expect(yield* Effect.flip(turnWithFaults({ LAZYDIAL_FAULTS: "on", LAZYDIAL_FAULTS_DIAL: failEveryDial })))
            .toMatchObject(
              { _tag: "AgentDialError" }
            )
          expect(yield* turnWithFaults({ LAZYDIAL_FAULTS_DIAL: failEveryDial })).toBe("connected")
          expect(yield* refusal({ LAZYDIAL_FAULTS: "sometimes" })).toContain("LAZYDIAL_FAULTS")
        })
    )

    variable(
      "LAZYDIAL_FAULTS_DIAL",
      "the dial's plan: failureRate 1 fails every dial, 0 none",
      () =>
        Effect.gen(function*() {
          const none = JSON.stringify({ failureRate: 0 })
          expect(yield* turnWithFaults({ LAZYDIAL_FAULTS: "on", LAZYDIAL_FAULTS_DIAL: none })).toBe("connected")
          expect(yield* Effect.flip(turnWithFaults({ LAZYDIAL_FAULTS: "on", LAZYDIAL_FAULTS_DIAL: failEveryDial })))
            .toMatchObject(
              { _tag: "AgentDialError" }
            )
          expect(yield* refusal({ LAZYDIAL_FAULTS: "on", LAZYDIAL_FAULTS_DIAL: "{\"failureRate\":2}" })).toContain(
            "LAZYDIAL_FAULTS_DIAL"
          )
        })
    )

    variable(
      "LAZYDIAL_FAULTS_LOOKUP",
      "the lookup's plan: noAgentRate 1 makes a lazy bind find no agent",
      () =>
        Effect.gen(function*() {
          const options = yield* serveWith({
            LAZYDIAL_FAULTS: "on",
            LAZYDIAL_FAULTS_LOOKUP: JSON.stringify({ noAgentRate: 1 }),
            LAZYDIAL_NOTICES: "off"
          })
          const error = yield* onInstance(
            options,
            Effect.gen(function*() {
              const chats = yield* Chats
              const workspaceId = newWorkspace()
              yield* ControlPlane.startWorkspace(workspaceId)
              const chat = yield* chats.create(Option.some(workspaceId))
              return yield* Effect.flip(turn(chat.chatId))
            })
          )
          expect(error._tag).toBe("NoCurrentAgent")
          expect(yield* refusal({ LAZYDIAL_FAULTS: "on", LAZYDIAL_FAULTS_LOOKUP: "not json" })).toContain(
            "LAZYDIAL_FAULTS_LOOKUP"
          )
        })
    )

    /** A fleet as `fleet` runs it, from `env`: its first stdout line, and its API's workspaces after `waitMs`. */
    const runFleet = (env: Record<string, string>, waitMs: number) =>
      Effect.gen(function*() {
        const lines: Array<string> = []
        const options = yield* fleetWith({ LAZYDIAL_PORT: "0", ...env })
        const console = {
          ...globalThis.console,
          log: (...args: ReadonlyArray<unknown>) => void lines.push(args.join(" "))
        }
        const fiber = yield* Effect.forkChild(
          Processes.fleet(options).pipe(Effect.provideService(Console.Console, console))
        )
        // the process's event line (Effect's default logger of a test writes through the same console: its lines are
        // not JSON; the program's own logger writes to stderr)
        const line = yield* Effect.sync(() => lines.find((line) => line.startsWith("{\"fleet\""))).pipe(
          Effect.filterOrFail((found) => found !== undefined),
          Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "30 seconds" })))
        )
        const first = JSON.parse(line!) as { fleet: string; workspaces: Array<string>; owners: Record<string, string> }
        const list = () =>
          Effect.promise(() =>
            fetch(`${first.fleet}/workspaces`).then((response) =>
              response.json() as Promise<Array<{ agent_id: string }>>
            )
          )
        const before = yield* list()
        yield* Effect.sleep(Duration.millis(waitMs))
        const after = yield* list()
        yield* Fiber.interrupt(fiber)
        return {
          first,
          rebuilt: after.filter((w, i) => w.agent_id !== before[i]?.agent_id).length
        }
      })

    variable("LAZYDIAL_WORKSPACES", "the fleet runs this many workspaces", () =>
      Effect.gen(function*() {
        const { first } = yield* runFleet({ LAZYDIAL_WORKSPACES: "3" }, 0)
        expect(first.workspaces).toHaveLength(3)
      }))

    variable("LAZYDIAL_OWNERS", "the fleet gives its workspaces to these users, in turn", () =>
      Effect.gen(function*() {
        const { first } = yield* runFleet({ LAZYDIAL_WORKSPACES: "3", LAZYDIAL_OWNERS: "alice,bob" }, 0)
        expect(first.workspaces.map((id) => first.owners[id])).toEqual(["alice", "bob", "alice"])
        const bad = yield* Effect.flip(fleetWith({ LAZYDIAL_OWNERS: "alice,,bob" }))
        expect(bad.message).toContain("LAZYDIAL_OWNERS")
      }))

    variable("LAZYDIAL_REBUILD_RATE", "the fleet rebuilds its workspaces on schedule", () =>
      Effect.gen(function*() {
        const { rebuilt } = yield* runFleet({ LAZYDIAL_WORKSPACES: "2", LAZYDIAL_REBUILD_RATE: "40" }, 600)
        expect(rebuilt).toBeGreaterThan(0)
        const { rebuilt: none } = yield* runFleet({ LAZYDIAL_WORKSPACES: "2" }, 600)
        expect(none).toBe(0)
      }))

    variable(
      "LAZYDIAL_SEED",
      "the seed of the fleet's scheduled rebuilds: the same seed draws the same schedule",
      () =>
        Effect.gen(function*() {
          const options = yield* fleetWith({ LAZYDIAL_SEED: "42" })
          expect(options.seed).toBe(42)
          const draws = (seed: number) => {
            const next = Processes.seededRandom(seed)
            return [next(), next(), next()]
          }
          expect(draws(options.seed)).toEqual(draws(42))
          expect(draws(options.seed)).not.toEqual(draws(1))
          expect((yield* Effect.flip(fleetWith({ LAZYDIAL_SEED: "1.5" }))).message).toContain("LAZYDIAL_SEED")
        })
    )

    variable(
      "LAZYDIAL_DIAL_LATENCY",
      "each of the fleet's agents holds its handshake answer back this long: every dial takes it",
      () =>
        Effect.gen(function*() {
          const dialTime = (env: Record<string, string>) =>
            Effect.gen(function*() {
              const options = yield* fleetWith(env)
              const fleet = Service.layerFleet(Service.makeCounters(), { dialLatency: options.dialLatency })
              const dialer = SocketDialer.layer(SocketDialer.makeCounters()).pipe(Layer.provideMerge(fleet))
              return yield* Effect.scoped(Effect.gen(function*() {
                const context = yield* Layer.build(dialer)
                const agent = yield* Effect.provide(ControlPlane.startWorkspace(newWorkspace()), context)
                const dial = Effect.flatMap(AgentDialer.AgentDialer, (d) => Effect.scoped(d.dial(agent.agentId)))
                const [took] = yield* Effect.timed(Effect.provide(dial, context))
                return Duration.toMillis(took)
              }))
            })
          const slow = yield* dialTime({ LAZYDIAL_DIAL_LATENCY: "250 millis" })
          expect(slow).toBeGreaterThanOrEqual(245)
          expect(slow).toBeLessThan(1500)
          expect(yield* dialTime({})).toBeLessThan(200)
          expect((yield* Effect.flip(fleetWith({ LAZYDIAL_DIAL_LATENCY: "2 minutes" }))).message).toContain(
            "LAZYDIAL_DIAL_LATENCY: expected"
          )
        })
    )

    it("every variable of Settings.variables has its test here", () => {
      expect([...tested].sort()).toEqual(Object.values(Settings.variables).sort())
    })

    it("docs/deployment.md's table of settings lists exactly these variables", () => {
      const docs = fs.readFileSync(path.join(import.meta.dirname, "../../../docs/deployment.md"), "utf8")
      const section = docs.slice(docs.indexOf("\n## Settings\n"))
      const table = section.slice(0, section.indexOf("\n## ", 4))
      const listed = new Set(Array.from(table.matchAll(/`(LAZYDIAL_[A-Z_]+)`/g), (match) => match[1]!))
      expect([...listed].sort()).toEqual(Object.values(Settings.variables).sort())
    })
  }
)
