/**
 * The command line of what an operator runs: `lazydial-service serve` (one
 * chat replica) and `lazydial-service fleet` (the agents). Bad flags, and a
 * bad database URL, print a message on stderr and exit with code 2; a
 * process that cannot start exits with 1. stdout carries results only: the
 * JSON line of each process event.
 *
 * The flags and the runner are public so that the bench harness
 * (`@lazydial/harness`) builds its own commands from the same declarations.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { InvalidOption, LazyDial, SharedConnections } from "@lazydial/core"
import * as Cause from "effect/Cause"
import * as CliConfig from "effect/cli/CliConfig"
import * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as GlobalFlag from "effect/cli/GlobalFlag"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import * as Auth from "./Auth.js"
import * as Chats from "./Chats.js"
import * as Fleet from "./Fleet.js"
import * as Processes from "./Processes.js"
import * as Server from "./Server.js"
import type * as Service from "./Service.js"
import * as Settings from "./Settings.js"

/**
 * An integer flag from `min` to `max`: a value out of range is "--name must
 * be an integer from min to max" (not Schema's tree).
 *
 * @since 0.2.0
 * @category flags
 */
export const integer = (name: string, min: number, max: number): Flag.Flag<number> =>
  Flag.Int(name).pipe(
    Flag.filter((n) => n >= min && n <= max, () => `--${name} must be an integer from ${min} to ${max}`)
  )

/**
 * A number flag from `min` to `max`, refused in words as `integer` is.
 *
 * @since 0.2.0
 * @category flags
 */
export const number = (name: string, min: number, max: number): Flag.Flag<number> =>
  Flag.Finite(name).pipe(
    Flag.filter((n) => n >= min && n <= max, () => `--${name} must be a number from ${min} to ${max}`)
  )

/**
 * The default, and the help line that shows it, from the same value the
 * parser uses.
 *
 * @since 0.2.0
 * @category flags
 */
export const withDefault =
  <const A extends string | number>(fallback: A, description: string) => <B>(flag: Flag.Flag<B>): Flag.Flag<A | B> =>
    flag.pipe(
      Flag.withDefault(fallback),
      Flag.withDescription(`${description} (default: ${fallback})`)
    )

/**
 * An integer flag from 1 to 1,000,000 with its default.
 *
 * @since 0.2.0
 * @category flags
 */
export const positive = (name: string, fallback: number, description: string): Flag.Flag<number> =>
  integer(name, 1, 1_000_000).pipe(withDefault(fallback, description))

/**
 * `--rebuild-rate`: one declaration for `fleet` and the harness's run, whose
 * defaults and meanings differ.
 *
 * @since 0.2.0
 * @category flags
 */
export const rebuildRate = (fallback: number, description: string): Flag.Flag<number> =>
  number("rebuild-rate", 0, 1000).pipe(withDefault(fallback, description))

/**
 * `--database-url`: PostgreSQL; unless given, `LAZYDIAL_DATABASE_URL`
 * (`Processes.databaseUrl`), else the embedded PGlite.
 *
 * @since 0.2.0
 * @category flags
 */
export const databaseUrl: Flag.Flag<Option.Option<string>> = Flag.String("database-url").pipe(
  Flag.optional,
  Flag.withDescription(
    "postgres://… to use PostgreSQL instead of the embedded database (default: LAZYDIAL_DATABASE_URL)"
  )
)

/**
 * An optional flag whose help says where its value comes from when it is
 * absent: `variable` (read by `Settings`), else `fallback`.
 *
 * @since 0.2.0
 * @category flags
 */
export const withVariable =
  (variable: string, fallback: string | number, description: string) => <A>(flag: Flag.Flag<A>) =>
    flag.pipe(
      Flag.optional,
      Flag.withDescription(`${description} (default: ${variable}, else ${fallback})`)
    )

const V = Settings.variables

