import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import type { ClusterOptions, ClusterReport, ReplicaFigures, StrategyFigures } from "../Cluster.js"
import { rng } from "./random.js"

interface Child {
  readonly name: string
  readonly process: ChildProcess
  readonly info: Record<string, unknown>
}

// The children run this same program (same loader flags), so a `tsx` run
// starts `tsx` children and a built run starts built ones.
const startChild = (name: string, args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.async<Child, Error>((resume) => {
      const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
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
      Effect.async<void>((resume) => {
        if (child.process.exitCode !== null || child.process.signalCode !== null) return resume(Effect.void)
        const force = setTimeout(() => child.process.kill("SIGKILL"), 5000)
        child.process.once("exit", () => {
          clearTimeout(force)
          resume(Effect.void)
        })
        child.process.kill("SIGTERM")
      })
  )

const request = (url: string, body?: unknown) =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, {
        method: body === undefined ? "GET" : "POST",
        headers: { "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)])
      })
      const text = await response.text()
      return { status: response.status, body: (text === "" ? {} : JSON.parse(text)) as Record<string, unknown> }
    },
    catch: (cause) => new Error(`${url}: ${String(cause)}`)
  })

export const counterTotal = (metricsText: string, name: string): number => {
  let total = 0
  for (const line of metricsText.split("\n")) {
    // `name 3` or `name{labels} 3`; not `name_bucket`, nor HELP/TYPE comments
    if (line.startsWith(name) && (line[name.length] === " " || line[name.length] === "{")) {
      total += Number(line.slice(line.lastIndexOf(" ") + 1))
    }
  }
  return total
}

export const isLookupStatement = (query: string): boolean =>
  /^\s*SELECT\b/i.test(query) && /\blazydial_workspace_builds\b/.test(query)

const quantile = (sorted: ReadonlyArray<number>, q: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!

const round = (n: number) => Math.round(n * 1000) / 1000

const statementsAvailable = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<
    { n: number }
  >`SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'pg_stat_statements'`
  if ((rows[0]?.n ?? 0) === 0) {
    // try to create it: works when the server preloads the library
    const created = yield* Effect.either(sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)
    if (created._tag === "Left") return false
  }
  return yield* Effect.isSuccess(sql`SELECT 1 FROM pg_stat_statements LIMIT 1`)
}).pipe(Effect.orElseSucceed(() => false))

