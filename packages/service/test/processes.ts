/**
 * Real `serve` and `fleet` processes for the process tests (*.ci.test.ts):
 * started with `node --import tsx src/bin.ts`, their address read from the
 * first JSON line of stdout, stopped (and awaited) by `stopAll`.
 *
 * Real time is on purpose here, and only here: these tests drive real child
 * processes and a real PostgreSQL (a 3 s outage, turns spread over it), which
 * no TestClock reaches. They run in `.ci/run`, not in `pnpm test`, and every
 * wait is bounded (60 s for an address, 30 s per psql call, 90 s per shell).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as Cluster from "../src/Cluster.js"

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))

export const databaseUrl = process.env["LAZYDIAL_TEST_DATABASE_URL"] ?? ""

export interface Proc {
  readonly child: ChildProcess
  readonly url: string
  readonly info: Record<string, unknown>
  readonly stderr: () => string
  readonly exited: Promise<number | null>
}

const running = new Set<ChildProcess>()

export const start = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Proc> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", bin, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    running.add(child)
    let out = ""
    let err = ""
    const exited = new Promise<number | null>((done) =>
      child.on("exit", (code) => {
        running.delete(child)
        done(code)
      })
    )
    const timer = setTimeout(() => reject(new Error(`no address within 60 s; stderr:\n${err}`)), 60_000)
    child.stderr!.on("data", (chunk: Buffer) => {
      err += chunk.toString()
    })
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString()
      const line = out.split("\n")[0]!
      if (!out.includes("\n")) return
      clearTimeout(timer)
      const info = JSON.parse(line) as Record<string, unknown>
      resolve({ child, url: String(info["serving"] ?? info["fleet"]), info, stderr: () => err, exited })
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code} before serving; stderr:\n${err}`))
    })
  })

/** Runs the CLI to its end: for start-up errors. */
export const runToEnd = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ["--import", "tsx", bin, ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 60_000
  })

export const stopAll = async () => {
  const all = [...running]
  for (const child of all) child.kill("SIGKILL")
  await Promise.all(
    all.map((child) => new Promise((done) => child.exitCode !== null ? done(null) : child.on("exit", done)))
  )
}

export const serve = (...extra: Array<string>) =>
  start(["serve", "--port", "0", "--database-url", databaseUrl, ...extra])

export const fleet = (workspaces: number, ...extra: Array<string>) =>
  start(["fleet", "--port", "0", "--database-url", databaseUrl, "--workspaces", String(workspaces), ...extra])

export const post = async (url: string, body: unknown) => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000)
  })
  const text = await response.text()
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) as Record<string, any> }
}

export const get = async (url: string) => {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  return { status: response.status, body: text === "" ? undefined : JSON.parse(text) as Record<string, any> }
}

/** psql against the test database (or another one); answers the rows, tab-separated. */
export const psql = (sql: string, url = databaseUrl): string => {
  const result = spawnSync(process.env["LAZYDIAL_TEST_PSQL"] ?? "psql", [
    url,
    "-XAtq",
    "-v",
    "ON_ERROR_STOP=1",
    "-c",
    sql
  ], {
    encoding: "utf8",
    timeout: 30_000
  })
  if (result.status !== 0) throw new Error(`psql failed: ${result.stderr}`)
  return result.stdout.trim()
}

export const shell = (command: string) => {
  const result = spawnSync("sh", ["-c", command], { encoding: "utf8", timeout: 90_000 })
  if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr}`)
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms))

/** A process's lookup counters, read from its `GET /metrics` (named by `Cluster.lookupMetrics`). */
export const lookupCounters = async (proc: Proc) => {
  const response = await fetch(`${proc.url}/metrics`, { signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  return Object.fromEntries(
    Object.entries(Cluster.lookupMetrics).map(([key, name]) => [key, Cluster.counterTotal(text, name)])
  ) as Record<keyof typeof Cluster.lookupMetrics, number> // safe: one entry per key of lookupMetrics
}

/**
 * Latest-agent lookups counted at the database: calls of the lookup
 * statements in `pg_stat_statements`, which test-replicas.sh preloads.
 */
export const databaseLookups = (): number =>
  psql(`SELECT regexp_replace(query, '\\s+', ' ', 'g') || E'\\t' || calls FROM pg_stat_statements`)
    .split("\n")
    .map((line) => line.split("\t"))
    .filter(([query]) => query !== undefined && Cluster.isLookupStatement(query))
    .reduce((n, [, calls]) => n + Number(calls), 0)

/** Rebuild notices a process has received (binding's counter, on its `GET /metrics`). */
export const noticesReceived = async (proc: Proc) => {
  const response = await fetch(`${proc.url}/metrics`, { signal: AbortSignal.timeout(10_000) })
  return Cluster.counterTotal(await response.text(), "lazydial_notices_received_total")
}

/** Polls `check` every 20 ms until it holds, for at most `ms`; answers whether it held. */
export const eventually = async (check: () => Promise<boolean>, ms: number) => {
  const until = performance.now() + ms
  for (;;) {
    if (await check()) return true
    if (performance.now() > until) return false
    await sleep(20)
  }
}