/**
 * The flags of a replica that `cluster` passes on to each of its `serve`
 * children, and the harness's run takes for its strategies: one declaration,
 * the same choices and defaults, read by `replicaSettings`.
 *
 * @since 0.2.0
 * @category flags
 */
export const replicaFlags = {
  validationDelayMs: integer("validation-delay-ms", 0, 600_000).pipe(
    withVariable(
      V.validationDelay,
      500,
      "how long a bound agent may stay silent before lazydial checks the binding, in milliseconds"
    )
  ),
  delayMode: Flag.Literals("delay-mode", LazyDial.delayModes).pipe(
    withVariable(
      `${V.validationDelay}=adaptive`,
      "fixed",
      "fixed: wait --validation-delay-ms; adaptive: start at --validation-delay-ms, then learn it from recent " +
        "connect times, up to half the dial timeout"
    )
  ),
  notices: Flag.Literals("notices", ["on", "off"]).pipe(
    withVariable(
      V.notices,
      "on",
      "rebuild notices (LISTEN/NOTIFY): a stale binding switches with no lookup and no wait"
    )
  )
}

/**
 * What `replicaFlags` say, each flag falling back to its variable and then to
 * its default: `LAZYDIAL_VALIDATION_DELAY` is a duration (the delay) or
 * `adaptive` (the mode, starting at the delay).
 *
 * @since 0.2.0
 * @category settings
 */
export const replicaSettings = (flags: {
  readonly validationDelayMs: Option.Option<number>
  readonly delayMode: Option.Option<typeof LazyDial.delayModes[number]>
  readonly notices: Option.Option<"on" | "off">
}): Effect.Effect<
  {
    readonly validationDelay: Duration.Duration
    readonly delayMode: typeof LazyDial.delayModes[number]
    readonly notices: boolean
  },
  Settings.InvalidSetting
> =>
  Effect.gen(function*() {
    const fromVariable = yield* Settings.read(Config.option(Settings.flagConfigs.validationDelay))
    const variableDelay = Option.filter(fromVariable, (value) => value !== "adaptive")
    const variableMode = Option.map(Option.filter(fromVariable, (value) => value === "adaptive"), () =>
      "adaptive" as const)
    return {
      validationDelay: Option.getOrElse(
        Option.orElse(Option.map(flags.validationDelayMs, Duration.millis), () =>
          variableDelay),
        () => Duration.millis(500)
      ),
      delayMode: Option.getOrElse(Option.orElse(flags.delayMode, () => variableMode), () => "fixed" as const),
      notices: (yield* Settings.orVariable(flags.notices, Settings.flagConfigs.notices, "on")) === "on"
    }
  })

/**
 * The flags of a replica's connections kept across turns
 * (`Service.Options.sharedConnections`), each falling back to its variable:
 * `serve` takes them, and so may any command that runs replicas.
 *
 * @since 0.2.0
 * @category flags
 */
export const sharedConnectionFlags = {
  sharedConnections: Flag.Literals("shared-connections", ["on", "off"]).pipe(
    withVariable(
      V.sharedConnections,
      "on",
      "keep one connection per agent across turns, borrowed by each turn (off: every turn dials its own)"
    )
  ),
  connectionIdleTtlMs: integer("connection-idle-ttl-ms", 0, 86_400_000).pipe(
    withVariable(
      V.connectionIdleTtl,
      Duration.toMillis(SharedConnections.defaults.idleTimeToLive),
      "how long a kept connection that no turn borrows stays open, in ms"
    )
  ),
  connectionProbeAfterIdleMs: integer("connection-probe-after-idle-ms", 0, 86_400_000).pipe(
    withVariable(
      V.connectionProbeAfterIdle,
      `${Duration.toMillis(SharedConnections.defaults.probeAfterIdle)} (0 with --notices off)`,
      "a turn that borrows a connection unused for this long first probes it (ping), in ms"
    )
  ),
  connectionProbeTimeoutMs: integer("connection-probe-timeout-ms", 1, 60_000).pipe(
    withVariable(
      V.connectionProbeTimeout,
      Duration.toMillis(SharedConnections.defaults.probeTimeout),
      "a probe unanswered for this long drops the connection and the turn dials afresh, in ms"
    )
  )
}

