/**
 * Real `serve` and `fleet` processes for the process tests (*.ci.test.ts):
 * started as docs/deployment.md runs them, `node dist/bin.js` straight from
 * the build (scripts/test-replicas.sh builds it first), their address read
 * from the first JSON line of stdout, stopped (and awaited) by `stopAll`.
 *
 * Real time is on purpose here, and only here: these tests drive real child
 * processes and a real PostgreSQL (a 3 s outage, turns spread over it), which
 * no TestClock reaches. They run in `.ci/run`, not in `pnpm test`, and every
 * wait is bounded (60 s for an address, 30 s per psql call, 90 s per shell).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as Probe from "../src/Probe.js"

/** The service's entry point as deployed: compiled, and run by node with no loader. */
export const bin = fileURLToPath(new URL("../dist/bin.js", import.meta.url))
if (!fs.existsSync(bin)) {
  throw new Error(`${bin} is missing: build it first (pnpm --filter @lazydial/service build; test-replicas.sh does)`)
}

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
    const child = spawn(process.execPath, [bin, ...args], {
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
  spawnSync(process.execPath, [bin, ...args], {
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

/** `fleet --owners` with these users. */
export const ownersArgs = (owners: ReadonlyArray<string>): Array<string> => ["--owners", owners.join(",")]

// A process started with neither a token file nor --no-auth refuses to start: the
// tests that are not about authentication serve without it.
const withAuth = (extra: ReadonlyArray<string>) =>
  !extra.includes("--token-auth-file") && !extra.includes("--no-auth")
    ? [...extra, "--no-auth"]
    : extra

/** A `serve` replica on `url` (the test database unless given). */
export const serveOn = (url: string, ...extra: Array<string>) =>
  start(["serve", "--port", "0", "--database-url", url, ...withAuth(extra)])

/** A `fleet` of `workspaces` running workspaces on `url`. */
export const fleetOn = (url: string, workspaces: number, ...extra: Array<string>) =>
  start(["fleet", "--port", "0", "--database-url", url, "--workspaces", String(workspaces), ...withAuth(extra)])

export const serve = (...extra: Array<string>) => serveOn(databaseUrl, ...extra)

export const fleet = (workspaces: number, ...extra: Array<string>) => fleetOn(databaseUrl, workspaces, ...extra)

/** A user of a token file: its bearer token, name and groups. */
export interface User {
  readonly token: string
  readonly name: string
  readonly groups?: ReadonlyArray<string>
}

/**
 * Writes a token file in the Kubernetes `--token-auth-file` format (a fresh
 * random token per user) and answers its path and users, by name.
 */
// Token directories are removed when the test process ends, whatever ended it.
const tokenDirs: Array<string> = []
process.once("exit", () => {
  for (const dir of tokenDirs) fs.rmSync(dir, { recursive: true, force: true })
})

export const tokenFile = (
  users: ReadonlyArray<{ readonly name: string; readonly groups?: ReadonlyArray<string> }>
): { readonly path: string; readonly users: Record<string, User> } => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "lazydial-tokens-"))
  tokenDirs.push(dir)
  const file = path.join(dir, "tokens.csv")
  const made = users.map((user): User => ({ ...user, token: randomBytes(24).toString("hex") }))
  fs.writeFileSync(
    file,
    made.map((user, i) =>
      [user.token, user.name, String(1000 + i), ...(user.groups ? [`"${user.groups.join(",")}"`] : [])].join(",")
    ).join("\n") + "\n",
    { mode: 0o600 }
  )
  return { path: file, users: Object.fromEntries(made.map((user) => [user.name, user])) }
}

/** The arguments that give a process a token file. */
export const tokenArgs = (file: string): Array<string> => ["--token-auth-file", file]

const headersOf = (token: string | undefined, extra: Record<string, string> = {}) =>
  token === undefined ? extra : { ...extra, authorization: `Bearer ${token}` }

const parsed = (text: string) => {
  if (text === "") return undefined
  try {
    return JSON.parse(text) as Record<string, any>
  } catch {
    return { text } as Record<string, any>
  }
}

export const post = async (url: string, body: unknown, token?: string) => {
  const response = await fetch(url, {
    method: "POST",
    headers: headersOf(token, { "content-type": "application/json" }),
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000)
  })
  const text = await response.text()
  return { status: response.status, body: parsed(text) }
}

