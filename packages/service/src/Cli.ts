/**
 * The command line: `lazydial-service [--seed n] [--json] [--html file] ...`,
 * the one-process run, and its subcommands `serve` (one chat replica) and
 * `fleet` (the agents). Bad flags, and a bad database URL, print a message on
 * stderr and exit with code 2; a process that cannot start exits with 1.
 *
 * @since 0.1.0
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as Usage from "@effect/cli/Usage"
import * as ValidationError from "@effect/cli/ValidationError"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Cluster from "./Cluster.js"
import * as Html from "./Html.js"
import * as Processes from "./Processes.js"
import * as Render from "./Render.js"
import { Report } from "./Report.js"
import * as Service from "./Service.js"
import * as Workload from "./Workload.js"

const positive = (name: string, fallback: number, description: string) =>
  Options.integer(name).pipe(
    Options.withSchema(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1), Schema.lessThanOrEqualTo(1_000_000))),
    Options.withDefault(fallback),
    Options.withDescription(description)
  )

const databaseUrl = Options.text("database-url").pipe(
  Options.optional,
  Options.withDescription(
    "postgres://… to use PostgreSQL instead of the embedded database (default: LAZYDIAL_DATABASE_URL)"
  )
)

const port = (fallback: number) =>
  Options.integer("port").pipe(
    Options.withSchema(Schema.Int.pipe(Schema.between(0, 65535))),
    Options.withDefault(fallback),
    Options.withDescription("the HTTP port (0: any free port; the address is printed on stdout as JSON)")
  )

const host = Options.text("host").pipe(
  Options.withDefault("127.0.0.1"),
  Options.withDescription("the address to listen on")
)

const grace = Options.integer("grace-ms").pipe(
  Options.withSchema(Schema.Int.pipe(Schema.between(0, 600_000))),
  Options.withDefault(10_000),
  Options.withDescription("at SIGTERM or SIGINT, how long requests in flight may take to finish")
)

const options = {
  seed: Options.integer("seed").pipe(
    Options.withDefault(Workload.defaults.seed),
    Options.withDescription("seed of every random choice: the same seed gives the same workload")
  ),
  chats: positive("chats", Workload.defaults.chats, "number of chats (a tenth of them are spawned as children)"),
  workspaces: positive("workspaces", Workload.defaults.workspaces, "number of workspaces (a tenth of them stopped)"),
  turns: positive("turns", Workload.defaults.turns, "turns per chat"),
  concurrency: positive("concurrency", Workload.defaults.concurrency, "turns in flight at most"),
  rebuildRate: Options.float("rebuild-rate").pipe(
    Options.withSchema(Schema.Number.pipe(Schema.between(0, 1000))),
    Options.withDefault(Workload.defaults.rebuildRate),
    Options.withDescription("workspace rebuilds per second, over the whole fleet")
  ),
  thinkMs: Options.integer("think-ms").pipe(
    Options.withSchema(Schema.Int.pipe(Schema.between(0, 60_000))),
    Options.withDefault(Workload.defaults.thinkMs),
    Options.withDescription("mean pause between a chat's turns, in milliseconds")
  ),
  validationDelayMs: Options.integer("validation-delay-ms").pipe(
    Options.withSchema(Schema.Int.pipe(Schema.between(0, 600_000))),
    Options.withDefault(Workload.defaults.validationDelayMs),
    Options.withDescription("how long a bound agent may stay silent before lazydial checks the binding")
  ),
  json: Options.boolean("json").pipe(Options.withDescription("print the report as JSON (the Report schema)")),
  html: Options.file("html").pipe(
    Options.optional,
    Options.withDescription("write the report as a self-contained HTML page with charts")
  ),
  databaseUrl,
  port: Options.integer("port").pipe(
    Options.withSchema(Schema.Int.pipe(Schema.between(0, 65535))),
    Options.optional,
    Options.withDescription("after the workload, keep serving the HTTP API on 127.0.0.1:<port>")
  )
}

/**
 * @since 0.1.0
 * @category models
 */
export type Flags = Command.Command.ParseConfig<typeof options>

