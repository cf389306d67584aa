import { Database } from "@lazydial/binding"
import { SharedConnections } from "@lazydial/core"
import * as Auth from "@lazydial/service/Auth"
import { scheduledRetireModes } from "@lazydial/service/Fleet"
import { counterTotal, isLookupStatement, lookupMetrics } from "@lazydial/service/Probe"
import { seededRandom as rng } from "@lazydial/service/Processes"
import { fleetMetrics } from "@lazydial/service/Server"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Semaphore from "effect/Semaphore"
import * as SqlClient from "effect/sql/SqlClient"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { ClusterOptions, ClusterReport, PhaseFigures, ReplicaFigures, StrategyFigures } from "../Cluster.js"
import { ordinal, p99Rank } from "../Render.js"
import { orderFrom, strategies, type Strategy, wiring } from "../Report.js"
import { quantile, round } from "./stats.js"

interface Child {
  readonly name: string
  readonly process: ChildProcess
  readonly info: Record<string, unknown>
}

// The children are the service's own program, `lazydial-service serve` and
// `fleet`, run from source with this process's loader flags (`tsx`): the
// harness measures the service as it is in the working tree, with no build.
const serviceBin = fileURLToPath(import.meta.resolve("@lazydial/service/bin"))

const startChild = (name: string, args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.callback<Child, Error>((resume) => {
      // the children authenticate with the cluster's own token file: a --no-auth of the environment would contradict it
      const { LAZYDIAL_NO_AUTH: _noAuth, LAZYDIAL_TOKEN_AUTH_FILE: _tokens, ...env } = process.env
      const child = spawn(process.execPath, [...process.execArgv, serviceBin, ...args], {
        env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      let err = ""
      let done = false
      const finish = (effect: Effect.Effect<Child, Error>) => {
        if (done) return
        done = true
        resume(effect)
      }
      child.stderr!.on("data", (chunk: Buffer) => {
        err = (err + chunk.toString()).slice(-4000)
      })
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString()
        const newline = out.indexOf("\n")
        if (newline < 0) return
        try {
          finish(Effect.succeed({ name, process: child, info: JSON.parse(out.slice(0, newline)) }))
        } catch (cause) {
          finish(Effect.fail(new Error(`${name} printed no address: ${String(cause)}`)))
        }
      })
      child.on("exit", (code) => finish(Effect.fail(new Error(`${name} exited with ${code} at start:\n${err}`))))
      return Effect.sync(() => void child.kill("SIGKILL"))
    }),
    // SIGTERM, then SIGKILL after 5 s: no child outlives the cluster
    (child) =>
      Effect.gen(function*() {
        const exited = () => child.process.exitCode !== null || child.process.signalCode !== null
        // checked when it starts waiting: an exit between two waits is not missed
        const exit = Effect.callback<void>((resume) => {
          if (exited()) return resume(Effect.void)
          const onExit = () => resume(Effect.void)
          child.process.once("exit", onExit)
          return Effect.sync(() => void child.process.off("exit", onExit))
        })
        if (exited()) return
        child.process.kill("SIGTERM")
        const stopped = yield* Effect.timeoutOption(exit, "5 seconds")
        if (Option.isSome(stopped)) return
        child.process.kill("SIGKILL")
        yield* exit
      })
  )

/** The cluster's own users: one owns the workspaces and the chats, one rebuilds (an operator). */
export const clusterUsers = { user: "cluster", operator: "cluster-operator" } as const

const requestRaw = (token: string, url: string, body?: unknown) =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, {
        method: body === undefined ? "GET" : "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)])
      })
      return { status: response.status, text: await response.text() }
    },
    catch: (cause) => new Error(`${url}: ${String(cause)}`)
  })

const request = (token: string, url: string, body?: unknown) =>
  Effect.flatMap(requestRaw(token, url, body), ({ status, text }) =>
    Effect.try({
      // safe: every field is read as `unknown` and converted with String() or compared, never trusted
      try: () => ({ status, body: (text === "" ? {} : JSON.parse(text)) as Record<string, unknown> }),
      catch: (cause) => new Error(`${url}: ${String(cause)}`)
    }))

