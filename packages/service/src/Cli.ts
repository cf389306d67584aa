/**
 * The command line: `lazydial-service [--seed n] [--json] [--html file] ...`,
 * the one-process run, and its subcommands `serve` (one chat replica) and
 * `fleet` (the agents). Bad flags, and a bad database URL, print a message on
 * stderr and exit with code 2; a process that cannot start exits with 1.
 *
 * @since 0.1.0
 */
import { InvalidOption, LazyDial } from "@lazydial/core"
import * as CliConfig from "effect/cli/CliConfig"
import * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as GlobalFlag from "effect/cli/GlobalFlag"
import * as Config from "effect/Config"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as NodePath from "node:path"
import * as Auth from "./Auth.js"
import * as Chats from "./Chats.js"
import * as Cluster from "./Cluster.js"
import * as Html from "./Html.js"
import * as Processes from "./Processes.js"
import * as Render from "./Render.js"
import { Report } from "./Report.js"
import * as Service from "./Service.js"
import * as Workload from "./Workload.js"

/**
 * An integer flag from `min` to `max`: a value out of range is "--name must
 * be an integer from min to max" (not Schema's tree), and the help shows the
 * default from the same value the parser uses.
 */
const integer = (name: string, min: number, max: number) =>
  Flag.Int(name).pipe(
    Flag.filter((n) => n >= min && n <= max, () => `--${name} must be an integer from ${min} to ${max}`)
  )

const number = (name: string, min: number, max: number) =>
  Flag.Finite(name).pipe(
    Flag.filter((n) => n >= min && n <= max, () => `--${name} must be a number from ${min} to ${max}`)
  )

/** The default, and the help line that shows it. */
const withDefault =
  <const A extends string | number>(fallback: A, description: string) => <B>(flag: Flag.Flag<B>): Flag.Flag<A | B> =>
    flag.pipe(
      Flag.withDefault(fallback),
      Flag.withDescription(`${description} (default: ${fallback})`)
    )

/** `--rebuild-rate`: one declaration for the run and `fleet`, whose defaults and meanings differ. */
const rebuildRate = (fallback: number, description: string) =>
  number("rebuild-rate", 0, 1000).pipe(withDefault(fallback, description))

const positive = (name: string, fallback: number, description: string) =>
  integer(name, 1, 1_000_000).pipe(withDefault(fallback, description))

const databaseUrl = Flag.String("database-url").pipe(
  Flag.optional,
  Flag.withDescription(
    "postgres://… to use PostgreSQL instead of the embedded database (default: LAZYDIAL_DATABASE_URL)"
  )
)

const port = (fallback: number) =>
  integer("port", 0, 65535).pipe(
    withDefault(fallback, "the HTTP port (0: any free port; the address is printed on stdout as JSON)")
  )

const host = Flag.String("host").pipe(withDefault("127.0.0.1", "the address to listen on"))

const grace = integer("grace-ms", 0, 600_000).pipe(
  withDefault(10_000, "at SIGTERM or SIGINT, how long requests in flight may take to finish")
)

const tokenAuthFile = Flag.String("token-auth-file").pipe(
  Flag.optional,
  Flag.withDescription(
    "the static token file (Kubernetes' format: token,user,uid[,\"group1,group2\"] per line); requests carry " +
      "Authorization: Bearer <token> (default: LAZYDIAL_TOKEN_AUTH_FILE)"
  )
)

const noAuth = Flag.Boolean("no-auth").pipe(
  Flag.withoutNegation,
  Flag.withDefault(false),
  Flag.withDescription("serve without authentication: every caller is anonymous, an operator (for a trusted network)")
)

