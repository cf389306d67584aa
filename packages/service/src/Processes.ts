/**
 * The service's processes: `serve` (one chat replica), `fleet` (the agents
 * and their control plane), and the one-process API server of the default
 * run. Each runs until SIGTERM or SIGINT, then shuts down in order: the HTTP
 * server stops accepting, requests in flight finish within the grace period,
 * then the agents stop and the database pool closes.
 *
 * Start-up errors are written to stderr (never stdout, which carries
 * `--json`), name the database's host and port and never its password.
 *
 * @since 0.1.0
 */
import { Database } from "@lazydial/binding"
import type { WorkspaceId } from "@lazydial/core"
import type { InvalidOption } from "@lazydial/core"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { randomUUID } from "node:crypto"
import type * as Chats from "./Chats.js"
import * as ControlPlane from "./ControlPlane.js"
import { scheduledRetireModes } from "./Fleet.js"
import * as internalRandom from "./internal/random.js"
import * as Server from "./Server.js"
import * as Service from "./Service.js"
import * as Settings from "./Settings.js"

/**
 * The process could not start. The CLI prints the message on stderr and exits
 * with code 1.
 *
 * @since 0.1.0
 * @category errors
 */
export class StartupFailed extends Schema.TaggedError<StartupFailed>()("StartupFailed", {
  message: Schema.String
}) {}

/**
 * Where a URL points, for messages: `host:port/database` with no user
 * password.
 *
 * @since 0.1.0
 * @category formatting
 */
export const describeUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    const db = parsed.pathname.replace(/^\//, "")
    return `${parsed.hostname || "127.0.0.1"}:${parsed.port || "5432"}${db === "" ? "" : `/${db}`}`
  } catch {
    return "an unparsable URL"
  }
}

/**
 * The database URL: `--database-url`, else `LAZYDIAL_DATABASE_URL`, else none
 * (the embedded PGlite). A URL that is empty or not `postgres://` or
 * `postgresql://` is refused by binding's `Database.decodeUrl`, as an
 * `InvalidOption` naming where the URL came from (the CLI exits with 2).
 *
 * @since 0.1.0
 * @category settings
 */
export const databaseUrl = (
  flag: Option.Option<string>
): Effect.Effect<Option.Option<{ readonly url: string; readonly source: string }>, InvalidOption> =>
  Effect.gen(function*() {
    const fromEnv = yield* Config.option(Config.String(Settings.variables.databaseUrl)).pipe(
      Effect.orElseSucceed(() => Option.none<string>())
    )
    const source = Option.isSome(flag) ? "--database-url" : Settings.variables.databaseUrl
    const url = Option.orElse(flag, () => fromEnv)
    if (Option.isNone(url)) return Option.none()
    yield* Database.decodeUrl(source, url.value)
    return Option.some({ url: url.value, source })
  })

const causeText = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const parts: Array<string> = []
  let current: unknown = error
  for (let depth = 0; depth < 4 && typeof current === "object" && current !== null; depth++) {
    if ("message" in current && typeof current.message === "string" && current.message !== "") {
      parts.push(current.message)
    }
    current = "cause" in current ? current.cause : undefined
  }
  return [...new Set(parts)].join(": ") || String(error)
}

/**
 * Builds `layer` on the database and runs `use` in it; a failure while
 * building becomes `StartupFailed`, naming the cause: the HTTP port, or the
 * database (never its password). Warns when the database is the embedded
 * PGlite. What `use` forks into its Scope ends with it.
 *
 * @since 0.2.0
 * @category running
 */