const requestText = (token: string, url: string) => Effect.map(requestRaw(token, url), (response) => response.text)

// The database's own words for why something failed: its message, not Effect's wrapper around it.
const databaseError = (error: unknown): string => {
  let current: unknown = error
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    if ("cause" in current && current.cause !== undefined) {
      current = current.cause
      continue
    }
    break
  }
  return current instanceof Error ? current.message : String(current)
}

/**
 * Whether this role can count statements at the database: `pg_stat_statements`
 * is there (or can be made) and readable. Counting needs no reset, which an
 * ordinary role may not call (`pg_stat_statements_reset` is the superuser's
 * unless granted): each phase takes the difference of two snapshots. When it
 * cannot, the reason is the database's own error.
 */
const statementsAvailable: Effect.Effect<
  { readonly available: true } | { readonly available: false; readonly reason: string },
  never,
  SqlClient.SqlClient
> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<
    { n: number }
  >`SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'pg_stat_statements'`
  if ((rows[0]?.n ?? 0) === 0) {
    // try to make it: works when the server preloads the library and the role may create extensions
    yield* sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`
  }
  yield* sql`SELECT 1 FROM pg_stat_statements LIMIT 1`
  return { available: true } as const
}).pipe(
  // the harness's own statements get binding's query deadline too: a hung server fails the run, never holds it
  Database.withDeadline("Cluster.statementsAvailable"),
  Effect.catch((error) => Effect.succeed({ available: false, reason: databaseError(error) } as const))
)

/** Every statement's calls so far, by its id: a phase counts the difference of two of these. */
const statementCalls = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) =>
    sql<{ id: string; query: string; calls: number }>`SELECT queryid::text AS id, query, calls::int AS calls
FROM pg_stat_statements WHERE query NOT ILIKE '%pg_stat_statements%'`.pipe(
      Database.withDeadline("Cluster.statements"),
      Effect.map((rows) => new Map(rows.map((row) => [row.id, row])))
    )
)

interface Task {
  readonly chatId: string
  readonly workspace: string
  readonly replica: number
  readonly key: number
}

export const retiredAfterMs = 500

/** core's shared-connection counters of every replica, summed per counter, from their `/metrics`. */
const sharedOf = (token: string, urls: ReadonlyArray<string>) =>
  Effect.map(
    Effect.forEach(urls, (url) => requestText(token, `${url}/metrics`), { concurrency: "unbounded" }),
    (texts) => {
      const total = (name: string) => texts.reduce((n, text) => n + counterTotal(text, name), 0)
      return {
        dials: total(SharedConnections.metrics.dials.id),
        borrows: total(SharedConnections.metrics.borrows.id),
        drops: total(SharedConnections.metrics.drops.id)
      }
    }
  )

const WorkspaceList = Schema.Array(
  Schema.Struct({ workspace_id: Schema.String, agent_id: Schema.NullOr(Schema.String) })
)

/** Each of the user's workspaces' current agent, as the fleet says. */
const currentAgents = (token: string, fleetUrl: string) =>
  Effect.flatMap(
    requestRaw(token, `${fleetUrl}/workspaces`),
    ({ text }) =>
      Schema.decodeUnknownEffect(Schema.fromJsonString(WorkspaceList))(text).pipe(
        Effect.mapError((error) => new Error(`${fleetUrl}/workspaces: ${error.message}`)),
        Effect.map((list) => new Map(list.flatMap((w) => w.agent_id === null ? [] : [[w.workspace_id, w.agent_id]])))
      )
  )

/** Every lookup counter of every process, summed per counter, from their `/metrics`. */
const lookupsOf = (token: string, urls: ReadonlyArray<string>) =>
  Effect.map(
    Effect.forEach(urls, (url) => requestText(token, `${url}/metrics`), { concurrency: "unbounded" }),
    (texts) => ({
      lookups: texts.reduce((n, text) => n + counterTotal(text, lookupMetrics.directoryLookups), 0),
      queries: texts.reduce((n, text) => n + counterTotal(text, lookupMetrics.directoryQueries), 0)
    })
  )

interface RebuildAt {
  /** Sent when the measured turn with this index starts. */
  readonly turn: number
  readonly workspace: string
  readonly mode: typeof scheduledRetireModes[number]
}

/**
 * `count` rebuilds at seeded turns of a phase of `turns` turns, each of a
 * seeded workspace in a seeded mode of the fleet's own schedule. Keyed to
 * turns, not to seconds, so both strategies get the very same rebuilds
 * between the very same turns however fast each one runs.
 */
const planRebuilds = (
  count: number,
  turns: number,
  workspaces: ReadonlyArray<string>,
  random: () => number
): ReadonlyArray<RebuildAt> =>
  Array.from({ length: count }, () => ({
    turn: Math.floor(random() * turns),
    workspace: workspaces[Math.floor(random() * workspaces.length)]!,
    mode: scheduledRetireModes[Math.floor(random() * scheduledRetireModes.length)]!
  })).sort((a, b) => a.turn - b.turn)

/**
 * One measured phase: the tasks at most `concurrency` at a time, with the
 * fleet rebuilding as `rebuilds` says meanwhile. Statements are
 * counted at the database from a reset at its start; lookups also by every
 * process's own counters, and the fleet's (its reads before a rebuild) are
 * taken out of the database's count, so both count the replicas' lookups.
 */
const measure = (
  context: {
    readonly options: ClusterOptions
    readonly statements: boolean
    readonly urls: ReadonlyArray<string>
    readonly fleetUrl: string
    readonly workspaces: ReadonlyArray<string>
    readonly tokens: Readonly<Record<string, string>>
    readonly strategy: Strategy
  },
  phase: PhaseFigures["phase"],
  tasks: ReadonlyArray<Task>,
  rebuilds: ReadonlyArray<RebuildAt>
) =>
  Effect.scoped(Effect.gen(function*() {
    const { fleetUrl, options, statements, tokens, urls } = context
    const userToken = tokens[clusterUsers.user]!
    const operatorToken = tokens[clusterUsers.operator]!
    const callsBefore = statements ? yield* statementCalls : new Map<string, { query: string; calls: number }>()
    const replicasBefore = yield* lookupsOf(userToken, urls)
    const fleetBefore = yield* lookupsOf(userToken, [fleetUrl])
    const sharedBefore = yield* sharedOf(userToken, urls)
    // each workspace's current agent, and what its rebuilds retired: when the fleet answered, and which agent
    const current = yield* currentAgents(userToken, fleetUrl)
    const rebuildsInFlight = new Map<string, number>()
    // rebuilds sent per workspace: a turn during which one was sent may fail because of it, not of an earlier one
    const rebuildsSent = new Map<string, number>()
    const lastRebuild = new Map<string, { readonly answeredAt: number; readonly retired: string | undefined }>()
    const retiredAt = new Map<string, number>()
    let retiredAgentTurns = 0
    const perReplica = urls.map(() => ({ ok: 0, failed: 0, databaseUnavailable: 0, latencies: [] as Array<number> }))
    const outcomes: Record<string, number> = {}
    const failures: Record<string, number> = {}
    const done = { rebuilds: 0, failed: 0 }
    // one rebuild at a time, in the planned order, beside the turns (a turn
    // never waits for a rebuild); forked into this phase's Scope, so none
    // outlives it, and awaited before the phase is counted
    const oneAtATime = yield* Semaphore.make(1)
    const rebuildFibers: Array<Fiber.Fiber<void>> = []
    const rebuild = (at: RebuildAt) =>
      oneAtATime.withPermits(1)(
        Effect.sync(() => {
          rebuildsInFlight.set(at.workspace, (rebuildsInFlight.get(at.workspace) ?? 0) + 1)
          rebuildsSent.set(at.workspace, (rebuildsSent.get(at.workspace) ?? 0) + 1)
        }).pipe(
          Effect.andThen(request(operatorToken, `${fleetUrl}/workspaces/${at.workspace}/rebuild`, { mode: at.mode })),
          Effect.map((response) => {
            if (response.status !== 200) return void done.failed++
            done.rebuilds++
            const answeredAt = performance.now()
            const retired = current.get(at.workspace)
            if (retired !== undefined) retiredAt.set(retired, answeredAt)
            current.set(at.workspace, String(response.body["agent_id"]))
            lastRebuild.set(at.workspace, { answeredAt, retired })
          }),
          Effect.orElseSucceed(() => void done.failed++),
          Effect.ensuring(
            Effect.sync(() => rebuildsInFlight.set(at.workspace, rebuildsInFlight.get(at.workspace)! - 1))
          )
        )
      )
    let next = 0
    const began = performance.now()
    yield* Effect.forEach(tasks, (task, i) =>
      Effect.gen(function*() {
        while (next < rebuilds.length && rebuilds[next]!.turn <= i) {
          rebuildFibers.push(yield* Effect.forkScoped(rebuild(rebuilds[next++]!)))
        }
        const start = performance.now()
        // the turn counts for `retiredAgentTurns` when its workspace's last rebuild was answered long enough ago
        const last = lastRebuild.get(task.workspace)
        const afterTheRead = last !== undefined && (rebuildsInFlight.get(task.workspace) ?? 0) === 0 &&
          start - last.answeredAt > retiredAfterMs
        const sentBefore = rebuildsSent.get(task.workspace) ?? 0
        const result = yield* Effect.result(
          request(userToken, `${urls[task.replica]}/chats/${task.chatId}/turns`, { message: "turn" })
        )
        const figures = perReplica[task.replica]!
        figures.latencies.push(performance.now() - start)
        if (result._tag === "Success" && result.success.status === 200) {
          figures.ok++
          const outcome = String(result.success.body["outcome"])
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1
          const agent = String(result.success.body["agent_id"])
          const retired = retiredAt.get(agent)
          if (retired !== undefined && start - retired > retiredAfterMs) retiredAgentTurns++
        } else if (result._tag === "Success" && result.success.body["reason"] === "database_unavailable") {
          figures.databaseUnavailable++
        } else {
          // and no rebuild of its workspace began while it ran: that one's retired agent is another story
          if (afterTheRead && (rebuildsSent.get(task.workspace) ?? 0) === sentBefore) retiredAgentTurns++
          figures.failed++
          const why = result._tag === "Failure"
            ? "no answer"
            : `${result.success.status} ${String(result.success.body["reason"] ?? result.success.body["_tag"] ?? "")}`
              .trim()
          failures[why] = (failures[why] ?? 0) + 1
        }
      }), { concurrency: options.concurrency, discard: true })
    const seconds = (performance.now() - began) / 1000
    yield* Fiber.joinAll(rebuildFibers)
    // every rebuild's notice read by now: a replica that still holds a retired agent's connection shows here
    yield* Effect.sleep(retiredAfterMs)
    const retiredSocketsOpen = counterTotal(
      yield* requestText(userToken, `${fleetUrl}/metrics`),
      fleetMetrics.retiredSocketsOpen.id
    )
    const turns = tasks.length
    const replicasAfter = yield* lookupsOf(userToken, urls)
    const fleetAfter = yield* lookupsOf(userToken, [fleetUrl])
    const sharedAfter = yield* sharedOf(userToken, urls)
    const shares = wiring[context.strategy].sharedConnections

    const callsAfter = statements ? yield* statementCalls : new Map<string, { query: string; calls: number }>()
    // this phase's calls of each statement: the difference of the two snapshots
    const rows = [...callsAfter.entries()]
      .map(([id, row]) => ({ query: row.query, calls: row.calls - (callsBefore.get(id)?.calls ?? 0) }))
      .filter((row) => row.calls > 0)
      .sort((a, b) => b.calls - a.calls)
    const byStatement = rows.slice(0, 12).map((row) => ({
      statement: row.query.replace(/\s+/g, " ").slice(0, 120),
      perTurn: round(row.calls / turns)
    }))
    const lookupsPerTurn = statements
      ? round(
        Math.max(
          0,
          rows.filter((row) => isLookupStatement(row.query)).reduce((n, row) => n + row.calls, 0) -
            (fleetAfter.queries - fleetBefore.queries)
        ) / turns
      )
      : null
    const replicaFigures: Array<ReplicaFigures> = perReplica.map((figures, i) => {
      const sorted = [...figures.latencies].sort((a, b) => a - b)
      return {
        replica: i + 1,
        turns: sorted.length,
        ok: figures.ok,
        databaseUnavailable: figures.databaseUnavailable,
        failed: figures.failed,
        turnsPerSecond: round(sorted.length / seconds),
        p50Ms: round(quantile(sorted, 0.5)),
        p99Ms: round(quantile(sorted, 0.99))
      }
    })
    const all = perReplica.flatMap((figures) => figures.latencies).sort((a, b) => a - b)
    const result: PhaseFigures = {
      phase,
      turns,
      ok: replicaFigures.reduce((n, r) => n + r.ok, 0),
      databaseUnavailable: replicaFigures.reduce((n, r) => n + r.databaseUnavailable, 0),
      failed: replicaFigures.reduce((n, r) => n + r.failed, 0),
      seconds: round(seconds),
      turnsPerSecond: round(turns / seconds),
      p50Ms: round(quantile(all, 0.5)),
      p99Ms: round(quantile(all, 0.99)),
      rebuilds: done.rebuilds,
      rebuildsFailed: done.failed,
      outcomes,
      failures,
      switchedByNotice: outcomes["switched_by_notice"] ?? 0,
      dialsPerTurn: shares ? round((sharedAfter.dials - sharedBefore.dials) / turns) : null,
      borrowsPerTurn: shares ? round((sharedAfter.borrows - sharedBefore.borrows) / turns) : null,
      drops: shares ? sharedAfter.drops - sharedBefore.drops : null,
      retiredAgentTurns,
      retiredSocketsOpen,
      replicaLookupsPerTurn: round((replicasAfter.lookups - replicasBefore.lookups) / turns),
      replicaQueriesPerTurn: round((replicasAfter.queries - replicasBefore.queries) / turns),
      statementsPerTurn: statements ? round(rows.reduce((n, row) => n + row.calls, 0) / turns) : null,
      lookupsPerTurn,
      byStatement,
      replicas: replicaFigures
    }
    return result
  }))

const runStrategy = (
  options: ClusterOptions,
  strategy: Strategy,
  statements: boolean,
  auth: { readonly path: string; readonly tokens: Readonly<Record<string, string>> }
) =>
  Effect.scoped(Effect.gen(function*() {
    const url = options.databaseUrl
    const userToken = auth.tokens[clusterUsers.user]!
    const fleet = yield* startChild("fleet", [
      "fleet",
      "--port",
      "0",
      "--database-url",
      url,
      "--token-auth-file",
      auth.path,
      "--owners",
      clusterUsers.user,
      "--workspaces",
      String(options.workspaces),
      "--seed",
      String(options.seed),
      "--dial-latency-ms",
      String(options.dialLatencyMs),
      // the cluster rebuilds through the fleet's API, only while it measures
      "--rebuild-rate",
      "0"
    ])
    const replicas = yield* Effect.forEach(
      Array.from({ length: options.replicas }, (_, i) => i),
      (i) =>
        startChild(`replica ${i + 1}`, [
          "serve",
          "--port",
          "0",
          "--database-url",
          url,
          "--token-auth-file",
          auth.path,
          "--strategy",
          wiring[strategy].chats,
          "--shared-connections",
          wiring[strategy].sharedConnections ? "on" : "off",
          "--validation-delay-ms",
          String(options.validationDelayMs),
          "--delay-mode",
          options.delayMode,
          "--notices",
          options.notices ? "on" : "off"
        ]),
      { concurrency: "unbounded" }
    )
    const urls = replicas.map((replica) => String(replica.info["serving"]))
    const fleetUrl = String(fleet.info["fleet"])
    // safe: the fleet child is this same program, and its first line lists its workspaces' ids and owners
    const listed = fleet.info["workspaces"] as ReadonlyArray<string>
    const owners = (fleet.info["owners"] ?? {}) as Readonly<Record<string, string>>
    // a fleet takes back the workspaces a database holds: only the cluster's own are its to use
    const workspaces = listed.filter((id) => owners[id] === clusterUsers.user)
    if (workspaces.length === 0) {
      return yield* Effect.fail(
        new Error(
          `the fleet runs no workspace of the user ${clusterUsers.user} (${listed.length} of other users, taken back ` +
            "from the database): run the cluster on a database of its own"
        )
      )
    }
    const random = rng(options.seed)
    // the rebuilds' own stream: the turns' order is the same with or without them
    const rebuildRandom = rng(options.seed + 1)

    // warm-up (not measured): create every chat, and turn it once on each
    // replica. Chat c is bound (its lazy bind, a lookup) on replica
    // floor(c / workspaces) mod K, so with chats >= K x workspaces every
    // replica has looked up every workspace: a replica's view judges only
    // builds it has seen, and one that never saw a workspace would take the
    // lazy path at that workspace's first rebuild.
    const chats = yield* Effect.forEach(
      Array.from({ length: options.chats }, (_, i) => i),
      (i) =>
        Effect.gen(function*() {
          const first = Math.floor(i / workspaces.length) % urls.length
          const created = yield* request(userToken, `${urls[first]}/chats`, {
            workspace_id: workspaces[i % workspaces.length]
          })
          const chatId = String(created.body["chat_id"])
          // the first turn binds the chat; one more on every other replica
          // warms its address cache, so the measured turns are steady-state turns
          for (const r of urls.keys()) {
            yield* request(userToken, `${urls[(first + r) % urls.length]}/chats/${chatId}/turns`, {
              message: "warm-up"
            })
          }
          return chatId
        }),
      { concurrency: options.concurrency }
    )

    // the measured turns: every (chat, turn) pair in a seeded order, at most
    // `concurrency` at a time, turn t of chat c on replica (c + t) mod K, so
    // one chat's turns go to every replica, some at the same moment
    const plan = (): ReadonlyArray<Task> =>
      chats.flatMap((chatId, c) =>
        Array.from({ length: options.turns }, (_, t) => ({
          chatId,
          workspace: workspaces[c % workspaces.length]!,
          replica: (c + t) % urls.length,
          key: random()
        }))
      ).sort((a, b) => a.key - b.key)
    const context = { options, statements, urls, fleetUrl, workspaces, tokens: auth.tokens, strategy }
    // first with no rebuild: every turn a steady-state turn
    const steady = yield* measure(context, "steady", plan(), [])
    const withRebuilds = options.rebuilds > 0
      ? yield* measure(
        context,
        "rebuilds",
        plan(),
        planRebuilds(options.rebuilds, options.chats * options.turns, workspaces, rebuildRandom)
      )
      : null
    const result: Omit<StrategyFigures, "ranAs"> = { strategy, ...steady, withRebuilds }
    return result
  }))

export const run = (options: ClusterOptions): Effect.Effect<ClusterReport, Error, SqlClient.SqlClient> =>
  Effect.scoped(Effect.gen(function*() {
    const measured = yield* statementsAvailable
    const statements = measured.available
    // the children's token file: fresh tokens, in a private temp dir removed when the run ends
    const auth = yield* Auth.writeTokenFile([
      { name: clusterUsers.user },
      { name: clusterUsers.operator, groups: [Auth.operators] }
    ])
    // the strategy that runs first meets a colder database and colder processes: which one is the caller's
    // choice, and fair comparisons alternate it, as bench:report alternates the report's
    const order = orderFrom(options.first)
    const ran: Array<StrategyFigures> = []
    for (const [i, strategy] of order.entries()) {
      ran.push({ ...(yield* runStrategy(options, strategy, statements, auth)), ranAs: i + 1 })
    }
    // reported in the one order of `strategies`, whichever ran first
    const figures = strategies.map((strategy) => ran.find((s) => s.strategy === strategy)!)
    return {
      replicas: options.replicas,
      chats: options.chats,
      turnsPerChat: options.turns,
      concurrency: options.concurrency,
      workspaces: options.workspaces,
      seed: options.seed,
      validationDelayMs: options.validationDelayMs,
      delayMode: options.delayMode,
      notices: options.notices,
      rebuilds: options.rebuilds,
      first: options.first,
      dialLatencyMs: options.dialLatencyMs,
      retiredAfterMs,
      statements: measured.available
        ? "measured at the database with pg_stat_statements (every statement of the measured turns, all processes)"
        : `not measured: ${measured.reason}`,
      strategies: figures
    }
  }))

const renderPhase = (lines: Array<string>, title: string, s: PhaseFigures) => {
  lines.push(
    `${title}: ${s.turns} turns (${s.ok} ok, ${s.databaseUnavailable} database_unavailable, ${s.failed} failed) ` +
      `in ${s.seconds} s: ${s.turnsPerSecond} turns/s, turn p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms`
  )
  if (s.phase === "rebuilds") {
    lines.push(
      `  rebuilds while measured: ${s.rebuilds}${s.rebuildsFailed > 0 ? ` (${s.rebuildsFailed} refused)` : ""}; ` +
        `switched_by_notice turns: ${s.switchedByNotice}`
    )
  }
  const outcomes = Object.entries(s.outcomes).sort(([, a], [, b]) => b - a)
  lines.push(`  outcomes: ${outcomes.map(([outcome, n]) => `${outcome} ${n}`).join(", ") || "none"}`)
  const failures = Object.entries(s.failures).sort(([, a], [, b]) => b - a)
  if (failures.length > 0) lines.push(`  failed turns: ${failures.map(([why, n]) => `${why}: ${n}`).join(", ")}`)
  lines.push(
    `  lookups per turn: ${s.replicaLookupsPerTurn} by the replicas' counters (${s.replicaQueriesPerTurn} queries), ` +
      `${s.lookupsPerTurn ?? "not measured"} at the database`
  )
  lines.push(
    s.dialsPerTurn === null
      ? `  connections not shared: a dial per turn (the replicas count only shared dials)`
      : `  shared connections: ${s.dialsPerTurn} dials and ${s.borrowsPerTurn} borrows per turn, ${s.drops} dropped ` +
        `(the replicas' counters)`
  )
  if (s.phase === "rebuilds") {
    lines.push(
      `  turns that met a retired agent after its notice-prompted read: ${s.retiredAgentTurns}; connections ` +
        `retired agents still held ${retiredAfterMs} ms after the phase: ${s.retiredSocketsOpen}`
    )
  }
  if (s.statementsPerTurn !== null) {
    lines.push(`  statements per turn: ${s.statementsPerTurn}`)
    for (const row of s.byStatement) lines.push(`    ${row.perTurn.toFixed(3)}  ${row.statement}`)
  }
  for (const r of s.replicas) {
    lines.push(
      `  replica ${r.replica}: ${r.turns} turns, ${r.turnsPerSecond} turns/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, ` +
        `${r.ok} ok, ${r.databaseUnavailable} database_unavailable, ${r.failed} failed`
    )
  }
}