/**
 * What `sharedConnectionFlags` say, each flag falling back to its variable
 * and then to core's default (`SharedConnections.defaults`); the probe's
 * idle time, unset, is left for the instance to pick
 * (`Service.sharedConnectionOptions`: 0 with notices off).
 *
 * @since 0.2.0
 * @category settings
 */
export const sharedConnectionSettings = (flags: {
  readonly sharedConnections: Option.Option<"on" | "off">
  readonly connectionIdleTtlMs: Option.Option<number>
  readonly connectionProbeAfterIdleMs: Option.Option<number>
  readonly connectionProbeTimeoutMs: Option.Option<number>
}): Effect.Effect<Service.SharedConnectionSettings, Settings.InvalidSetting> =>
  Effect.gen(function*() {
    const ms = (flag: Option.Option<number>) => Option.map(flag, Duration.millis)
    const C = Settings.flagConfigs
    const D = SharedConnections.defaults
    return {
      enabled: (yield* Settings.orVariable(flags.sharedConnections, C.sharedConnections, "on")) === "on",
      idleTimeToLive: yield* Settings.orVariable(ms(flags.connectionIdleTtlMs), C.connectionIdleTtl, D.idleTimeToLive),
      // unset, the instance picks it: core's 10 s with notices, 0 without (`Service.sharedConnectionOptions`)
      probeAfterIdle: Option.isSome(flags.connectionProbeAfterIdleMs)
        ? Duration.millis(flags.connectionProbeAfterIdleMs.value)
        : Option.getOrUndefined(yield* Settings.read(Config.option(C.connectionProbeAfterIdle))),
      probeTimeout: yield* Settings.orVariable(
        ms(flags.connectionProbeTimeoutMs),
        C.connectionProbeTimeout,
        D.probeTimeout
      )
    }
  })

/**
 * `fleet --dial-latency-ms`: how long each agent holds back its handshake
 * answer (`Fleet.Options.dialLatency`); declared once for `fleet` and the
 * harness.
 *
 * @since 0.2.0
 * @category flags
 */
export const dialLatencyMs: Flag.Flag<Option.Option<number>> = integer(
  "dial-latency-ms",
  0,
  Duration.toMillis(Fleet.maxDialLatency)
).pipe(
  withVariable(
    V.dialLatency,
    0,
    "how long each agent holds back its handshake answer, in ms: the cost of a dial through a tunnel"
  )
)

const port = (fallback: number) =>
  integer("port", 0, 65535).pipe(
    withVariable(V.port, fallback, "the HTTP port (0: any free port; the address is printed on stdout as JSON)")
  )

const host = Flag.String("host").pipe(withVariable(V.host, "127.0.0.1", "the address to listen on"))

const grace = integer("grace-ms", 0, 600_000).pipe(
  withVariable(V.grace, 10_000, "at SIGTERM or SIGINT, how long requests in flight may take to finish, in ms")
)

const tokenAuthFile = Flag.String("token-auth-file").pipe(
  Flag.optional,
  Flag.withDescription(
    "the static token file (Kubernetes' format: token,user,uid[,\"group1,group2\"] per line); requests carry " +
      `Authorization: Bearer <token> (default: ${V.tokenAuthFile})`
  )
)

const noAuth = Flag.Boolean("no-auth").pipe(
  Flag.withoutNegation,
  withVariable(
    V.noAuth,
    "false",
    "serve without authentication: every caller is anonymous, an operator (for a trusted network)"
  )
)

const deadline = (name: string, variable: string, fallback: Duration.Duration, description: string) =>
  integer(name, 100, 600_000).pipe(withVariable(variable, Duration.toMillis(fallback), description))

