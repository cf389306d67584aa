/**
 * The service's settings: every `LAZYDIAL_*` variable it reads, named once
 * here (`variables`), with how each is read. Core and binding read no
 * variable of their own: their `layer(options)` take plain values, and this
 * module maps the service's names onto those options, the way Effect's own
 * packages take a `Config` from their caller (`PgClient.layerConfig`).
 *
 * Every setting is read the same way: a duration as core's
 * `Options.durationConfig` reads it (`"5 seconds"`, or bare milliseconds), a
 * number with `Options.numberConfig`, each within its range; a bad value is an
 * `InvalidSetting` that names the variable and says what it expects. A flag of
 * `serve` or `fleet`, when given, wins over its variable; unset both, the
 * default applies. The command line reads every setting before anything
 * starts, so a bad deployment fails at once, with exit code 2.
 *
 * The variables, by what they set:
 *
 * | variable | flag | default | sets |
 * |---|---|---|---|
 * | `LAZYDIAL_DATABASE_URL` | `--database-url` | the embedded PGlite | the database (`Processes.databaseUrl`) |
 * | `LAZYDIAL_DB_POOL_SIZE`, `LAZYDIAL_DB_CONNECT_TIMEOUT`, `LAZYDIAL_DB_STATEMENT_TIMEOUT`, `LAZYDIAL_DB_QUERY_DEADLINE` | | binding's `Database.defaults` | binding's `PgDatabase.layerPg` options |
 * | `LAZYDIAL_TOKEN_AUTH_FILE`, `LAZYDIAL_NO_AUTH` | `--token-auth-file`, `--no-auth` | neither: refused | who may call (`Cli.authentication`) |
 * | `LAZYDIAL_PORT`, `LAZYDIAL_HOST`, `LAZYDIAL_GRACE` | `--port`, `--host`, `--grace-ms` | 8080 (fleet 8090), 127.0.0.1, 10 s | the HTTP server |
 * | `LAZYDIAL_HTTP_HEADERS_TIMEOUT`, `LAZYDIAL_HTTP_REQUEST_TIMEOUT`, `LAZYDIAL_HTTP_MAX_BODY_BYTES` | the first two: `--headers-timeout-ms`, `--request-timeout-ms` | 10 s, 30 s, 1 MiB | the HTTP server's bounds |
 * | `LAZYDIAL_STRATEGY`, `LAZYDIAL_VALIDATION_DELAY`, `LAZYDIAL_NOTICES`, `LAZYDIAL_DIAL_TIMEOUT` | `--strategy`, `--validation-delay-ms` and `--delay-mode`, `--notices`, `--dial-timeout-ms` | lazydial, 500 ms fixed, on, 10 s | a replica's turn path (`Service.Options`) |
 * | `LAZYDIAL_SHARED_CONNECTIONS`, `LAZYDIAL_CONNECTION_IDLE_TTL`, `LAZYDIAL_CONNECTION_PROBE_AFTER_IDLE`, `LAZYDIAL_CONNECTION_PROBE_TIMEOUT` | `--shared-connections`, `--connection-idle-ttl-ms`, `--connection-probe-after-idle-ms`, `--connection-probe-timeout-ms` | on, 1 min, 10 s, 1 s | a replica's connections kept across turns (`Service.Options.sharedConnections`) |
 * | `LAZYDIAL_MAX_IN_FLIGHT`, `LAZYDIAL_NOTICE_VIEW_SIZE`, `LAZYDIAL_LOOKUP_BATCH_WINDOW` | | binding's defaults | binding's `ChatConnector` and `AgentDirectory` options |
 * | `LAZYDIAL_FAULTS`, `LAZYDIAL_FAULTS_DIAL`, `LAZYDIAL_FAULTS_LOOKUP` | | off | core's `Faults` |
 * | `LAZYDIAL_WORKSPACES`, `LAZYDIAL_OWNERS`, `LAZYDIAL_SEED`, `LAZYDIAL_REBUILD_RATE`, `LAZYDIAL_DIAL_LATENCY` | the fleet's `--workspaces`, `--owners`, `--seed`, `--rebuild-rate`, `--dial-latency-ms` | 8, the token file's users, 1, 0, 0 | the fleet |
 *
 * @since 0.2.0
 */
import { AgentDirectory, ChatConnector, Database } from "@lazydial/binding"
import { Faults, LazyDial, Options as CoreOptions } from "@lazydial/core"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Chats from "./Chats.js"
import * as Fleet from "./Fleet.js"

/**
 * The name of every variable the service reads, by setting: the one list of
 * them. docs/deployment.md's table of settings lists exactly these, and each
 * has a test of what it changes (`test/Settings.test.ts`).
 *
 * @since 0.2.0
 * @category names
 */
