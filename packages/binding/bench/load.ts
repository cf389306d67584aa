/**
 * Load: 10,000 concurrent turns in one process, on the live clock, against
 * the memory store, PGlite, and PostgreSQL when LAZYDIAL_TEST_DATABASE_URL is
 * set. Agents and lookups are core's scripted test kit with small real
 * latencies (1 to 5 ms per dial).
 *
 * Each store gets two bursts of every chat at once:
 * - `mixed`: right after 10% of the workspaces were rebuilt (old agents
 *   refuse), 5% rebuilt with old agents that hang (validated at the delay),
 *   and 2% stopped: hot turns, switches with repair writes, and errors;
 * - `steady`: the next burst, where every binding is fresh: hot turns only.
 *
 * Every turn must end, with a connection or a typed error, within the dial
 * timeout; every connection must be released once. Prints throughput,
 * latency percentiles, peak memory, and SQL statements, lookups and dials per
 * turn (the steady burst must make at most 1 statement and 0 lookups) per
 * burst.
 *
 * With `LAZYDIAL_LOAD_SHARED=on`, core's `SharedConnections` sits under
 * `LazyDial` and in the connector's context, as in the service: the mixed
 * burst opens one connection per agent, and the steady burst borrows them
 * (it must dial at most 1% of its turns). After each burst the connections
 * still open must be exactly the shared ones.
 *
 *   pnpm --filter @lazydial/binding bench:load
 *   LAZYDIAL_LOAD_TURNS=2000 LAZYDIAL_LOAD_STORES=memory pnpm --filter @lazydial/binding bench:load
 *   LAZYDIAL_LOAD_CONCURRENCY=500 pnpm --filter @lazydial/binding bench:load   # admission control
 *   LAZYDIAL_LOAD_SHARED=on pnpm --filter @lazydial/binding bench:load          # connections shared across turns
 *   packages/binding/scripts/test-postgres.sh --exec pnpm --filter @lazydial/binding bench:load
 *
 * A turn's latency is measured from the moment it is admitted (all at once
 * when LAZYDIAL_LOAD_CONCURRENCY is unset).
 */
import { BindingStore, ChatConnector } from "@lazydial/binding"
import * as PgDatabase from "@lazydial/binding/PgDatabase"
import * as PgliteDatabase from "@lazydial/binding/PgliteDatabase"
import {
  type AgentConnection,
  AgentDialer,
  AgentDialError,
  AgentId,
  AgentLookup,
  BuildId,
  type ChatId,
  CurrentAgent,
  LazyDial,
  SharedConnections,
  WorkspaceId
} from "@lazydial/core"
import { type DialScript, layerTest, TestAgents } from "@lazydial/core/testing"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as SqlClient from "effect/sql/SqlClient"
import * as os from "node:os"

const turns = Number(process.env["LAZYDIAL_LOAD_TURNS"] ?? "10000")
const workspaceCount = Math.max(10, Math.round(turns / 100))
const validationDelayMillis = 200
const dialTimeoutMillis = 10_000
const databaseUrl = process.env["LAZYDIAL_TEST_DATABASE_URL"]
/** In-flight turns at most, as a service's admission control would allow; unset: all at once. */
const concurrency = process.env["LAZYDIAL_LOAD_CONCURRENCY"]
  ? Number(process.env["LAZYDIAL_LOAD_CONCURRENCY"])
  : undefined
/** Connections shared across turns (core's SharedConnections), as the service runs by default. */
const shared = process.env["LAZYDIAL_LOAD_SHARED"] === "on"
const stores = (process.env["LAZYDIAL_LOAD_STORES"] ?? `memory,pglite${databaseUrl ? ",postgres" : ""}`).split(",")

const typedErrors = new Set([
  "NoCurrentAgent",
  "DialTimeout",
  "AgentDialError",
  "AgentLookupError",
  "BindingStoreError"
])

const mb = (bytes: number) => Math.round(bytes / 1024 / 1024)

