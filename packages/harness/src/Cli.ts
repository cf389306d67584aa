/**
 * The harness's command line: `lazydial-harness [--seed n] [--json] [--html
 * file] ...`, the one-process run and its report; `cluster`, the same
 * comparison across processes; and the service's own `serve` and `fleet`
 * (`@lazydial/service`'s commands, so that `pnpm start serve` works from the
 * repository root). Bad flags print a message on stderr and exit with code 2;
 * a run that cannot start exits with 1.
 *
 * @since 0.2.0
 */
import { InvalidOption } from "@lazydial/core"
import { Auth, Cli as ServiceCli, Processes, Service, Settings } from "@lazydial/service"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as NodePath from "node:path"
import * as Cluster from "./Cluster.js"
import * as Html from "./Html.js"
import * as OneProcess from "./OneProcess.js"
import * as Render from "./Render.js"
import { Report, strategies } from "./Report.js"
import * as Workload from "./Workload.js"

const { integer, positive, rebuildRate, withDefault } = ServiceCli

const json = Flag.Boolean("json").pipe(
  Flag.withDefault(false),
  Flag.withDescription("print the report as JSON (the Report schema) on stdout; progress and logs go to stderr")
)

const first = Flag.Literals("first", strategies).pipe(
  withDefault(
    "lazydial",
    "the strategy that runs first, the others following in report order, rotated (the later ones meet warmer code " +
      "and a warmer database: alternate it to compare fairly)"
  )
)

const dialLatencyMs = integer("dial-latency-ms", 0, 60_000).pipe(
  withDefault(
    Workload.defaults.dialLatencyMs,
    "how long every agent delays its handshake's answer, in milliseconds: the cost of a dial behind a tunnel"
  )
)

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
  // the replica's declarations: the run's strategies take them with the same meanings and defaults
  ...ServiceCli.replicaFlags,
  first,
  dialLatencyMs,
  json,
  html: Flag.File("html").pipe(
    Flag.optional,
    Flag.withDescription("write the report as a self-contained HTML page with charts (its directory must exist)")
  ),
  databaseUrl: ServiceCli.databaseUrl,
  port: integer("port", 0, 65535).pipe(
    Flag.optional,
    Flag.withDescription("after the workload, keep serving the HTTP API on 127.0.0.1:<port>")
  )
}

/**
 * @since 0.2.0
 * @category models
 */
export type Flags = Command.Command.Config.Infer<typeof options>

/**
 * The time left of the strategy in progress, from its rate so far: "ETA 12s",
 * or "ETA …" until a turn has finished. Each strategy restarts the clock.
 *
 * @since 0.2.0
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
    const replica = yield* ServiceCli.replicaSettings(flags)
    const report = yield* Workload.run({
      ...Workload.defaults,
      seed: flags.seed,
      chats: flags.chats,
      workspaces: flags.workspaces,
      turns: flags.turns,
      concurrency: flags.concurrency,
      rebuildRate: flags.rebuildRate,
      thinkMs: flags.thinkMs,
      validationDelayMs: Duration.toMillis(replica.validationDelay),
      delayMode: replica.delayMode,
      notices: replica.notices,
      first: flags.first,
      dialLatencyMs: flags.dialLatencyMs,
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

const clusterCommand = Command.make("cluster", {
  databaseUrl: ServiceCli.databaseUrl,
  replicas: positive("replicas", 2, "number of serve replicas (child processes)"),
  workspaces: options.workspaces,
  chats: options.chats,
  turns: options.turns,
  concurrency: options.concurrency,
  seed: options.seed,
  // serve's own declarations: each replica gets the same flag, with the same meaning and default
  ...ServiceCli.replicaFlags,
  first,
  dialLatencyMs,
  rebuilds: integer("rebuilds", 0, 100_000).pipe(
    withDefault(
      0,
      "rebuilds through the fleet during a second measured phase, at seeded turns (0: only the steady phase)"
    )
  ),
  json
}, (flags) =>
  Effect.gen(function*() {
    const url = yield* Processes.databaseUrl(flags.databaseUrl)
    if (Option.isNone(url)) {
      return yield* new Processes.StartupFailed({
        message: "cluster needs PostgreSQL: give --database-url or LAZYDIAL_DATABASE_URL (PGlite is one process only)"
      })
    }
    const replica = yield* ServiceCli.replicaSettings(flags)
    const database = yield* Settings.read(Settings.database)
    const report = yield* Cluster.run({
      databaseUrl: url.value.url,
      replicas: flags.replicas,
      workspaces: flags.workspaces,
      chats: flags.chats,
      turns: flags.turns,
      concurrency: flags.concurrency,
      seed: flags.seed,
      validationDelayMs: Duration.toMillis(replica.validationDelay),
      delayMode: replica.delayMode,
      notices: replica.notices,
      rebuilds: flags.rebuilds,
      first: flags.first,
      dialLatencyMs: flags.dialLatencyMs
    }).pipe(
      Effect.provide(Service.layerDatabaseEither(Option.some(url.value.url), database)),
      Effect.mapError((error) => new Processes.StartupFailed({ message: error.message }))
    )
    yield* Console.log(flags.json ? JSON.stringify(report, null, 2) : Cluster.render(report))
  })).pipe(
    Command.withDescription(
      "Starts a fleet and --replicas serve processes on one PostgreSQL, drives turns over HTTP with each strategy " +
        "(lazydial, lazydial_no_reuse, latest), and reports turns/s, p50/p99, dials, lookups and SQL statements " +
        "per turn; with --rebuilds, a second phase measures the same while the fleet rebuilds workspaces, and " +
        "counts the turns that met a retired agent."
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
  url: Option.Option<Processes.DatabaseTarget>
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
    return yield* OneProcess.serve({
      port,
      workspaces,
      databaseUrl: url,
      owners: [user],
      server: { authentication: Auth.fromTokenFile(file) }
    })
  }))

/**
 * `lazydial-harness`: the report of a one-process run; `cluster`; and the
 * service's `serve` and `fleet`.
 *
 * @since 0.2.0
 * @category commands
 */
export const command = Command.make("lazydial-harness", options, (flags) =>
  Effect.gen(function*() {
    if (Option.isSome(flags.html)) yield* writableDirectory("--html", flags.html.value)
    const url = yield* Processes.databaseUrl(flags.databaseUrl)
    yield* runWorkload(flags, url)
    if (Option.isSome(flags.port)) yield* serveOneProcess(flags.port.value, flags.workspaces, url)
  })).pipe(
    Command.withDescription(
      "Runs chats on real TCP agents three times: with lazydial over shared connections, with lazydial and a dial " +
        "per turn, and with a lookup and a dial every turn (latest).\n\n" +
        "Examples:\n" +
        "  lazydial-harness                                  the default workload, a text report (about 20 s)\n" +
        "  lazydial-harness --json > report.json             the report as JSON on stdout\n" +
        "  lazydial-harness --html report.html --seed 7      an HTML report of another workload\n" +
        "  lazydial-harness cluster --replicas 2 --database-url postgres://...   the comparison across processes\n" +
        "  lazydial-harness serve --help                     the service's own commands: serve, fleet"
    ),
    Command.withSubcommands([ServiceCli.serveCommand, ServiceCli.fleetCommand, clusterCommand])
  )

/**
 * Runs `lazydial-harness` on `argv`.
 *
 * @since 0.2.0
 * @category running
 */
export const main = (argv: ReadonlyArray<string>) =>
  ServiceCli.run(command, { name: "lazydial-harness", version: "0.2.0" })(argv)