export const runOn = <ROut, E, A, E2>(
  url: Option.Option<DatabaseTarget>,
  /** binding's database settings (`Settings.database`), PostgreSQL only. */
  settings: Settings.DatabaseSettings | undefined,
  layer: Layer.Layer<ROut, E, Service.DatabaseServices>,
  // the Scope is the process's: what `use` forks into it ends with the process
  use: Effect.Effect<A, E2, ROut | Scope.Scope>
): Effect.Effect<A, StartupFailed | E2> =>
  Effect.gen(function*() {
    if (Option.isNone(url)) {
      yield* Effect.logWarning(
        "no --database-url nor LAZYDIAL_DATABASE_URL: using the embedded PGlite database, in memory. " +
          "It serves ONE replica only: replicas on PGlite share nothing. Use PostgreSQL for several."
      )
    }
    const database = Service.layerDatabaseEither(Option.map(url, (target) => target.url), settings)
    const context = yield* Layer.build(Layer.provide(layer, database)).pipe(
      Effect.catchCause((cause) => {
        // a port that cannot be listened on is not the database's fault: say what it is
        const error = Cause.findErrorOption(cause)
        if (Option.isSome(error) && error.value instanceof Server.CannotListen) {
          return Effect.fail(new StartupFailed({ message: error.value.message }))
        }
        return Effect.fail(
          new StartupFailed({
            message: `could not start on ${
              Option.match(url, {
                onNone: () => "the embedded PGlite database",
                onSome: (target) => `PostgreSQL at ${describeUrl(target.url)}`
              })
            }: ${causeText(cause).replace(/postgres(ql)?:\/\/[^\s]*/g, (u) => describeUrl(u))}`
          })
        )
      })
    )
    return yield* Effect.provide(use, context)
  }).pipe(Effect.scoped)

/**
 * A database URL and where it came from (`--database-url` or
 * `LAZYDIAL_DATABASE_URL`), for messages.
 *
 * @since 0.2.0
 * @category models
 */
export type DatabaseTarget = { readonly url: string; readonly source: string }

/**
 * The owner of the `i`th workspace a process creates: the owners in turn, or
 * `ControlPlane.defaultOwner` when none is given.
 *
 * @since 0.2.0
 * @category settings
 */
export const ownerAt = (owners: ReadonlyArray<string> | undefined, i: number): string =>
  owners === undefined || owners.length === 0 ? ControlPlane.defaultOwner : owners[i % owners.length]!

/**
 * `count` fresh workspaces, given to `owners` in turn, each with a running
 * agent, recorded.
 *
 * @since 0.2.0
 * @category running
 */
export const startWorkspaces = (count: number, owners: ReadonlyArray<string> | undefined) =>
  Effect.forEach(
    // safe: fresh UUIDs are valid WorkspaceIds
    Array.from({ length: count }, () => randomUUID() as WorkspaceId),
    (id, i) => Effect.as(ControlPlane.startWorkspace(id, ownerAt(owners, i)), id)
  ).pipe(Effect.mapError((error) => new StartupFailed({ message: error.message })))

/**
 * A seeded generator (mulberry32) of numbers in [0, 1): the same seed gives
 * the same sequence on every platform. The fleet's scheduled rebuilds draw
 * from it, and so do the bench harness's plans.
 *
 * @since 0.2.0
 * @category constructors
 */
export const seededRandom: (seed: number) => () => number = internalRandom.rng

/**
 * What a process passes on to its HTTP server, beyond the address and the
 * grace period: `Server.ListenOptions` as the server module defines them.
 *
 * @since 0.2.0
 * @category models
 */
export type ServerOptions = Omit<Server.ListenOptions, "port" | "host" | "grace">

/**
 * @since 0.1.0
 * @category models
 */
export type Strategy = Chats.Strategy

/**
 * @since 0.1.0
 * @category models
 */
export interface ServeOptions extends Service.Options {
  readonly port: number
  readonly host: string
  readonly databaseUrl: Option.Option<DatabaseTarget>
  /** binding's database settings (`Settings.database`), PostgreSQL only. */
  readonly database?: Settings.DatabaseSettings | undefined
  readonly strategy: Strategy
  readonly grace: Duration.Input
  /** Passed on to `Server.layer`. */
  readonly server?: ServerOptions | undefined
}

/**
 * One chat replica, until SIGTERM or SIGINT.
 *
 * @since 0.1.0
 * @category running
 */