export const variables = {
  databaseUrl: "LAZYDIAL_DATABASE_URL",
  dbPoolSize: "LAZYDIAL_DB_POOL_SIZE",
  dbConnectTimeout: "LAZYDIAL_DB_CONNECT_TIMEOUT",
  dbStatementTimeout: "LAZYDIAL_DB_STATEMENT_TIMEOUT",
  dbQueryDeadline: "LAZYDIAL_DB_QUERY_DEADLINE",
  tokenAuthFile: "LAZYDIAL_TOKEN_AUTH_FILE",
  noAuth: "LAZYDIAL_NO_AUTH",
  port: "LAZYDIAL_PORT",
  host: "LAZYDIAL_HOST",
  grace: "LAZYDIAL_GRACE",
  headersTimeout: "LAZYDIAL_HTTP_HEADERS_TIMEOUT",
  requestTimeout: "LAZYDIAL_HTTP_REQUEST_TIMEOUT",
  maxBodyBytes: "LAZYDIAL_HTTP_MAX_BODY_BYTES",
  strategy: "LAZYDIAL_STRATEGY",
  validationDelay: "LAZYDIAL_VALIDATION_DELAY",
  notices: "LAZYDIAL_NOTICES",
  dialTimeout: "LAZYDIAL_DIAL_TIMEOUT",
  sharedConnections: "LAZYDIAL_SHARED_CONNECTIONS",
  connectionIdleTtl: "LAZYDIAL_CONNECTION_IDLE_TTL",
  connectionProbeAfterIdle: "LAZYDIAL_CONNECTION_PROBE_AFTER_IDLE",
  connectionProbeTimeout: "LAZYDIAL_CONNECTION_PROBE_TIMEOUT",
  maxInFlight: "LAZYDIAL_MAX_IN_FLIGHT",
  noticeViewSize: "LAZYDIAL_NOTICE_VIEW_SIZE",
  lookupBatchWindow: "LAZYDIAL_LOOKUP_BATCH_WINDOW",
  faults: "LAZYDIAL_FAULTS",
  faultsDial: "LAZYDIAL_FAULTS_DIAL",
  faultsLookup: "LAZYDIAL_FAULTS_LOOKUP",
  workspaces: "LAZYDIAL_WORKSPACES",
  owners: "LAZYDIAL_OWNERS",
  seed: "LAZYDIAL_SEED",
  rebuildRate: "LAZYDIAL_REBUILD_RATE",
  dialLatency: "LAZYDIAL_DIAL_LATENCY"
} as const

/**
 * A variable set to a value the service cannot use: the message names the
 * variable and says what it expects. The command line prints it on stderr and
 * exits with code 2, before anything starts.
 *
 * @since 0.2.0
 * @category errors
 */
export class InvalidSetting extends Schema.TaggedError<InvalidSetting>()("InvalidSetting", {
  variable: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `${this.variable}: ${this.detail}`
  }
}

// Effect's ConfigError says where the value was (`at ["NAME"]`) after the
// reason: the variable first, in words, reads better on a command line.
const invalidSetting = (error: Config.ConfigError): InvalidSetting => {
  const text = error.cause.message.replace(/^SchemaError\(|\)$/g, "")
  const variable = /at \["([^"]+)"\]/.exec(text)?.[1] ?? "a setting"
  const detail = text.split("\n").filter((line) => !/^\s*at \[/.test(line)).join("; ").trim()
  return new InvalidSetting({ variable, detail })
}

/**
 * Reads a setting: a bad value fails with the `InvalidSetting` that names its
 * variable.
 *
 * @since 0.2.0
 * @category reading
 */
export const read = <A>(config: Config.Config<A>): Effect.Effect<A, InvalidSetting> =>
  Effect.mapError(
    Effect.gen(function*() {
      return yield* config
    }),
    invalidSetting
  )

/**
 * The value of a flag when it was given, else of its variable when that is
 * set, else `fallback`.
 *
 * @since 0.2.0
 * @category reading
 */
export const orVariable = <A>(
  flag: Option.Option<A>,
  config: Config.Config<A>,
  fallback: A
): Effect.Effect<A, InvalidSetting> =>
  Option.match(flag, {
    onSome: Effect.succeed,
    onNone: () => Effect.map(read(Config.option(config)), Option.getOrElse(() => fallback))
  })

// A duration within [min, max] (above 0 with `aboveZero`), read by core's reader, which knows no minimum above 0:
// one is checked here, and fails as the reader's own checks do.
const duration = (
  name: string,
  max: Duration.Duration,
  options?: { readonly min?: Duration.Duration | undefined; readonly aboveZero?: boolean | undefined }
) => {
  const config = CoreOptions.durationConfig(name, { max, allowZero: options?.aboveZero !== true })
  const min = options?.min
  if (min === undefined) return config
  return config.pipe(Config.mapEffect((value) =>
    Duration.isLessThan(value, min)
      ? Effect.fail(
        new Config.ConfigError(
          new ConfigProvider.SourceError({
            message: `expected a duration from ${Duration.format(min)} to ${Duration.format(max)} ("5 seconds", ` +
              `or milliseconds), got ${Duration.format(value)}\n  at ["${name}"]`
          })
        )
      )
      : Effect.succeed(value)
  ))
}