const ratio = (a: number, b: number) => b === 0 ? "n/a" : `${(a / b).toFixed(2)}×`

/**
 * What a cluster run shows, in two or three sentences with the figures: its
 * report's first lines.
 */
export const conclusions = (report: ClusterReport): ReadonlyArray<string> => {
  const lazy = report.strategies.find((s) => s.strategy === "lazydial")
  const noReuse = report.strategies.find((s) => s.strategy === "lazydial_no_reuse")
  const latest = report.strategies.find((s) => s.strategy === "latest")
  if (lazy === undefined || noReuse === undefined || latest === undefined) return []
  const atDatabase = (s: PhaseFigures) =>
    s.statementsPerTurn === null
      ? `${s.replicaLookupsPerTurn} lookups per turn (the replicas' counters; statements not measured)`
      : `${s.statementsPerTurn} SQL statements and ${s.lookupsPerTurn} lookups per turn at the database`
  const lines = [
    `Steady turns on ${report.replicas} replica(s): lazydial made ${atDatabase(lazy)}, latest ${atDatabase(latest)}; ` +
    `${lazy.turnsPerSecond} against ${latest.turnsPerSecond} turns/s.`,
    `Turn p50 ${lazy.p50Ms} ms (lazydial) against ${latest.p50Ms} ms (latest), ${ratio(lazy.p50Ms, latest.p50Ms)}; ` +
    `p99 ${lazy.p99Ms} ms against ${latest.p99Ms} ms, ${ratio(lazy.p99Ms, latest.p99Ms)}. A p99 of ${lazy.turns} ` +
    `turns is their ${ordinal(p99Rank(lazy.turns))} slowest: judge it over several runs, ` +
    `alternating --first (${report.first} ran first here).`,
    `At a ${report.dialLatencyMs} ms handshake, shared connections made ${lazy.dialsPerTurn ?? "n/a"} dials per ` +
    `steady turn (${lazy.borrowsPerTurn ?? "n/a"} borrows per turn, the replicas' counters): turn p50 ` +
    `${lazy.p50Ms} ms against ${noReuse.p50Ms} ms with a dial per turn (lazydial_no_reuse), ` +
    `${ratio(lazy.p50Ms, noReuse.p50Ms)}.`
  ]
  const rebuilt = lazy.withRebuilds
  if (rebuilt !== null && latest.withRebuilds !== null) {
    lines.push(
      `With ${report.rebuilds} rebuilds: lazydial switched ${rebuilt.switchedByNotice} turns by notice, made ` +
        `${atDatabase(rebuilt)} and failed ${rebuilt.failed} turns (latest ${latest.withRebuilds.failed}); p99 ` +
        `${rebuilt.p99Ms} ms against ${latest.withRebuilds.p99Ms} ms. Turns that met a retired agent more than ` +
        `${report.retiredAfterMs} ms after its rebuild was answered: ${rebuilt.retiredAgentTurns} with shared ` +
        `connections, ${noReuse.withRebuilds?.retiredAgentTurns ?? "n/a"} without.`
    )
  }
  return lines
}

export const render = (report: ClusterReport): string => {
  const lines: Array<string> = [...conclusions(report), ""]
  lines.push(
    `cluster: ${report.replicas} replica(s), ${report.chats} chats x ${report.turnsPerChat} turns, ` +
      `concurrency ${report.concurrency}, ${report.workspaces} workspaces, seed ${report.seed}, ` +
      `handshake latency ${report.dialLatencyMs} ms, ran in the order ${orderFrom(report.first).join(", ")}`
  )
  lines.push(
    `replicas: validation delay ${report.validationDelayMs} ms (${report.delayMode}), notices ${
      report.notices ? "on" : "off"
    }; rebuilds ${report.rebuilds > 0 ? `${report.rebuilds} in the second phase` : "none"}`
  )
  lines.push(`SQL statements: ${report.statements}`)
  for (const s of report.strategies) {
    lines.push("")
    renderPhase(lines, `${s.strategy}, steady (no rebuilds)`, s)
    if (s.withRebuilds !== null) renderPhase(lines, `${s.strategy}, with rebuilds`, s.withRebuilds)
  }
  return lines.join("\n")
}