/** The flags of every long-running process (`serve`, `fleet`), declared once. */
const processFlags = (fallbackPort: number) => ({
  port: port(fallbackPort),
  host,
  databaseUrl,
  grace,
  tokenAuthFile,
  noAuth,
  headersTimeoutMs: deadline(
    "headers-timeout-ms",
    V.headersTimeout,
    Server.defaultHeadersTimeout,
    "a request's headers must arrive within this many ms of its first byte, else 408"
  ),
  requestTimeoutMs: deadline(
    "request-timeout-ms",
    V.requestTimeout,
    Server.defaultRequestTimeout,
    "a whole request, its body included, must arrive within this many ms of its first byte, else 408"
  )
})

/**
 * A command line that cannot run as given: the message says what to give
 * instead. The CLI prints it on stderr and exits with code 2.
 *
 * @since 0.2.0
 * @category errors
 */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { message: Schema.String }) {}

/**
 * How `serve` and `fleet` authenticate: the token file of `--token-auth-file`
 * (else `LAZYDIAL_TOKEN_AUTH_FILE`), read and checked whole before anything
 * starts; or none with `--no-auth` (else `LAZYDIAL_NO_AUTH`). Neither, or
 * both, is a usage error naming both; a file that cannot be used fails the
 * start with its line.
 *
 * @since 0.2.0
 * @category settings
 */
export const authentication = (
  command: string,
  flags: { readonly tokenAuthFile: Option.Option<string>; readonly noAuth: Option.Option<boolean> }
): Effect.Effect<Auth.Authentication["Service"], UsageError | Processes.StartupFailed | Settings.InvalidSetting> =>
  Effect.gen(function*() {
    const fromEnv = yield* Settings.read(Config.option(Config.String(V.tokenAuthFile)))
    const source = Option.isSome(flags.tokenAuthFile) ? "--token-auth-file" : V.tokenAuthFile
    const path = Option.orElse(flags.tokenAuthFile, () => fromEnv)
    const noAuth = yield* Settings.orVariable(flags.noAuth, Settings.flagConfigs.noAuth, false)
    if (noAuth) {
      if (Option.isSome(path)) {
        return yield* new UsageError({
          message: `${command}: --no-auth and a token file (${source}) contradict each other: give one of them`
        })
      }
      yield* Effect.logWarning(
        `${command} --no-auth: no authentication, every caller is anonymous and an operator; ` +
          "serve it only where every client is trusted"
      )
      return Auth.disabled
    }
    if (Option.isNone(path)) {
      return yield* new UsageError({
        message: `${command} needs a token file: --token-auth-file PATH or ${V.tokenAuthFile} ` +
          "(lines of token,user,uid[,\"group1,group2\"]); or --no-auth to serve anyone who can reach its port"
      })
    }
    if (path.value.trim() === "") return yield* new UsageError({ message: `${command}: ${source} is empty` })
    const file = yield* Auth.readTokenFile(path.value).pipe(
      Effect.mapError((error) => new Processes.StartupFailed({ message: error.message }))
    )
    return Auth.fromTokenFile(file)
  })