/** Samples RSS and heap every 20 ms until stopped. */
const memorySampler = () => {
  let peakRss = 0
  let peakHeap = 0
  const sample = () => {
    const usage = process.memoryUsage()
    peakRss = Math.max(peakRss, usage.rss)
    peakHeap = Math.max(peakHeap, usage.heapUsed)
  }
  sample()
  const timer = setInterval(sample, 20)
  return {
    stop: () => {
      clearInterval(timer)
      sample()
      return { peakRss, peakHeap }
    }
  }
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

interface BurstReport {
  readonly store: string
  readonly burst: string
  readonly turns: number
  readonly seconds: number
  readonly perSecond: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly connectMax: number
  readonly outcomes: Record<string, number>
  /** SQL statements sent per turn of the burst (on a database); lookups per turn (the bench's fleet). */
  readonly statementsPerTurn: number | undefined
  readonly lookupsPerTurn: number | undefined
  /** Dials that reached the bench's fleet, per turn of the burst; and those that opened a connection. */
  readonly dialsPerTurn: number | undefined
  readonly connectedDialsPerTurn: number | undefined
  readonly peakRssMb: number
  readonly peakHeapMb: number
  readonly problems: ReadonlyArray<string>
}

const uuid = () => crypto.randomUUID()

/**
 * What the bench needs of a fleet of scripted agents: core's test kit, or
 * the bench's own (LAZYDIAL_LOAD_KIT=bench, the default). The bench's fleet
 * behaves the same but keeps its ledger in a Map: the kit finds a connection
 * by a linear scan of its ledger on every release, which at 10,000 turns costs
 * more than the turn path itself, and the bench measures the turn path.
 */
type FleetService = Pick<
  TestAgents["Service"],
  "setCurrent" | "script" | "reset" | "unreleased" | "releasedTwice"
>
const Fleet = Context.Service<FleetService>("bench/Fleet")
const kit = process.env["LAZYDIAL_LOAD_KIT"] ?? "bench"

const layerCoreKit = Layer.effect(Fleet, TestAgents).pipe(Layer.provideMerge(layerTest))

const layerBenchFleet = Layer.effectContext(Effect.sync(() => {
  const currents = new Map<WorkspaceId, Option.Option<CurrentAgent>>()
  const scripts = new Map<AgentId, DialScript>()
  const open = new Map<string, number>()
  let releasedTwice = 0
  let serial = 0
  const dial = (agentId: AgentId) =>
    Effect.suspend(() => {
      dials++
      const script = scripts.get(agentId)
      if (script === undefined || script.result === "fail") {
        return Effect.delay(
          Effect.fail(new AgentDialError({ agentId, reason: "Refused", detail: "scripted" })),
          script?.latency ?? 0
        )
      }
      if (script.result === "hang") return Effect.never
      return Effect.delay(
        Effect.acquireRelease(
          Effect.sync((): AgentConnection => {
            connectedDials++
            const connectionId = `bench-${++serial}`
            open.set(connectionId, 0)
            return { agentId, connectionId, exchange: (request) => Effect.succeed(`${agentId}:${request}`) }
          }),
          (connection) =>
            Effect.sync(() => {
              const releases = open.get(connection.connectionId)
              if (releases === undefined) releasedTwice++
              open.delete(connection.connectionId)
            })
        ),
        script.latency ?? 0
      )
    })
  const fleet: FleetService = {
    setCurrent: (w, current) => Effect.sync(() => void currents.set(w, current)),
    script: (agentId, ...dials) => Effect.sync(() => void scripts.set(agentId, dials[dials.length - 1]!)),
    reset: Effect.void,
    unreleased: Effect.sync(() =>
      [...open.keys()].map((connectionId) => ({
        connectionId,
        agentId: AgentId.make("00000000-0000-4000-8000-000000000000"),
        acquiredAt: 0,
        releasedAt: []
      }))
    ),
    releasedTwice: Effect.sync(() =>
      Array.from({ length: releasedTwice }, () => ({
        connectionId: "?",
        agentId: AgentId.make("00000000-0000-4000-8000-000000000000"),
        acquiredAt: 0,
        releasedAt: [0, 0]
      }))
    )
  }
  return Context.make(Fleet, fleet).pipe(
    Context.add(AgentDialer.AgentDialer, AgentDialer.AgentDialer.of({ dial })),
    Context.add(
      AgentLookup.AgentLookup,
      AgentLookup.AgentLookup.of({
        current: (w) =>
          Effect.sync(() => {
            lookups++
            return currents.get(w) ?? Option.none()
          })
      })
    )
  )
}))

/** Lookups and dials the bench's fleet answered, and statements sent to the database (`countStatements`). */
let lookups = 0
let dials = 0
/** Dials that opened a connection (the others were refused). */
let connectedDials = 0
let statements = 0

/**
 * `database` with its `SqlClient` counting every statement (and transaction)
 * sent: the figure "SQL statements per steady-state turn".
 */
const countStatements = <A, E, R>(
  database: Layer.Layer<A | SqlClient.SqlClient, E, R>
): Layer.Layer<A | SqlClient.SqlClient, E, R> =>
  Layer.flatMap(database, (context) => {
    const sql = Context.get(context, SqlClient.SqlClient)
    const counting = new Proxy(sql, {
      apply(target, self, args) {
        const statement: unknown = Reflect.apply(target, self, args)
        // `sql("name")` makes an identifier, not a statement
        return Effect.isEffect(statement)
          ? Effect.andThen(
            Effect.sync(() => {
              statements++
            }),
            statement
          )
          : statement
      }
    })
    return Layer.succeedContext(Context.add(context, SqlClient.SqlClient, counting))
  })

const run = (store: string) =>
  Effect.gen(function*() {
    const agents = yield* Fleet
    const bindings = yield* BindingStore.BindingStore
    const connector = yield* ChatConnector.ChatConnector
    const sharing = Option.getOrUndefined(yield* Effect.serviceOption(SharedConnections.SharedConnections))

    // Workspaces, each with a current agent answering in 1 to 5 ms.
    const workspaces = Array.from({ length: workspaceCount }, (_, i) => ({
      workspaceId: WorkspaceId.make(uuid()),
      current: new CurrentAgent({ agentId: AgentId.make(uuid()), buildId: BuildId.make(uuid()) }),
      latency: 1 + (i % 5)
    }))
    // The fleet, kept here too: the kit's ledger finds a connection by a
    // linear scan on release, so it is reset before each burst, then the
    // fleet is scripted again.
    const currents = new Map<WorkspaceId, Option.Option<CurrentAgent>>()
    const scripts = new Map<AgentId, DialScript>()
    // On a database the store binds a chat only to a build the directory holds
    // for its workspace: every build the fleet starts is recorded there too.
    const sql = yield* Effect.serviceOption(SqlClient.SqlClient)
    const hold = (w: WorkspaceId, current: CurrentAgent) =>
      Option.match(sql, {
        onNone: () => Effect.void,
        onSome: (sql) =>
          Effect.orDie(
            sql`INSERT INTO lazydial_workspace_builds (workspace_id, build_number, build_id, agent_id, created_at)
SELECT ${w}::text, COALESCE(MAX(build_number), 0) + 1, ${current.buildId}::text, ${current.agentId}::text, now()
FROM lazydial_workspace_builds WHERE workspace_id = ${w}`
          )
      })
    const setCurrent = (w: WorkspaceId, current: Option.Option<CurrentAgent>) =>
      Effect.andThen(
        Effect.sync(() => currents.set(w, current)),
        Effect.andThen(
          Option.isSome(current) ? hold(w, current.value) : Effect.void,
          agents.setCurrent(w, current)
        )
      )
    const script = (agentId: AgentId, dial: DialScript) =>
      Effect.andThen(Effect.sync(() => scripts.set(agentId, dial)), agents.script(agentId, dial))
    const rescript = Effect.gen(function*() {
      yield* agents.reset
      for (const [w, current] of currents) yield* agents.setCurrent(w, current)
      for (const [agentId, dial] of scripts) yield* agents.script(agentId, dial)
    })
    for (const w of workspaces) {
      yield* setCurrent(w.workspaceId, Option.some(w.current))
      yield* script(w.current.agentId, { result: "connect", latency: w.latency })
    }
    // Chats, bound to their workspace's agent.
    const chats: Array<ChatId> = []
    yield* Effect.forEach(Array.from({ length: turns }, (_, i) => workspaces[i % workspaces.length]!), (w) =>
      Effect.gen(function*() {
        const chat = yield* bindings.createChat({ workspaceId: w.workspaceId })
        yield* bindings.recordAgent(chat.chatId, {
          expected: { workspaceId: w.workspaceId, agentId: Option.none() },
          current: w.current
        })
        chats.push(chat.chatId)
      }), { concurrency: 16, discard: true })

    const burst = (name: string) =>
      Effect.gen(function*() {
        const durations: Array<number> = []
        const outcomes: Record<string, number> = {}
        const problems: Array<string> = []
        const late: Record<string, { readonly turns: number; readonly maxMs: number }> = {}
        let connectMax = 0
        const count = (key: string) => {
          outcomes[key] = (outcomes[key] ?? 0) + 1
        }
        yield* rescript
        const [statementsBefore, lookupsBefore, dialsBefore, connectedBefore] = [
          statements,
          lookups,
          dials,
          connectedDials
        ]
        const memory = memorySampler()
        const started = performance.now()
        yield* Effect.forEach(chats, (chatId) =>
          Effect.gen(function*() {
            const t0 = performance.now()
            let connectEndedAt = 0
            const exit = yield* Effect.exit(Effect.scoped(Effect.flatMap(
              Effect.ensuring(
                connector.connect(chatId),
                Effect.sync(() =>
                  connectEndedAt = performance.now()
                )
              ),
              (c) =>
                Effect.as(c.connection.exchange("ping"), c.outcome)
            )))
            const elapsed = performance.now() - t0
            durations.push(elapsed)
            // The dial timeout bounds connect; the exchange and the Scope's
            // close after it are the turn's own work.
            const connectMs = connectEndedAt - t0
            connectMax = Math.max(connectMax, connectMs)
            if (connectMs > dialTimeoutMillis + 100) {
              const ending = Exit.isSuccess(exit)
                ? exit.value
                : Option.match(Cause.findErrorOption(exit.cause), {
                  onNone: () => "defect",
                  onSome: (e) => e._tag
                })
              const entry = late[ending] ?? { turns: 0, maxMs: 0 }
              late[ending] = { turns: entry.turns + 1, maxMs: Math.max(entry.maxMs, Math.round(connectMs)) }
            }
            if (Exit.isSuccess(exit)) {
              return count(exit.value)
            }
            const failure = Cause.findErrorOption(exit.cause)
            const tag = Option.isSome(failure) ? failure.value._tag : "defect"
            if (!typedErrors.has(tag)) {
              problems.push(`untyped ending: ${Cause.pretty(exit.cause)}`)
            }
            count(tag)
          }), { concurrency: concurrency ?? "unbounded", discard: true })
        const seconds = (performance.now() - started) / 1000
        const { peakHeap, peakRss } = memory.stop()
        for (const [ending, { maxMs, turns }] of Object.entries(late)) {
          problems.push(`${turns} connects ended past the timeout (${ending}), the last after ${maxMs} ms`)
        }
        const unreleased = (yield* agents.unreleased).length
        const releasedTwice = (yield* agents.releasedTwice).length
        // shared connections stay open for their idle time; nothing else may
        const open = sharing === undefined ? 0 : yield* sharing.open
        if (unreleased !== open || releasedTwice > 0) {
          problems.push(
            `${unreleased} connections unreleased (${open} shared ones open), ${releasedTwice} released twice`
          )
        }
        const dialsMade = dials - dialsBefore
        if (name === "steady" && sharing !== undefined && kit !== "core" && dialsMade > chats.length / 100) {
          problems.push(`${dialsMade} dials for ${chats.length} steady turns over shared connections`)
        }
        // A steady turn reads its row (reads that wait go together, so fewer
        // statements than turns) and looks nothing up; only the turns of
        // stopped workspaces, which do not connect, look up.
        const [statementsMade, lookupsMade] = [statements - statementsBefore, lookups - lookupsBefore]
        const connected = Object.entries(outcomes).filter(([key]) => !typedErrors.has(key)).reduce(
          (n, [, v]) => n + v,
          0
        )
        if (name === "steady" && statementsMade > chats.length) {
          problems.push(`${statementsMade} statements for ${chats.length} steady turns`)
        }
        if (name === "steady" && kit !== "core" && lookupsMade > chats.length - connected) {
          problems.push(`${lookupsMade} lookups for ${chats.length - connected} steady turns that did not connect`)
        }
        durations.sort((a, b) => a - b)
        return {
          store,
          burst: name,
          turns: chats.length,
          seconds,
          perSecond: Math.round(chats.length / seconds),
          p50: percentile(durations, 50),
          p99: percentile(durations, 99),
          max: durations[durations.length - 1] ?? 0,
          connectMax,
          outcomes,
          statementsPerTurn: store === "memory" ? undefined : statementsMade / chats.length,
          lookupsPerTurn: kit === "core" ? undefined : lookupsMade / chats.length,
          dialsPerTurn: kit === "core" ? undefined : dialsMade / chats.length,
          connectedDialsPerTurn: kit === "core" ? undefined : (connectedDials - connectedBefore) / chats.length,
          peakRssMb: mb(peakRss),
          peakHeapMb: mb(peakHeap),
          problems: problems.slice(0, 5)
        } satisfies BurstReport
      })

    // The mixed burst: rebuilds (old agents refuse, or hang), and stops.
    for (let i = 0; i < workspaces.length; i++) {
      const w = workspaces[i]!
      const kind = Math.floor((i * 100) / workspaces.length)
      if (kind >= 17) continue
      const old = w.current.agentId
      if (kind < 15) {
        const next = new CurrentAgent({ agentId: AgentId.make(uuid()), buildId: BuildId.make(uuid()) })
        yield* setCurrent(w.workspaceId, Option.some(next))
        yield* script(next.agentId, { result: "connect", latency: w.latency })
        yield* script(old, kind < 10 ? { result: "fail", latency: w.latency } : { result: "hang" })
      } else {
        yield* setCurrent(w.workspaceId, Option.none())
        yield* script(old, { result: "fail", latency: w.latency })
      }
    }
    const mixed = yield* burst("mixed")
    const steady = yield* burst("steady")
    return [mixed, steady]
  }).pipe(
    Effect.provide(
      ChatConnector.layer({ dialTimeout: dialTimeoutMillis }).pipe(
        Layer.provideMerge(
          shared
            ? Layer.provideMerge(LazyDial.layer({ delay: validationDelayMillis }), SharedConnections.layer())
            : LazyDial.layer({ delay: validationDelayMillis })
        ),
        Layer.provideMerge(
          store === "memory"
            ? BindingStore.layerMemory
            : store === "pglite"
            ? BindingStore.layerSql().pipe(Layer.provideMerge(countStatements(PgliteDatabase.layerPglite())))
            : BindingStore.layerSql().pipe(
              Layer.provideMerge(countStatements(PgDatabase.layerPg(databaseUrl ?? "", { poolSize: 20 })))
            )
        ),
        Layer.provideMerge(kit === "core" ? layerCoreKit : layerBenchFleet)
      )
    )
  )

const main = Effect.gen(function*() {
  console.log(
    `load: ${turns} turns per burst, ${
      concurrency ?? "all"
    } in flight at once, ${workspaceCount} workspaces, validation delay ` +
      `${validationDelayMillis} ms, dial timeout ${dialTimeoutMillis} ms, agents: ${kit} kit, shared connections ` +
      `${shared ? "on" : "off"}; node ${process.version}, ` +
      `${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${mb(os.totalmem())} MB, load average ` +
      os.loadavg().map((load) => load.toFixed(2)).join(" ")
  )
  const reports: Array<BurstReport> = []
  for (const store of stores) {
    const before = process.memoryUsage()
    for (const report of yield* run(store)) {
      reports.push(report)
      console.log(
        `${report.store.padEnd(8)} ${report.burst.padEnd(6)} ${report.turns} turns in ${report.seconds.toFixed(2)} s ` +
          `= ${report.perSecond}/s; p50 ${report.p50.toFixed(1)} ms, p99 ${report.p99.toFixed(1)} ms, ` +
          `max ${report.max.toFixed(1)} ms, slowest connect ${
            report.connectMax.toFixed(1)
          } ms; peak RSS ${report.peakRssMb} MB, heap ${report.peakHeapMb} MB ` +
          `(${mb(before.heapUsed)} MB before); ` +
          Object.entries(report.outcomes).map(([k, v]) => `${k}=${v}`).join(" ") +
          (report.statementsPerTurn === undefined ? "" : `; ${report.statementsPerTurn.toFixed(3)} statements/turn`) +
          (report.lookupsPerTurn === undefined ? "" : `, ${report.lookupsPerTurn.toFixed(3)} lookups/turn`) +
          (report.dialsPerTurn === undefined
            ? ""
            : `, ${report.dialsPerTurn.toFixed(3)} dials/turn (${
              report.connectedDialsPerTurn?.toFixed(3)
            } that connected)`) +
          (report.problems.length > 0 ? `\n  PROBLEMS: ${report.problems.join("; ")}` : "")
      )
    }
  }
  console.log(`load-json: ${JSON.stringify(reports)}`)
  if (reports.some((report) => report.problems.length > 0)) {
    return yield* Effect.die(new Error("some turns broke the load contract (see PROBLEMS above)"))
  }
})

Effect.runPromise(main).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