export const serve = (options: ServeOptions): Effect.Effect<never, StartupFailed> =>
  Effect.gen(function*() {
    const service = Service.layerReplica(options, Service.makeCounters(), options.strategy)
    const all = Server.layer({ ...options.server, port: options.port, host: options.host, grace: options.grace })
      .pipe(Layer.provideMerge(service))
    return yield* runOn(
      options.databaseUrl,
      options.database,
      all,
      Effect.gen(function*() {
        const url = yield* Server.baseUrl
        // one machine-readable line on stdout: the address a supervisor (or `cluster`) reads
        yield* Console.log(JSON.stringify({ serving: url, strategy: options.strategy, pid: process.pid }))
        yield* Effect.logInfo(`serving the chat API on ${url} (${options.strategy}); SIGTERM or Ctrl-C to stop`)
        return yield* Effect.never
      })
    )
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface FleetOptions {
  readonly port: number
  readonly host: string
  readonly databaseUrl: Option.Option<DatabaseTarget>
  /** binding's database settings (`Settings.database`), PostgreSQL only. */
  readonly database?: Settings.DatabaseSettings | undefined
  /**
   * How many running workspaces the fleet runs: the running workspaces
   * recorded in the database are taken back, and new ones are created only
   * up to this many.
   */
  readonly workspaces: number
  /**
   * The users the new workspaces are given to, in turn (`--owners`); none:
   * `ControlPlane.defaultOwner`. Taken-back workspaces keep their owners.
   */
  readonly owners?: ReadonlyArray<string> | undefined
  /** Rebuilds per second over the whole fleet; 0: only on request. */
  readonly rebuildRate: number
  readonly seed: number
  /** How long each agent holds back its handshake answer (`Fleet.Options.dialLatency`); default 0. */
  readonly dialLatency?: Duration.Input | undefined
  readonly grace: Duration.Input
  /** Passed on to `Server.layerFleet`. */
  readonly server?: ServerOptions | undefined
}

/**
 * The agents and their control plane, until SIGTERM or SIGINT: takes back
 * the running workspaces recorded in the database (a new agent for each, as
 * a new build), creates new ones up to `workspaces`, settles any workspace a
 * failed change left unsettled, and rebuilds on a schedule and on request.
 *
 * Its first line on stdout is JSON: `fleet` (its API's URL), `workspaces`
 * (the running ones, taken back first), `owners` (each one's owner),
 * `taken_back` (how many were) and `pid`.
 *
 * @since 0.1.0
 * @category running
 */
export const fleet = (options: FleetOptions): Effect.Effect<never, StartupFailed> =>
  Effect.gen(function*() {
    const all = Server.layerFleet({ ...options.server, port: options.port, host: options.host, grace: options.grace })
      .pipe(Layer.provideMerge(Service.layerFleet(Service.makeCounters(), { dialLatency: options.dialLatency })))
    return yield* runOn(
      options.databaseUrl,
      options.database,
      all,
      Effect.gen(function*() {
        const control = yield* ControlPlane.ControlPlane
        const takenBack = yield* ControlPlane.takeBack.pipe(
          Effect.mapError((error) =>
            new StartupFailed({ message: `could not take back the workspaces: ${error.message}` })
          )
        )
        const created = yield* startWorkspaces(Math.max(0, options.workspaces - takenBack.length), options.owners)
        const ids = [...takenBack, ...created]
        const owners = yield* Effect.forEach(ids, (id) => control.ownerOf(id)).pipe(
          Effect.mapError((error) => new StartupFailed({ message: error.message }))
        )
        // in this process's scope: it ends with the fleet
        yield* Effect.forkScoped(ControlPlane.keepSettled())
        const url = yield* Server.baseUrl
        yield* Console.log(JSON.stringify({
          fleet: url,
          workspaces: ids,
          owners: Object.fromEntries(ids.map((id, i) => [id, Option.getOrElse(owners[i]!, () => "")])),
          taken_back: takenBack.length,
          pid: process.pid
        }))
        yield* Effect.logInfo(`fleet of ${ids.length} workspaces; its API on ${url}; SIGTERM or Ctrl-C to stop`)
        if (options.rebuildRate <= 0) return yield* Effect.never
        // a seeded schedule: the same seed rebuilds the same workspaces in the same modes
        const next = seededRandom(options.seed)
        const modes = scheduledRetireModes
        const every = Duration.millis(1000 / options.rebuildRate)
        return yield* Effect.forever(
          Effect.andThen(
            Effect.sleep(every),
            Effect.suspend(() => {
              const workspaceId = ids[Math.floor(next() * ids.length)]!
              const mode = modes[Math.floor(next() * modes.length)]!
              return ControlPlane.rebuild(workspaceId, mode).pipe(
                Effect.asVoid,
                // an outage skips this rebuild; the schedule goes on
                Effect.catch((error) => Effect.logWarning(`rebuild of ${workspaceId} skipped: ${error.message}`))
              )
            })
          )
        )
      })
    )
  })