/** What `processFlags` become in the options of `Processes.serve` and `Processes.fleet`. */
const processOptions = (command: string, fallbackPort: number, flags: {
  readonly port: Option.Option<number>
  readonly host: Option.Option<string>
  readonly databaseUrl: Option.Option<string>
  readonly grace: Option.Option<number>
  readonly tokenAuthFile: Option.Option<string>
  readonly noAuth: Option.Option<boolean>
  readonly headersTimeoutMs: Option.Option<number>
  readonly requestTimeoutMs: Option.Option<number>
}) =>
  Effect.gen(function*() {
    const ms = (flag: Option.Option<number>) => Option.map(flag, Duration.millis)
    const url = yield* Processes.databaseUrl(flags.databaseUrl)
    const auth = yield* authentication(command, flags)
    return {
      port: yield* Settings.orVariable(flags.port, Settings.flagConfigs.port, fallbackPort),
      host: yield* Settings.orVariable(flags.host, Settings.flagConfigs.host, "127.0.0.1"),
      databaseUrl: url,
      database: yield* Settings.read(Settings.database),
      grace: yield* Settings.orVariable(ms(flags.grace), Settings.flagConfigs.grace, Duration.seconds(10)),
      server: {
        authentication: auth,
        maxBodyBytes: yield* Settings.read(Settings.maxBodyBytes),
        headersTimeout: yield* Settings.orVariable(
          ms(flags.headersTimeoutMs),
          Settings.flagConfigs.headersTimeout,
          Server.defaultHeadersTimeout
        ),
        requestTimeout: yield* Settings.orVariable(
          ms(flags.requestTimeoutMs),
          Settings.flagConfigs.requestTimeout,
          Server.defaultRequestTimeout
        )
      }
    }
  })

/**
 * `--owners alice,bob`: user names, in order, each once; unless given, the
 * users of the token file in its order (`anonymous` with `--no-auth`).
 *
 * @since 0.2.0
 * @category settings
 */
export const parseOwners = (text: string, source = "--owners"): Effect.Effect<ReadonlyArray<string>, InvalidOption> => {
  const names = text.split(",").map((name) => name.trim())
  return names.some((name) => name === "")
    ? Effect.fail(new InvalidOption({ option: source, value: text, expected: "user names separated by commas" }))
    : Effect.succeed([...new Set(names)])
}

const serveFlags = {
  ...processFlags(8080),
  strategy: Flag.Literals("strategy", Chats.strategies).pipe(
    withVariable(
      V.strategy,
      "lazydial",
      "the turn path: lazydial (the persisted binding) or latest (a lookup every turn)"
    )
  ),
  ...replicaFlags,
  dialTimeoutMs: integer("dial-timeout-ms", 1, 600_000).pipe(
    withVariable(V.dialTimeout, 10_000, "how long a turn may take to connect to its agent, in milliseconds")
  ),
  ...sharedConnectionFlags
}

/**
 * What `serve`'s flags say, each falling back to its variable, then to its
 * default, with the settings that have no flag (`Settings.database`,
 * `Settings.turnPath`, `Settings.maxBodyBytes`): every setting of a replica,
 * read and checked before anything starts.
 *
 * @since 0.2.0
 * @category settings
 */
export const serveOptions = (
  flags: Command.Command.Config.Infer<typeof serveFlags>
): Effect.Effect<Processes.ServeOptions, CommandError> =>
  Effect.gen(function*() {
    const common = yield* processOptions("serve", 8080, flags)
    const replica = yield* replicaSettings(flags)
    const turnPath = yield* Settings.read(Settings.turnPath)
    return {
      ...common,
      ...replica,
      ...turnPath,
      sharedConnections: yield* sharedConnectionSettings(flags),
      strategy: yield* Settings.orVariable(flags.strategy, Settings.flagConfigs.strategy, "lazydial"),
      dialTimeout: yield* Settings.orVariable(
        Option.map(flags.dialTimeoutMs, Duration.millis),
        Settings.flagConfigs.dialTimeout,
        Duration.seconds(10)
      )
    }
  })

/**
 * `serve`: one chat replica, until SIGTERM or SIGINT.
 *
 * @since 0.2.0
 * @category commands
 */
export const serveCommand = Command.make(
  "serve",
  serveFlags,
  (flags) => Effect.flatMap(serveOptions(flags), Processes.serve)
).pipe(
  Command.withDescription(
    "Serves the chat API as one replica (no workload, no agents). Run several on one PostgreSQL with a fleet."
  )
)