export const get = async (url: string, token?: string) => {
  const response = await fetch(url, { headers: headersOf(token), signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  return { status: response.status, body: parsed(text) }
}

/**
 * A database of its own on the test server, created afresh (owned by `owner`
 * when given): for a test whose fleet must not take back the workspaces (and
 * owners) of another's.
 */
export const freshDatabase = (name: string, owner?: string): string => {
  psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  psql(`CREATE DATABASE ${name}${owner === undefined ? "" : ` OWNER ${owner}`}`)
  const url = new URL(databaseUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/** The URL of `database` (the test database unless given) as `role`, which logs in without a password (trust). */
export const urlAs = (role: string, database = databaseUrl): string => {
  const url = new URL(database)
  url.username = role
  url.password = ""
  return url.toString()
}

/** The test server's processes: the postmaster and its children (backends and workers), by pid. */
export const postgresPids = (): Array<number> => {
  const dataDir = psql("SHOW data_directory")
  const postmaster = Number(fs.readFileSync(path.join(dataDir, "postmaster.pid"), "utf8").split("\n")[0])
  const children = spawnSync("ps", ["-o", "pid=", "--ppid", String(postmaster)], { encoding: "utf8", timeout: 10_000 })
    .stdout.split("\n").map((line) => Number(line.trim())).filter((pid) => pid > 0)
  return [postmaster, ...children]
}

/**
 * Hangs the test server (SIGSTOP to each of its processes, by pid) and
 * answers how to resume it (SIGCONT to the same ones). Resume in a `finally`.
 */
export const hangPostgres = (): { readonly resume: () => void } => {
  const pids = postgresPids()
  for (const pid of pids) process.kill(pid, "SIGSTOP")
  return { resume: () => pids.forEach((pid) => process.kill(pid, "SIGCONT")) }
}

/**
 * A psql session that stays open (for a lock held across a test's steps):
 * `send` writes statements to it; `close` ends it, and with it its transaction.
 */
export const psqlSession = (url = databaseUrl) => {
  const child = spawn(process.env["LAZYDIAL_TEST_PSQL"] ?? "psql", [url, "-XAtq", "-v", "ON_ERROR_STOP=1"], {
    stdio: ["pipe", "pipe", "pipe"]
  })
  let out = ""
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString()
  })
  child.stderr.on("data", (chunk: Buffer) => {
    out += chunk.toString()
  })
  const exited = new Promise<void>((done) => child.on("exit", () => done()))
  return {
    send: (sql: string) => void child.stdin.write(`${sql}\n`),
    output: () => out,
    close: async () => {
      child.stdin.end()
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000)
      await exited
      clearTimeout(killer)
    }
  }
}

/** psql against the test database (or another one); answers the rows, tab-separated. */
export const psql = (sql: string, url = databaseUrl): string => {
  const result = psqlResult(sql, url)
  if (result.status !== 0) throw new Error(`psql failed: ${result.stderr}`)
  return result.stdout.trim()
}

/** psql that may fail: its exit status, and what it printed. */
export const psqlResult = (sql: string, url = databaseUrl) => {
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
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

export const shell = (command: string) => {
  const result = spawnSync("sh", ["-c", command], { encoding: "utf8", timeout: 90_000 })
  if (result.status !== 0) throw new Error(`${command} failed: ${result.stderr}`)
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms))

/** A process's lookup counters, read from its `GET /metrics` (named by `Probe.lookupMetrics`). */
export const lookupCounters = async (proc: Proc) => {
  const response = await fetch(`${proc.url}/metrics`, { signal: AbortSignal.timeout(10_000) })
  const text = await response.text()
  return Object.fromEntries(
    Object.entries(Probe.lookupMetrics).map(([key, name]) => [key, Probe.counterTotal(text, name)])
  ) as Record<keyof typeof Probe.lookupMetrics, number> // safe: one entry per key of lookupMetrics
}

/**
 * Latest-agent lookups counted at the database: calls of the lookup
 * statements in `pg_stat_statements`, which test-replicas.sh preloads.
 */
export const databaseLookups = (): number =>
  psql(`SELECT regexp_replace(query, '\\s+', ' ', 'g') || E'\\t' || calls FROM pg_stat_statements`)
    .split("\n")
    .map((line) => line.split("\t"))
    .filter(([query]) => query !== undefined && Probe.isLookupStatement(query))
    .reduce((n, [, calls]) => n + Number(calls), 0)

const counterOf = (name: string) => async (proc: Proc) => {
  const response = await fetch(`${proc.url}/metrics`, { signal: AbortSignal.timeout(10_000) })
  return Probe.counterTotal(await response.text(), name)
}

/** Rebuild notices a process has received (binding's counter, on its `GET /metrics`). */
export const noticesReceived = counterOf("lazydial_notices_received_total")

/**
 * Reads of the directory that notices prompted: a notice is only a hint, and
 * a replica learns of a rebuild when such a read answers.
 */
export const noticeReads = counterOf("lazydial_notices_reads_total")

/**
 * Kept connections a replica dropped before their idle time (core's
 * `SharedConnections.metrics.drops`, on its `GET /metrics`).
 */
export const sharedDrops = counterOf("lazydial_shared_connection_drops_total")

/** Polls `check` every 20 ms until it holds, for at most `ms`; answers whether it held. */
export const eventually = async (check: () => Promise<boolean>, ms: number) => {
  const until = performance.now() + ms
  for (;;) {
    if (await check()) return true
    if (performance.now() > until) return false
    await sleep(20)
  }
}