const runStrategy = (options: ClusterOptions, strategy: "lazydial" | "latest", statements: boolean) =>
  Effect.scoped(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const url = options.databaseUrl
    const fleet = yield* startChild("fleet", [
      "fleet",
      "--port",
      "0",
      "--database-url",
      url,
      "--workspaces",
      String(options.workspaces),
      "--seed",
      String(options.seed),
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
          "--strategy",
          strategy,
          "--validation-delay-ms",
          String(options.validationDelayMs)
        ]),
      { concurrency: "unbounded" }
    )
    const urls = replicas.map((replica) => String(replica.info["serving"]))
    const workspaces = fleet.info["workspaces"] as ReadonlyArray<string>
    const random = rng(options.seed)

    // warm-up (not measured): create every chat, and turn it once on each replica
    const chats = yield* Effect.forEach(
      Array.from({ length: options.chats }, (_, i) => i),
      (i) =>
        Effect.gen(function*() {
          const created = yield* request(`${urls[i % urls.length]}/chats`, {
            workspace_id: workspaces[i % workspaces.length]
          })
          const chatId = String(created.body["chat_id"])
          // the first turn binds the chat; one more on every replica warms
          // its address cache, so the measured turns are steady-state turns
          for (const url of urls) yield* request(`${url}/chats/${chatId}/turns`, { message: "warm-up" })
          return chatId
        }),
      { concurrency: options.concurrency }
    )

    // the measured turns: every (chat, turn) pair in a seeded order, at most
    // `concurrency` at a time, turn t of chat c on replica (c + t) mod K, so
    // one chat's turns go to every replica, some at the same moment
    const tasks = chats.flatMap((chatId, c) =>
      Array.from({ length: options.turns }, (_, t) => ({ chatId, replica: (c + t) % urls.length, key: random() }))
    ).sort((a, b) => a.key - b.key)
    if (statements) yield* sql`SELECT pg_stat_statements_reset()`
    const perReplica = urls.map(() => ({ ok: 0, failed: 0, databaseUnavailable: 0, latencies: [] as Array<number> }))
    const began = performance.now()
    yield* Effect.forEach(tasks, (task) =>
      Effect.gen(function*() {
        const start = performance.now()
        const result = yield* Effect.either(
          request(`${urls[task.replica]}/chats/${task.chatId}/turns`, { message: "turn" })
        )
        const figures = perReplica[task.replica]!
        figures.latencies.push(performance.now() - start)
        if (result._tag === "Right" && result.right.status === 200) figures.ok++
        else if (result._tag === "Right" && result.right.body["reason"] === "database_unavailable") {
          figures.databaseUnavailable++
        } else figures.failed++
      }), { concurrency: options.concurrency, discard: true })
    const seconds = (performance.now() - began) / 1000
    const turns = tasks.length

    const byStatement = statements
      ? (yield* sql<{ query: string; calls: number }>`SELECT query, calls::int AS calls FROM pg_stat_statements
WHERE query NOT ILIKE '%pg_stat_statements%' AND calls > 0 ORDER BY calls DESC LIMIT 12`).map((row) => ({
        statement: row.query.replace(/\s+/g, " ").slice(0, 120),
        perTurn: round(row.calls / turns)
      }))
      : []
    const lookupsPerTurn = statements
      ? round(
        byStatement.filter((row) => /lazydial_workspace_builds/.test(row.statement)).reduce((n, r) => n + r.perTurn, 0)
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
    const result: StrategyFigures = {
      strategy,
      turns,
      ok: replicaFigures.reduce((n, r) => n + r.ok, 0),
      databaseUnavailable: replicaFigures.reduce((n, r) => n + r.databaseUnavailable, 0),
      failed: replicaFigures.reduce((n, r) => n + r.failed, 0),
      seconds: round(seconds),
      turnsPerSecond: round(turns / seconds),
      p50Ms: round(quantile(all, 0.5)),
      p99Ms: round(quantile(all, 0.99)),
      statementsPerTurn: statements ? round(byStatement.reduce((n, r) => n + r.perTurn, 0)) : null,
      lookupsPerTurn,
      byStatement,
      replicas: replicaFigures
    }
    return result
  }))

export const run = (options: ClusterOptions): Effect.Effect<ClusterReport, Error, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const statements = yield* statementsAvailable
    const strategies: Array<StrategyFigures> = []
    for (const strategy of ["lazydial", "latest"] as const) {
      strategies.push(yield* runStrategy(options, strategy, statements))
    }
    return {
      replicas: options.replicas,
      chats: options.chats,
      turnsPerChat: options.turns,
      concurrency: options.concurrency,
      workspaces: options.workspaces,
      seed: options.seed,
      statements: statements
        ? "measured at the database with pg_stat_statements (every statement of the measured turns, all replicas)"
        : "not measured: pg_stat_statements is not available (add it to shared_preload_libraries)",
      strategies
    }
  })

export const render = (report: ClusterReport): string => {
  const lines: Array<string> = []
  lines.push(
    `cluster: ${report.replicas} replica(s), ${report.chats} chats x ${report.turnsPerChat} turns, ` +
      `concurrency ${report.concurrency}, ${report.workspaces} workspaces, seed ${report.seed}`
  )
  lines.push(`SQL statements: ${report.statements}`)
  for (const s of report.strategies) {
    lines.push("")
    lines.push(
      `${s.strategy}: ${s.turns} turns (${s.ok} ok, ${s.databaseUnavailable} database_unavailable, ${s.failed} failed) ` +
        `in ${s.seconds} s: ${s.turnsPerSecond} turns/s, p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms`
    )
    if (s.statementsPerTurn !== null) {
      lines.push(`  statements per turn: ${s.statementsPerTurn} (lookups per turn: ${s.lookupsPerTurn})`)
      for (const row of s.byStatement) lines.push(`    ${row.perTurn.toFixed(3)}  ${row.statement}`)
    }
    for (const r of s.replicas) {
      lines.push(
        `  replica ${r.replica}: ${r.turns} turns, ${r.turnsPerSecond} turns/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, ` +
          `${r.ok} ok, ${r.databaseUnavailable} database_unavailable, ${r.failed} failed`
      )
    }
  }
  return lines.join("\n")
}