const fleetFlags = {
  ...processFlags(8090),
  workspaces: integer("workspaces", 1, 1_000_000).pipe(
    withVariable(V.workspaces, 8, "workspaces to run (the running ones the database holds are taken back first)")
  ),
  owners: Flag.String("owners").pipe(
    withVariable(V.owners, "the token file's users", "the users new workspaces belong to, in turn: USER1,USER2,...")
  ),
  seed: Flag.Int("seed").pipe(
    withVariable(V.seed, 1, "seed of the scheduled rebuilds: the same seed rebuilds the same way")
  ),
  rebuildRate: number("rebuild-rate", 0, 1000).pipe(
    withVariable(
      V.rebuildRate,
      0,
      "workspace rebuilds per second over the fleet (0: only on POST /workspaces/:id/rebuild)"
    )
  ),
  dialLatencyMs
}

/**
 * What `fleet`'s flags say, each falling back to its variable, then to its
 * default: every setting of the fleet, read and checked before anything
 * starts.
 *
 * @since 0.2.0
 * @category settings
 */
export const fleetOptions = (
  flags: Command.Command.Config.Infer<typeof fleetFlags>
): Effect.Effect<Processes.FleetOptions, CommandError> =>
  Effect.gen(function*() {
    const source = Option.isSome(flags.owners) ? "--owners" : V.owners
    const ownersText = Option.isSome(flags.owners)
      ? flags.owners
      : yield* Settings.read(Config.option(Settings.flagConfigs.owners))
    const owners = Option.isSome(ownersText) ? Option.some(yield* parseOwners(ownersText.value, source)) : Option.none()
    const common = yield* processOptions("fleet", 8090, flags)
    return {
      ...common,
      workspaces: yield* Settings.orVariable(flags.workspaces, Settings.flagConfigs.workspaces, 8),
      owners: Option.getOrElse(owners, () => common.server.authentication.users),
      rebuildRate: yield* Settings.orVariable(flags.rebuildRate, Settings.flagConfigs.rebuildRate, 0),
      seed: yield* Settings.orVariable(flags.seed, Settings.flagConfigs.seed, 1),
      dialLatency: yield* Settings.orVariable(
        Option.map(flags.dialLatencyMs, Duration.millis),
        Settings.flagConfigs.dialLatency,
        Duration.zero
      )
    }
  })

/**
 * `fleet`: the agents and their control plane, until SIGTERM or SIGINT.
 *
 * @since 0.2.0
 * @category commands
 */
export const fleetCommand = Command.make(
  "fleet",
  fleetFlags,
  (flags) => Effect.flatMap(fleetOptions(flags), Processes.fleet)
).pipe(
  Command.withDescription("Runs the workspace agents and records their addresses and builds in the database.")
)

/**
 * `lazydial-service`: `serve` and `fleet`.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("lazydial-service").pipe(
  Command.withDescription(
    "The reference chat service: `fleet` runs the workspace agents, `serve` one chat replica; both on one " +
      "PostgreSQL.\n\n" +
      "Examples:\n" +
      "  lazydial-service fleet --port 8090 --database-url postgres://... --token-auth-file tokens.csv\n" +
      "  lazydial-service serve --port 8081 --database-url postgres://... --token-auth-file tokens.csv\n" +
      "  lazydial-service serve --help                     the flags of a subcommand"
  ),
  Command.withSubcommands([serveCommand, fleetCommand])
)

/**
 * The errors a command of this package ends with, each printed on stderr
 * with the exit code it sets: a usage error 2, a process that could not start 1.
 *
 * @since 0.2.0
 * @category models
 */
export type CommandError = InvalidOption | UsageError | Settings.InvalidSetting | Processes.StartupFailed

const commandErrorTags: ReadonlyArray<CommandError["_tag"]> = [
  "InvalidOption",
  "UsageError",
  "InvalidSetting",
  "StartupFailed"
]

const isCommandError = (error: unknown): error is CommandError =>
  typeof error === "object" && error !== null && "_tag" in error &&
  (commandErrorTags as ReadonlyArray<unknown>).includes(error._tag) // safe: widening for the lookup