/** A deadline flag in milliseconds: unless given, the server reads its environment variable. */
const deadline = (name: string, variable: string, description: string) =>
  integer(name, 100, 600_000).pipe(
    Flag.optional,
    Flag.withDescription(
      `${description} (default: ${variable}, else ${name === "headers-timeout-ms" ? 10_000 : 30_000})`
    )
  )

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
    "LAZYDIAL_HTTP_HEADERS_TIMEOUT_MS",
    "a request's headers must arrive within this many ms of its first byte, else 408"
  ),
  requestTimeoutMs: deadline(
    "request-timeout-ms",
    "LAZYDIAL_HTTP_REQUEST_TIMEOUT_MS",
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
 * starts; or none with `--no-auth`. Neither, or both, is a usage error
 * naming both; a file that cannot be used fails the start with its line.
 *
 * @since 0.2.0
 * @category settings
 */
export const authentication = (
  command: string,
  flags: { readonly tokenAuthFile: Option.Option<string>; readonly noAuth: boolean }
): Effect.Effect<Auth.Authentication["Service"], UsageError | Processes.StartupFailed> =>
  Effect.gen(function*() {
    const fromEnv = yield* Config.option(Config.String("LAZYDIAL_TOKEN_AUTH_FILE")).pipe(
      Effect.orElseSucceed(() => Option.none<string>())
    )
    const source = Option.isSome(flags.tokenAuthFile) ? "--token-auth-file" : "LAZYDIAL_TOKEN_AUTH_FILE"
    const path = Option.orElse(flags.tokenAuthFile, () => fromEnv)
    if (flags.noAuth) {
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
        message: `${command} needs a token file: --token-auth-file PATH or LAZYDIAL_TOKEN_AUTH_FILE ` +
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
const processOptions = (command: string, flags: {
  readonly port: number
  readonly host: string
  readonly databaseUrl: Option.Option<string>
  readonly grace: number
  readonly tokenAuthFile: Option.Option<string>
  readonly noAuth: boolean
  readonly headersTimeoutMs: Option.Option<number>
  readonly requestTimeoutMs: Option.Option<number>
}) =>
  Effect.gen(function*() {
    const url = yield* Processes.databaseUrl(flags.databaseUrl)
    const auth = yield* authentication(command, flags)
    return {
      port: flags.port,
      host: flags.host,
      databaseUrl: url,
      grace: Duration.millis(flags.grace),
      server: {
        authentication: auth,
        headersTimeout: Option.getOrUndefined(Option.map(flags.headersTimeoutMs, Duration.millis)),
        requestTimeout: Option.getOrUndefined(Option.map(flags.requestTimeoutMs, Duration.millis))
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
export const parseOwners = (text: string): Effect.Effect<ReadonlyArray<string>, InvalidOption> => {
  const names = text.split(",").map((name) => name.trim())
  return names.some((name) => name === "")
    ? Effect.fail(new InvalidOption({ option: "--owners", value: text, expected: "user names separated by commas" }))
    : Effect.succeed([...new Set(names)])
}

const options = {
  seed: Flag.Int("seed").pipe(
    withDefault(Workload.defaults.seed, "seed of every random choice: the same seed gives the same workload")
  ),
  chats: positive("chats", Workload.defaults.chats, "number of chats (a tenth of them are spawned as children)"),
  workspaces: positive("workspaces", Workload.defaults.workspaces, "number of workspaces (a tenth of them stopped)"),
  turns: positive("turns", Workload.defaults.turns, "turns per chat"),
  concurrency: positive("concurrency", Workload.defaults.concurrency, "turns in flight at most"),
  rebuildRate: rebuildRate(Workload.defaults.rebuildRate, "workspace rebuilds per second, over the whole fleet"),
  thinkMs: integer("think-ms", 0, 60_000).pipe(
    withDefault(Workload.defaults.thinkMs, "mean pause between a chat's turns, in milliseconds")
  ),
  validationDelayMs: integer("validation-delay-ms", 0, 600_000).pipe(
    withDefault(
      Workload.defaults.validationDelayMs,
      "how long a bound agent may stay silent before lazydial checks the binding"
    )
  ),
  delayMode: Flag.Literals("delay-mode", LazyDial.delayModes).pipe(
    withDefault(
      "fixed",
      "fixed: wait --validation-delay-ms; adaptive: start at --validation-delay-ms, then learn it from recent connect times, up to half the dial timeout"
    )
  ),
  first: Flag.Literals("first", Chats.strategies).pipe(
    withDefault(
      "lazydial",
      "the strategy that runs first in the process (the second meets warmer code: alternate it to compare fairly)"
    )
  ),
  notices: Flag.Literals("notices", ["on", "off"]).pipe(
    withDefault("on", "rebuild notices (LISTEN/NOTIFY): a stale binding switches with no lookup and no wait")
  ),
  json: Flag.Boolean("json").pipe(
    Flag.withDefault(false),
    Flag.withDescription("print the report as JSON (the Report schema) on stdout; progress and logs go to stderr")
  ),
  html: Flag.File("html").pipe(
    Flag.optional,
    Flag.withDescription("write the report as a self-contained HTML page with charts (its directory must exist)")
  ),
  databaseUrl,
  port: integer("port", 0, 65535).pipe(
    Flag.optional,
    Flag.withDescription("after the workload, keep serving the HTTP API on 127.0.0.1:<port>")
  )
}

/**
 * @since 0.1.0
 * @category models
 */
export type Flags = Command.Command.Config.Infer<typeof options>

/**
 * The time left of the strategy in progress, from its rate so far: "ETA 12s",
 * or "ETA …" until a turn has finished. Each strategy restarts the clock.
 *
 * @since 0.1.0
 * @category rendering
 */
export const makeEta = () => {
  let strategy: string | undefined
  let began = 0
  return (
    progress: { readonly strategy: string; readonly turns: number; readonly totalTurns: number },
    now: number
  ) => {
    if (progress.strategy !== strategy) {
      strategy = progress.strategy
      began = now
    }
    if (progress.turns === 0) return "ETA …"
    const left = ((now - began) / progress.turns) * (progress.totalTurns - progress.turns)
    return `ETA ${Math.ceil(left / 1000)}s`
  }
}

const runWorkload = (flags: Flags, url: Option.Option<{ readonly url: string }>) =>
  Effect.gen(function*() {
    const progress = Workload.makeProgress()
    const interactive = process.stderr.isTTY === true
    const eta = makeEta()
    const ticker = Effect.forever(
      Effect.andThen(
        Effect.sleep(interactive ? "200 millis" : "2 seconds"),
        Effect.sync(() => {
          // before the plan is made there is nothing to count: no "turns 0/0"
          if (progress.totalTurns === 0) return
          const line = `${Render.progressLine(progress)}  ${eta(progress, performance.now())}`
          process.stderr.write(interactive ? `\r${line}\u001b[K` : `${line}\n`)
        })
      )
    )
    const report = yield* Workload.run({
      ...Workload.defaults,
      seed: flags.seed,
      chats: flags.chats,
      workspaces: flags.workspaces,
      turns: flags.turns,
      concurrency: flags.concurrency,
      rebuildRate: flags.rebuildRate,
      thinkMs: flags.thinkMs,
      validationDelayMs: flags.validationDelayMs,
      delayMode: flags.delayMode,
      notices: flags.notices === "on",
      first: flags.first,
      databaseUrl: Option.getOrUndefined(Option.map(url, (target) => target.url))
    }, progress).pipe(Effect.raceFirst(Effect.andThen(ticker, Effect.never)))
    if (interactive) process.stderr.write("\r\u001b[K")
    if (flags.json) {
      yield* Console.log(JSON.stringify(Schema.encodeSync(Report)(report), null, 2))
    } else {
      yield* Console.log(Render.text(report))
    }
    if (Option.isSome(flags.html)) {
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(flags.html.value, Html.page(report))
      yield* Console.error(`wrote ${flags.html.value}`)
    }
    return report
  })

/**
 * The report file's directory must exist: checked before a run of a minute,
 * not after it.
 */
const writableDirectory = (flag: string, file: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const directory = NodePath.dirname(NodePath.resolve(file))
    const info = yield* Effect.option(fs.stat(directory))
    if (Option.isNone(info) || info.value.type !== "Directory") {
      return yield* new InvalidOption({ option: flag, value: file, expected: `a file in an existing directory` })
    }
  })

const serveCommand = Command.make("serve", {
  ...processFlags(8080),
  strategy: Flag.Literals("strategy", Chats.strategies).pipe(
    withDefault("lazydial", "the turn path: lazydial (the persisted binding) or latest (a lookup every turn)")
  ),
  validationDelayMs: options.validationDelayMs,
  delayMode: options.delayMode,
  notices: options.notices,
  dialTimeoutMs: integer("dial-timeout-ms", 1, 600_000).pipe(
    withDefault(10_000, "how long a turn may take to connect to its agent")
  )
}, (flags) =>
  Effect.flatMap(processOptions("serve", flags), (common) =>
    Processes.serve({
      ...common,
      strategy: flags.strategy,
      validationDelay: Duration.millis(flags.validationDelayMs),
      delayMode: flags.delayMode,
      notices: flags.notices === "on",
      dialTimeout: Duration.millis(flags.dialTimeoutMs)
    }))).pipe(
    Command.withDescription(
      "Serves the chat API as one replica (no workload, no agents). Run several on one PostgreSQL with a fleet."
    )
  )

const fleetCommand = Command.make("fleet", {
  ...processFlags(8090),
  workspaces: options.workspaces,
  owners: Flag.String("owners").pipe(
    Flag.optional,
    Flag.withDescription(
      "the users new workspaces belong to, in turn: USER1,USER2,... (default: the token file's users, in its order)"
    )
  ),
  seed: options.seed,
  rebuildRate: rebuildRate(0, "workspace rebuilds per second over the fleet (0: only on POST /workspaces/:id/rebuild)")
}, (flags) =>
  Effect.gen(function*() {
    const owners = Option.isSome(flags.owners) ? Option.some(yield* parseOwners(flags.owners.value)) : Option.none()
    const common = yield* processOptions("fleet", flags)
    return yield* Processes.fleet({
      ...common,
      workspaces: flags.workspaces,
      owners: Option.getOrElse(owners, () => common.server.authentication.users),
      rebuildRate: flags.rebuildRate,
      seed: flags.seed
    })
  })).pipe(
    Command.withDescription("Runs the workspace agents and records their addresses and builds in the database.")
  )

const clusterCommand = Command.make("cluster", {
  databaseUrl,
  replicas: positive("replicas", 2, "number of serve replicas (child processes)"),
  workspaces: options.workspaces,
  chats: options.chats,
  turns: options.turns,
  concurrency: options.concurrency,
  seed: options.seed,
  validationDelayMs: options.validationDelayMs,
  // serve's own declarations: each replica gets the same flag, with the same meaning and default
  delayMode: options.delayMode,
  notices: options.notices,
  rebuilds: integer("rebuilds", 0, 100_000).pipe(
    withDefault(
      0,
      "rebuilds through the fleet during a second measured phase, at seeded turns (0: only the steady phase)"
    )
  ),
  json: options.json
}, (flags) =>
  Effect.gen(function*() {
    const url = yield* Processes.databaseUrl(flags.databaseUrl)
    if (Option.isNone(url)) {
      return yield* new Processes.StartupFailed({
        message: "cluster needs PostgreSQL: give --database-url or LAZYDIAL_DATABASE_URL (PGlite is one process only)"
      })
    }
    const report = yield* Cluster.run({
      databaseUrl: url.value.url,
      replicas: flags.replicas,
      workspaces: flags.workspaces,
      chats: flags.chats,
      turns: flags.turns,
      concurrency: flags.concurrency,
      seed: flags.seed,
      validationDelayMs: flags.validationDelayMs,
      delayMode: flags.delayMode,
      notices: flags.notices === "on",
      rebuilds: flags.rebuilds
    }).pipe(
      Effect.provide(Service.layerDatabaseEither(Option.some(url.value.url), url.value.source)),
      Effect.mapError((error) => new Processes.StartupFailed({ message: error.message }))
    )
    yield* Console.log(flags.json ? JSON.stringify(report, null, 2) : Cluster.render(report))
  })).pipe(
    Command.withDescription(
      "Starts a fleet and --replicas serve processes on one PostgreSQL, drives turns over HTTP with both strategies, " +
        "and reports turns/s, p50/p99, lookups and SQL statements per turn; with --rebuilds, a second phase " +
        "measures the same while the fleet rebuilds workspaces."
    )
  )

/**
 * The API of the one-process run, after its report: with a token file of its
 * own (a fresh token for the user `demo`, an operator, who owns the
 * workspaces), in a private temp dir that is removed when the process ends.
 * Its path is printed, never the token.
 */
const serveOneProcess = (
  port: number,
  workspaces: number,
  url: Option.Option<{ readonly url: string; readonly source: string }>
) =>
  Effect.scoped(Effect.gen(function*() {
    const user = "demo"
    const tokens = yield* Auth.writeTokenFile([{ name: user, groups: [Auth.operators] }]).pipe(
      Effect.mapError((error) => new Processes.StartupFailed({ message: error.message }))
    )
    const file = yield* Auth.readTokenFile(tokens.path).pipe(
      Effect.mapError((error) => new Processes.StartupFailed({ message: error.message }))
    )
    yield* Console.error(
      `the API's token file: ${tokens.path} (user ${user}, in the group ${Auth.operators}; removed at exit). ` +
        `Every request but /health needs it: TOKEN=$(cut -d, -f1 ${tokens.path}), then ` +
        `curl -H "authorization: Bearer $TOKEN" ...`
    )
    return yield* Processes.serveOneProcess({
      port,
      workspaces,
      databaseUrl: url,
      owners: [user],
      server: { authentication: Auth.fromTokenFile(file) }
    })
  }))

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("lazydial-service", options, (flags) =>
  Effect.gen(function*() {
    if (Option.isSome(flags.html)) yield* writableDirectory("--html", flags.html.value)
    const url = yield* Processes.databaseUrl(flags.databaseUrl)
    yield* runWorkload(flags, url)
    if (Option.isSome(flags.port)) yield* serveOneProcess(flags.port.value, flags.workspaces, url)
  })).pipe(
    Command.withDescription(
      "Runs chats on real TCP agents, twice: with lazydial, and with a lookup every turn.\n\n" +
        "Examples:\n" +
        "  lazydial-service                                  the default workload, a text report (about 20 s)\n" +
        "  lazydial-service --json > report.json             the report as JSON on stdout\n" +
        "  lazydial-service --html report.html --seed 7      an HTML report of another workload\n" +
        "  lazydial-service serve --port 8081 --database-url postgres://... --token-auth-file tokens.csv   one chat replica\n" +
        "  lazydial-service serve --help                     the flags of a subcommand"
    ),
    Command.withSubcommands([serveCommand, fleetCommand, clusterCommand])
  )

const hint = "Run lazydial-service --help for every option and examples."

const usageError = (message: string) =>
  Effect.andThen(
    Console.error(`lazydial-service: ${message}\n${hint}`),
    Effect.sync(() => void (process.exitCode = 2))
  )

/**
 * Help and version as Effect prints them (on stdout, styled only for a
 * terminal); a command line that does not parse is one line on stderr per
 * error, naming the flag, and never the whole help: stdout carries results
 * only.
 */
const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Console.error(
        [
          ...event.errors.map((error) => `lazydial-service: ${error.message}`),
          hint
        ].join("\n")
      )
      : CliOutput.defaultPresenter.present(event)
})

// no --completions, --log-level or --wizard in the help: they do nothing useful here
const builtIns = CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Version] })

/**
 * Runs the command line. A usage error prints on stderr and sets the exit
 * code to 2; nothing but results goes to stdout.
 *
 * @since 0.1.0
 * @category running
 */
export const main = (argv: ReadonlyArray<string>) =>
  Command.runWith(command, { version: "0.1.0" })(argv.slice(2)).pipe(
    // the presenter has printed why
    Effect.catchIf(CliError.isCliError, () => Effect.sync(() => void (process.exitCode = 2))),
    Effect.catchTags({
      InvalidOption: (error) => usageError(error.message),
      UsageError: (error) => usageError(error.message),
      StartupFailed: (error) =>
        Effect.andThen(
          Console.error(`lazydial-service: ${error.message}`),
          Effect.sync(() => void (process.exitCode = 1))
        )
    }),
    Effect.provide(Layer.mergeAll(presenter, builtIns))
  )
