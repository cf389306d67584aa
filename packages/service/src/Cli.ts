/**
 * The command line: `lazydial-service [--seed n] [--json] [--html file] ...`,
 * the one-process run, and its subcommands `serve` (one chat replica) and
 * `fleet` (the agents). Bad flags, and a bad database URL, print a message on
 * stderr and exit with code 2; a process that cannot start exits with 1.
 *
 * @since 0.1.0
 */
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import type * as Usage from "@effect/cli/Usage"
import * as ValidationError from "@effect/cli/ValidationError"
import * as FileSystem from "@effect/platform/FileSystem"
import { InvalidOption, LazyDial } from "@lazydial/core"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as NodePath from "node:path"
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
const integer = (name: string, min: number, max: number) => {
  const rule = `--${name} must be an integer from ${min} to ${max}`
  return Options.integer(name).pipe(
    Options.withSchema(
      Schema.Int.pipe(Schema.between(min, max)).annotations({ message: () => ({ message: rule, override: true }) })
    )
  )
}

const number = (name: string, min: number, max: number) => {
  const rule = `--${name} must be a number from ${min} to ${max}`
  return Options.float(name).pipe(
    Options.withSchema(
      Schema.Number.pipe(Schema.between(min, max)).annotations({ message: () => ({ message: rule, override: true }) })
    )
  )
}

/** The default, and the help line that shows it. */
const withDefault =
  <A extends string | number>(fallback: A, description: string) =>
  <B>(option: Options.Options<B>): Options.Options<A | B> =>
    option.pipe(
      Options.withDefault(fallback),
      Options.withDescription(`${description} (default: ${fallback})`)
    )

/** `--rebuild-rate`: one declaration for the run and `fleet`, whose defaults and meanings differ. */
const rebuildRate = (fallback: number, description: string) =>
  number("rebuild-rate", 0, 1000).pipe(withDefault(fallback, description))

const positive = (name: string, fallback: number, description: string) =>
  integer(name, 1, 1_000_000).pipe(withDefault(fallback, description))

const databaseUrl = Options.text("database-url").pipe(
  Options.optional,
  Options.withDescription(
    "postgres://… to use PostgreSQL instead of the embedded database (default: LAZYDIAL_DATABASE_URL)"
  )
)

const port = (fallback: number) =>
  integer("port", 0, 65535).pipe(
    withDefault(fallback, "the HTTP port (0: any free port; the address is printed on stdout as JSON)")
  )

const host = Options.text("host").pipe(withDefault("127.0.0.1", "the address to listen on"))

const grace = integer("grace-ms", 0, 600_000).pipe(
  withDefault(10_000, "at SIGTERM or SIGINT, how long requests in flight may take to finish")
)

/** The flags of every long-running process (`serve`, `fleet`), declared once. */
const processFlags = (fallbackPort: number) => ({ port: port(fallbackPort), host, databaseUrl, grace })

/** What `processFlags` become in the options of `Processes.serve` and `Processes.fleet`. */
const processOptions = (flags: {
  readonly port: number
  readonly host: string
  readonly databaseUrl: Option.Option<string>
  readonly grace: number
}) =>
  Effect.map(Processes.databaseUrl(flags.databaseUrl), (url) => ({
    port: flags.port,
    host: flags.host,
    databaseUrl: url,
    grace: Duration.millis(flags.grace)
  }))