// no --completions, --log-level or --wizard in the help: they do nothing useful here
const builtIns = CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Version] })

/**
 * Runs `command` on `argv` (`process.argv`, its first two entries dropped
 * here). Help and version print as Effect prints them (on stdout, styled
 * only for a terminal); a command line that does not parse is one line on
 * stderr per error, naming the flag, then a hint to `name --help`, with exit
 * code 2; a usage error exits with 2 and a process that cannot start with 1,
 * each with its message on stderr. Nothing but results goes to stdout.
 *
 * @since 0.2.0
 * @category running
 */
export const run = <Name extends string, Input, E, R>(
  command: Command.Command<Name, Input, unknown, E, R>,
  options: { readonly name: string; readonly version: string }
) =>
(argv: ReadonlyArray<string>) => {
  const hint = `Run ${options.name} --help for every option and examples.`
  const usageError = (message: string) =>
    Effect.andThen(
      Console.error(`${options.name}: ${message}\n${hint}`),
      Effect.sync(() => void (process.exitCode = 2))
    )
  const presenter = CliOutput.layerPresenter({
    present: (event) =>
      event._tag === "InvalidInvocation"
        ? Console.error(
          [
            ...event.errors.map((error) => `${options.name}: ${error.message}`),
            hint
          ].join("\n")
        )
        : CliOutput.defaultPresenter.present(event)
  })
  // `pnpm start -- --seed 2` hands the `--` on to the program: drop it.
  const args = argv[2] === "--" ? argv.slice(3) : argv.slice(2)
  return Command.runWith(command, { version: options.version })(args).pipe(
    // the presenter has printed why
    Effect.catchIf(CliError.isCliError, () => Effect.sync(() => void (process.exitCode = 2))),
    // what a command line's user can act on; anything else is a failure of its own, reported by `runMain`
    Effect.catch((error) => {
      if (!isCommandError(error)) return Effect.fail(error)
      return error._tag === "StartupFailed"
        ? Effect.andThen(
          Console.error(`${options.name}: ${error.message}`),
          Effect.sync(() => void (process.exitCode = 1))
        )
        : usageError(error.message)
    }),
    Effect.provide(Layer.mergeAll(presenter, builtIns))
  )
}

/**
 * Runs `lazydial-service` on `argv`.
 *
 * @since 0.1.0
 * @category running
 */
export const main = (argv: ReadonlyArray<string>) => run(command, { name: "lazydial-service", version: "0.2.0" })(argv)

/**
 * Runs a program as this process: logs on stderr only, settings from the
 * environment, and a stop asked for (SIGTERM, SIGINT) as a clean exit. The
 * harness's entry point runs its program the same way.
 *
 * @since 0.2.0
 * @category running
 */
export const runMain = <E>(program: Effect.Effect<void, E, NodeServices.NodeServices>): void => {
  // Logs (the access log, warnings) go to stderr as logfmt, and only there:
  // stdout carries the JSON of `--json` and the JSON line of each process event.
  const logger = Logger.layer([Logger.withConsoleError(Logger.formatLogFmt)])
  // A variable set to the empty string is a value (refused where it must not be
  // empty, as `LAZYDIAL_DATABASE_URL=` is), not an unset one: Effect 4's default
  // provider would read it as unset and fall back silently (to PGlite, there).
  const environment = Layer.succeed(ConfigProvider.ConfigProvider)(
    ConfigProvider.fromEnv({ preserveEmptyStrings: true })
  )
  // SIGTERM and SIGINT interrupt the program, which then shuts down in order: a
  // stop asked for is a clean stop (exit 0, not Effect's 130), as supervisors
  // expect. Any other end is Effect's own code.
  const teardown: Runtime.Teardown = (exit, onExit) =>
    Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
  program.pipe(
    Effect.provide(Layer.mergeAll(NodeServices.layer, logger, environment)),
    NodeRuntime.runMain({ disableErrorReporting: false, teardown })
  )
}
