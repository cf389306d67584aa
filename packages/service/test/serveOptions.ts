/**
 * `serve`'s and `fleet`'s options as their commands read them from the
 * environment, with no flag given, and the server `serve` builds from them:
 * shared by the settings tests (Settings.test.ts) and their process-test
 * counterparts (Settings.ci.test.ts).
 */
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Cli from "../src/Cli.js"
import type * as Processes from "../src/Processes.js"
import * as Server from "../src/Server.js"
import * as Service from "../src/Service.js"

/** Runs `effect` with exactly these environment variables (and no other). */
export const withEnv = (env: Record<string, string>) =>
  Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

// every test serves without authentication unless it is about it: a process refuses to start with neither
const base = { LAZYDIAL_NO_AUTH: "true" }

const none = Option.none()
export const noServeFlags: Parameters<typeof Cli.serveOptions>[0] = {
  port: none,
  host: none,
  databaseUrl: none,
  grace: none,
  tokenAuthFile: none,
  noAuth: none,
  headersTimeoutMs: none,
  requestTimeoutMs: none,
  strategy: none,
  validationDelayMs: none,
  delayMode: none,
  notices: none,
  dialTimeoutMs: none,
  sharedConnections: none,
  connectionIdleTtlMs: none,
  connectionProbeAfterIdleMs: none,
  connectionProbeTimeoutMs: none
}
export const noFleetFlags: Parameters<typeof Cli.fleetOptions>[0] = {
  port: none,
  host: none,
  databaseUrl: none,
  grace: none,
  tokenAuthFile: none,
  noAuth: none,
  headersTimeoutMs: none,
  requestTimeoutMs: none,
  workspaces: none,
  owners: none,
  seed: none,
  rebuildRate: none,
  dialLatencyMs: none
}

/** `serve`'s options as the command reads them from `env` (no flag given). */
export const serveWith = (env: Record<string, string>, flags: Partial<typeof noServeFlags> = {}) =>
  Cli.serveOptions({ ...noServeFlags, ...flags }).pipe(withEnv({ ...base, ...env }))

export const fleetWith = (env: Record<string, string>) =>
  Cli.fleetOptions(noFleetFlags).pipe(withEnv({ ...base, ...env }))

/** The message a bad value is refused with, as `serve` reads it. */
export const refusal = (env: Record<string, string>) =>
  Effect.map(Effect.flip(serveWith(env)), (error) => error.message)

/** The counters of every instance these helpers build. */
export const counters = Service.makeCounters()

/** The HTTP server and the turn path as `serve` builds them from `options`, for `use`. */
export const onServer = <A, E>(
  options: Processes.ServeOptions,
  use: Effect.Effect<
    A,
    E,
    Layer.Success<ReturnType<typeof Service.layer>> | Scope.Scope | Layer.Success<ReturnType<typeof Server.layer>>
  >
) =>
  Effect.scoped(
    Effect.flatMap(
      Layer.build(
        Server.layer({ ...options.server, port: options.port, host: options.host, grace: options.grace }).pipe(
          Layer.provideMerge(Service.layer(options, counters, options.strategy))
        )
      ),
      (context) => Effect.provide(use, context)
    )
  )