const options = {
  seed: Options.integer("seed").pipe(
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
  delayMode: Options.choice("delay-mode", LazyDial.delayModes).pipe(
    withDefault(
      "fixed" as const,
      "fixed: wait --validation-delay-ms; adaptive: start at --validation-delay-ms, then learn it from recent connect times, up to half the dial timeout"
    )
  ),
  first: Options.choice("first", Chats.strategies).pipe(
    withDefault(
      "lazydial" as const,
      "the strategy that runs first in the process (the second meets warmer code: alternate it to compare fairly)"
    )
  ),
  notices: Options.choice("notices", ["on", "off"]).pipe(
    withDefault("on" as const, "rebuild notices (LISTEN/NOTIFY): a stale binding switches with no lookup and no wait")
  ),
  json: Options.boolean("json").pipe(
    Options.withDescription("print the report as JSON (the Report schema) on stdout; progress and logs go to stderr")
  ),
  html: Options.file("html").pipe(
    Options.optional,
    Options.withDescription("write the report as a self-contained HTML page with charts (its directory must exist)")
  ),
  databaseUrl,
  port: integer("port", 0, 65535).pipe(
    Options.optional,
    Options.withDescription("after the workload, keep serving the HTTP API on 127.0.0.1:<port>")
  )
}

/**
 * @since 0.1.0
 * @category models
 */
export type Flags = Command.Command.ParseConfig<typeof options>

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
      Effect.zipRight(
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
  strategy: Options.choice("strategy", Chats.strategies).pipe(
    withDefault("lazydial" as const, "the turn path: lazydial (the persisted binding) or latest (a lookup every turn)")
  ),
  validationDelayMs: options.validationDelayMs,
  delayMode: options.delayMode,
  notices: options.notices,
  dialTimeoutMs: integer("dial-timeout-ms", 1, 600_000).pipe(
    withDefault(10_000, "how long a turn may take to connect to its agent")
  )
}, (flags) =>
  Effect.flatMap(processOptions(flags), (common) =>
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
  seed: options.seed,
  rebuildRate: rebuildRate(0, "workspace rebuilds per second over the fleet (0: only on POST /workspaces/:id/rebuild)")
}, (flags) =>
  Effect.flatMap(processOptions(flags), (common) =>
    Processes.fleet({
      ...common,
      workspaces: flags.workspaces,
      rebuildRate: flags.rebuildRate,
      seed: flags.seed
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
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make("lazydial-service", options, (flags) =>
  Effect.gen(function*() {
    if (Option.isSome(flags.html)) yield* writableDirectory("--html", flags.html.value)
    const url = yield* Processes.databaseUrl(flags.databaseUrl)
    yield* runWorkload(flags, url)
    if (Option.isSome(flags.port)) {
      yield* Processes.serveOneProcess({ port: flags.port.value, workspaces: flags.workspaces, databaseUrl: url })
    }
  })).pipe(
    Command.withDescription(
      "Runs chats on real TCP agents, twice: with lazydial, and with a lookup every turn.\n\n" +
        "Examples:\n" +
        "  lazydial-service                                  the default workload, a text report (about 20 s)\n" +
        "  lazydial-service --json > report.json             the report as JSON on stdout\n" +
        "  lazydial-service --html report.html --seed 7      an HTML report of another workload\n" +
        "  lazydial-service serve --port 8081 --database-url postgres://...   one chat replica\n" +
        "  lazydial-service serve --help                     the flags of a subcommand"
    ),
    Command.withSubcommands([serveCommand, fleetCommand, clusterCommand])
  )

// every flag that takes a value, from the command's own usage (a boolean flag has no accepted values)
const flagsWithValues = (usage: Usage.Usage, into: Set<string> = new Set()): Set<string> => {
  switch (usage._tag) {
    case "Named":
      if (Option.isSome(usage.acceptedValues)) usage.names.forEach((name) => into.add(name))
      break
    case "Optional":
    case "Repeated":
      flagsWithValues(usage.usage, into)
      break
    case "Alternation":
    case "Concat":
      flagsWithValues(usage.left, into)
      flagsWithValues(usage.right, into)
      break
  }
  return into
}

/**
 * The first flag of `argv` given without its value (last, or followed by
 * another flag), if any: @effect/cli would report it as "Invalid subcommand".
 *
 * @since 0.1.0
 * @category parsing
 */
export const missingValue = (argv: ReadonlyArray<string>): Option.Option<string> => {
  const needsValue = flagsWithValues(Command.getUsage(command))
  for (const [i, arg] of argv.entries()) {
    const next = argv[i + 1]
    // a negative number is a value, not a flag
    if (needsValue.has(arg) && (next === undefined || (next.startsWith("-") && !/^-\d/.test(next)))) {
      return Option.some(arg)
    }
  }
  return Option.none()
}

// the ANSI style sequences (ESC [ ... m) @effect/printer-ansi emits
// eslint-disable-next-line no-control-regex
const ansi = /\u001b\[[0-9;]*m/g

// @effect/cli renders help and its errors with ANSI styles: keep them for a
// terminal, strip them for a pipe or a file.
const plainWhenPiped = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Console.consoleWith((console) =>
    Console.withConsole(effect, {
      ...console,
      log: (...args) => console.log(...(process.stdout.isTTY ? args : args.map(strip))),
      error: (...args) => console.error(...(process.stderr.isTTY ? args : args.map(strip))),
      unsafe: {
        ...console.unsafe,
        log: (...args) => console.unsafe.log(...(process.stdout.isTTY ? args : args.map(strip))),
        error: (...args) => console.unsafe.error(...(process.stderr.isTTY ? args : args.map(strip)))
      }
    })
  )

const strip = (value: unknown) => typeof value === "string" ? value.replace(ansi, "") : value

const usageError = (message: string) =>
  Effect.zipRight(
    Console.error(`lazydial-service: ${message}\nRun lazydial-service --help for every option and examples.`),
    Effect.sync(() => void (process.exitCode = 2))
  )

/**
 * Runs the command line. A usage error prints on stderr and sets the exit
 * code to 2; nothing but results goes to stdout.
 *
 * @since 0.1.0
 * @category running
 */
export const main = (argv: ReadonlyArray<string>) => {
  const missing = missingValue(argv.slice(2))
  if (Option.isSome(missing)) return plainWhenPiped(usageError(`${missing.value} needs a value`))
  return Command.run(command, { name: "lazydial-service", version: "0.1.0" })(argv).pipe(
    Effect.catchIf(ValidationError.isValidationError, (error) =>
      Effect.gen(function*() {
        // --help and --version end as a "help requested" error: that is not a usage error
        if (error._tag === "HelpRequested") return
        // @effect/cli has printed its message on stderr ("--chats must be an integer from 1 to 1000000")
        const reason = HelpDoc.toAnsiText(error.error).replace(ansi, "").trim()
        const value = /^'(.*)' is not/.exec(reason)?.[1]
        const at = value === undefined ? -1 : argv.indexOf(value)
        const flag = at > 0 && argv[at - 1]!.startsWith("--") ? `: the value of ${argv[at - 1]}` : ""
        yield* usageError(`invalid command line${flag}`)
      })),
    Effect.catchTags({
      InvalidOption: (error) => usageError(error.message),
      StartupFailed: (error) =>
        Effect.zipRight(
          Console.error(`lazydial-service: ${error.message}`),
          Effect.sync(() => void (process.exitCode = 1))
        )
    }),
    // no --completions, --log-level or --wizard in the help: they do nothing useful here
    Effect.provide(CliConfig.layer({ showBuiltIns: false })),
    plainWhenPiped
  )
}