const runWorkload = (flags: Flags, url: Option.Option<{ readonly url: string }>) =>
  Effect.gen(function*() {
    const progress = Workload.makeProgress()
    const interactive = process.stderr.isTTY === true
    const ticker = Effect.forever(
      Effect.zipRight(
        Effect.sleep(interactive ? "200 millis" : "2 seconds"),
        Effect.sync(() => {
          const line = Render.progressLine(progress)
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
      databaseUrl: Option.getOrUndefined(Option.map(url, (target) => target.url))
    }, progress).pipe(Effect.raceFirst(Effect.zipRight(ticker, Effect.never)))
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

const serveCommand = Command.make("serve", {
  port: port(8080),
  host,
  databaseUrl,
  strategy: Options.choice("strategy", ["lazydial", "latest"]).pipe(
    Options.withDefault("lazydial" as const),
    Options.withDescription("the turn path: lazydial (the persisted binding) or latest (a lookup every turn)")
  ),
  grace,
  validationDelayMs: options.validationDelayMs,
  dialTimeoutMs: Options.integer("dial-timeout-ms").pipe(
    Options.withSchema(Schema.Int.pipe(Schema.between(1, 600_000))),
    Options.withDefault(10_000),
    Options.withDescription("how long a turn may take to connect to its agent")
  )
}, (flags) =>
  Effect.flatMap(Processes.databaseUrl(flags.databaseUrl), (url) =>
    Processes.serve({
      port: flags.port,
      host: flags.host,
      databaseUrl: url,
      strategy: flags.strategy,
      grace: Duration.millis(flags.grace),
      validationDelay: Duration.millis(flags.validationDelayMs),
      dialTimeout: Duration.millis(flags.dialTimeoutMs)
    }))).pipe(
    Command.withDescription(
      "Serves the chat API as one replica (no workload, no agents). Run several on one PostgreSQL with a fleet."
    )
  )

const fleetCommand = Command.make("fleet", {
  port: port(8090),
  host,
  databaseUrl,
  grace,
  workspaces: options.workspaces,
  seed: options.seed,
  rebuildRate: Options.float("rebuild-rate").pipe(
    Options.withSchema(Schema.Number.pipe(Schema.between(0, 1000))),
    Options.withDefault(0),
    Options.withDescription("workspace rebuilds per second over the fleet (0: only on POST /workspaces/:id/rebuild)")
  )
}, (flags) =>
  Effect.flatMap(Processes.databaseUrl(flags.databaseUrl), (url) =>
    Processes.fleet({
      port: flags.port,
      host: flags.host,
      databaseUrl: url,
      workspaces: flags.workspaces,
      rebuildRate: flags.rebuildRate,
      seed: flags.seed,
      grace: Duration.millis(flags.grace)
    }))).pipe(
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
      validationDelayMs: flags.validationDelayMs
    }).pipe(
      Effect.provide(Service.layerDatabaseEither(Option.some(url.value.url), url.value.source)),
      Effect.mapError((error) => new Processes.StartupFailed({ message: error.message }))
    )
    yield* Console.log(flags.json ? JSON.stringify(report, null, 2) : Cluster.render(report))
  })).pipe(
    Command.withDescription(
      "Starts a fleet and --replicas serve processes on one PostgreSQL, drives turns over HTTP with both strategies, " +
        "and reports turns/s, p50/p99 and SQL statements per turn."
    )
  )

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("lazydial-service", options, (flags) =>
  Effect.gen(function*() {
    const url = yield* Processes.databaseUrl(flags.databaseUrl)
    yield* runWorkload(flags, url)
    if (Option.isSome(flags.port)) {
      yield* Processes.serveOneProcess({ port: flags.port.value, workspaces: flags.workspaces, databaseUrl: url })
    }
  })).pipe(
    Command.withDescription("Runs chats on real TCP agents, twice: with lazydial, and with a lookup every turn."),
    Command.withSubcommands([serveCommand, fleetCommand, clusterCommand])
  )

/**
 * Runs the command line. A usage error sets the exit code to 2.
 *
 * @since 0.1.0
 * @category running
 */
export const main = (argv: ReadonlyArray<string>) =>
  Command.run(command, { name: "lazydial-service", version: "0.1.0" })(argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, (error) =>
      Effect.gen(function*() {
        // --help and --version end as a "help requested" error: that is not a usage error
        if (error._tag === "HelpRequested") return
        // @effect/cli has printed its message ("'x' is not a integer"); name the flag it belongs to
        const reason = HelpDoc.toAnsiText(error.error).trim()
        const value = /^'(.*)' is not/.exec(reason)?.[1]
        const at = value === undefined ? -1 : argv.indexOf(value)
        const flag = at > 0 && argv[at - 1]!.startsWith("--") ? ` (the value of ${argv[at - 1]})` : ""
        const usage = HelpDoc.toAnsiText(Usage.getHelp(Command.getUsage(command))).trim()
        yield* Console.error(
          `lazydial-service: invalid command line${flag}.\n\nUSAGE\n  ${usage}\n\nRun with --help for every option.`
        )
        process.exitCode = 2
      })),
    Effect.catchTags({
      InvalidOption: (error) =>
        Effect.zipRight(
          Console.error(`lazydial-service: ${error.message}`),
          Effect.sync(() => void (process.exitCode = 2))
        ),
      StartupFailed: (error) =>
        Effect.zipRight(
          Console.error(`lazydial-service: ${error.message}`),
          Effect.sync(() => void (process.exitCode = 1))
        )
    })
  )