// core's bound of the shared connections' times (`SharedConnections.layer` refuses more)
const maxConnectionTime = Duration.hours(24)

const integer = (name: string, min: number, max: number) => CoreOptions.numberConfig(name, { min, max, integer: true })

/**
 * How each variable that a flag also sets is read. A flag's own range is the
 * same, checked by the flag.
 *
 * @since 0.2.0
 * @category configs
 */
export const flagConfigs = {
  port: integer(variables.port, 0, 65535),
  host: Config.String(variables.host),
  grace: duration(variables.grace, Duration.minutes(10)),
  noAuth: Config.Boolean(variables.noAuth),
  headersTimeout: duration(variables.headersTimeout, Duration.minutes(10), { min: Duration.millis(100) }),
  requestTimeout: duration(variables.requestTimeout, Duration.minutes(10), { min: Duration.millis(100) }),
  strategy: Config.Literals(Chats.strategies, variables.strategy),
  validationDelay: LazyDial.delayConfig(variables.validationDelay),
  notices: Config.Literals(["on", "off"] as const, variables.notices),
  dialTimeout: duration(variables.dialTimeout, ChatConnector.maxDialTimeout, { aboveZero: true }),
  workspaces: integer(variables.workspaces, 1, 1_000_000),
  owners: Config.String(variables.owners),
  seed: integer(variables.seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
  rebuildRate: CoreOptions.numberConfig(variables.rebuildRate, { min: 0, max: 1000 }),
  sharedConnections: Config.Literals(["on", "off"] as const, variables.sharedConnections),
  connectionIdleTtl: duration(variables.connectionIdleTtl, maxConnectionTime),
  connectionProbeAfterIdle: duration(variables.connectionProbeAfterIdle, maxConnectionTime),
  connectionProbeTimeout: duration(variables.connectionProbeTimeout, Duration.minutes(1), { aboveZero: true }),
  dialLatency: duration(variables.dialLatency, Fleet.maxDialLatency)
}

/**
 * binding's `PgDatabase.layerPg` settings (PostgreSQL only: PGlite has one
 * session and no server to bound).
 *
 * @since 0.2.0
 * @category models
 */
export interface DatabaseSettings {
  readonly poolSize?: number | undefined
  readonly connectTimeout?: Duration.Duration | undefined
  readonly statementTimeout?: Duration.Duration | undefined
  readonly queryDeadline?: Duration.Duration | undefined
}

/**
 * @since 0.2.0
 * @category configs
 */
export const database: Config.Config<DatabaseSettings> = Config.all({
  poolSize: CoreOptions.optional(integer(variables.dbPoolSize, 1, Database.maxima.poolSize)),
  connectTimeout: CoreOptions.optional(
    duration(variables.dbConnectTimeout, Database.maxima.connectTimeout, { aboveZero: true })
  ),
  statementTimeout: CoreOptions.optional(
    duration(variables.dbStatementTimeout, Database.maxima.statementTimeout, { aboveZero: true })
  ),
  queryDeadline: CoreOptions.optional(
    duration(variables.dbQueryDeadline, Database.maxima.queryDeadline, { aboveZero: true })
  )
})

/**
 * The settings of a replica's turn path that have no flag: binding's
 * `ChatConnector` and `AgentDirectory` options, and core's fault injection.
 *
 * @since 0.2.0
 * @category models
 */
export interface TurnPathSettings {
  readonly maxInFlight?: number | undefined
  readonly viewSize?: number | undefined
  readonly batchWindow?: Duration.Duration | undefined
  readonly faults: Faults.ConfigOptions
}

/**
 * @since 0.2.0
 * @category configs
 */
export const faults: Config.Config<Faults.ConfigOptions> = Config.all({
  enabled: Faults.enabledConfig(variables.faults),
  dial: CoreOptions.optional(Faults.dialConfig(variables.faultsDial)),
  lookup: CoreOptions.optional(Faults.lookupConfig(variables.faultsLookup))
})

/**
 * @since 0.2.0
 * @category configs
 */
export const turnPath: Config.Config<TurnPathSettings> = Config.all({
  maxInFlight: CoreOptions.optional(integer(variables.maxInFlight, 1, ChatConnector.maxMaxInFlight)),
  viewSize: CoreOptions.optional(integer(variables.noticeViewSize, 1, ChatConnector.maxViewSize)),
  batchWindow: CoreOptions.optional(
    duration(variables.lookupBatchWindow, AgentDirectory.maxBatchWindow)
  ),
  faults
})

/**
 * The largest request body, in bytes: 1 KiB to 64 MiB, 1 MiB unless set.
 *
 * @since 0.2.0
 * @category configs
 */
export const maxBodyBytes: Config.Config<number | undefined> = CoreOptions.optional(
  integer(variables.maxBodyBytes, 1024, 67_108_864)
)
