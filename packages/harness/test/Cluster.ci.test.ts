/**
 * `cluster` on a real PostgreSQL (run by the service's scripts/test-replicas.sh,
 * with pg_stat_statements preloaded), as an ordinary role: no superuser, so
 * no `pg_stat_statements_reset`. It measures statements where it may read
 * them, says why not (the database's own words) where it may not, and goes
 * on; its `--json` is the one document on stdout; `--first latest` runs latest
 * first, the others after it in report order. Dials are the replicas' own
 * counts; with rebuilds, no turn of the shared connections meets a retired
 * agent after its notice's read. Real processes and real time, every wait bounded.
 */
import { spawn, spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { beforeAll, describe, expect, it } from "vitest"
import type * as Cluster from "../src/Cluster.js"

const databaseUrl = process.env["LAZYDIAL_TEST_DATABASE_URL"] ?? ""
const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))

const psql = (sql: string, url = databaseUrl) => {
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

const at = (database: string, role?: string) => {
  const url = new URL(databaseUrl)
  url.pathname = `/${database}`
  if (role !== undefined) {
    url.username = role
    url.password = ""
  }
  return url.toString()
}

const role = "lazydial_cluster_role"

/** A fresh database that the ordinary role owns; `prepare` runs in it as the superuser. */
const databaseOfTheRole = (name: string, prepare: string) => {
  psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  psql(`CREATE DATABASE ${name} OWNER ${role}`)
  psql(prepare, at(name))
  return at(name, role)
}

const cluster = (url: string, extra: ReadonlyArray<string>) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const args = ["cluster", "--database-url", url, "--replicas", "2", "--workspaces", "2", "--chats", "8"]
    const child = spawn(
      process.execPath,
      ["--import", "tsx", bin, ...args, "--turns", "3", "--concurrency", "4", "--json", ...extra],
      { stdio: ["ignore", "pipe", "pipe"], timeout: 200_000, killSignal: "SIGKILL" }
    )
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.on("exit", (status, signal) =>
      signal === "SIGKILL"
        ? reject(new Error(`cluster: no exit within 200 s; stderr:\n${stderr.slice(-3000)}`))
        : resolve({ status, stdout, stderr }))
  })

describe.skipIf(databaseUrl === "")("cluster as an ordinary role (needs LAZYDIAL_TEST_DATABASE_URL)", () => {
  beforeAll(() => {
    psql(`DO $$ BEGIN CREATE ROLE ${role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
    // an ordinary role: no superuser, so it may not reset pg_stat_statements
    expect(psql(`SELECT rolsuper FROM pg_roles WHERE rolname = '${role}'`)).toBe("f")
  })

  it(
    "measures statements it may read, with no reset; --json is one document; --first latest runs latest first",
    async () => {
      const url = databaseOfTheRole("lazydial_cluster_measured", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
      expect(psql(`SELECT has_function_privilege('${role}', 'pg_stat_statements_reset(oid,oid,bigint)', 'EXECUTE')`))
        .toBe("f")
      const result = await cluster(url, ["--first", "latest", "--rebuilds", "4", "--dial-latency-ms", "20"])
      expect(result.status, result.stderr.slice(-2000)).toBe(0)
      const report = JSON.parse(result.stdout) as Cluster.ClusterReport
      expect(report.statements).toMatch(/^measured at the database with pg_stat_statements/)
      expect(report.first).toBe("latest")
      expect(report.dialLatencyMs).toBe(20)
      expect(report.strategies.map((s) => [s.strategy, s.ranAs])).toEqual([
        ["lazydial", 2],
        ["lazydial_no_reuse", 3],
        ["latest", 1]
      ])
      for (const strategy of report.strategies) {
        expect(strategy.statementsPerTurn).not.toBeNull()
        expect(strategy.statementsPerTurn!).toBeGreaterThan(0)
        expect(strategy.failed).toBe(0)
        expect(strategy.withRebuilds!.rebuilds).toBe(4)
      }
      // lazydial's steady turns read the chat's row and look nothing up; latest looks up on every turn (lookups that
      // meet in a batch share one statement at the database)
      const [lazy, noReuse, latest] = report.strategies
      expect([lazy!.lookupsPerTurn, lazy!.replicaLookupsPerTurn]).toEqual([0, 0])
      expect([noReuse!.lookupsPerTurn, noReuse!.replicaLookupsPerTurn]).toEqual([0, 0])
      expect(latest!.replicaLookupsPerTurn).toBe(1)
      expect(latest!.lookupsPerTurn!).toBeGreaterThan(0)
      // the warm-up opened every replica's connection to every agent: the steady turns borrow them, dialing none
      expect([lazy!.dialsPerTurn, lazy!.borrowsPerTurn, lazy!.drops]).toEqual([0, 1, 0])
      // a rebuild drops the retired agent's connections, and the next turn of its chats dials the new one
      expect(lazy!.withRebuilds!.drops).toBeGreaterThan(0)
      expect(lazy!.withRebuilds!.dialsPerTurn).toBeGreaterThan(0)
      // the replicas count only shared dials
      expect([noReuse!.dialsPerTurn, latest!.dialsPerTurn]).toEqual([null, null])
      // once a rebuild's notice has been read, no turn meets its retired agent, and no replica keeps its connection
      expect(report.strategies.map((s) => s.withRebuilds!.retiredAgentTurns)).toEqual([0, 0, 0])
      expect(report.strategies.map((s) => s.withRebuilds!.retiredSocketsOpen)).toEqual([0, 0, 0])
    },
    210_000
  )

  it("says 'not measured: <the database's own error>' when it may not read them, and goes on", async () => {
    const url = databaseOfTheRole(
      "lazydial_cluster_unmeasured",
      "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; REVOKE ALL ON pg_stat_statements FROM PUBLIC"
    )
    const result = await cluster(url, [])
    expect(result.status, result.stderr.slice(-2000)).toBe(0)
    const report = JSON.parse(result.stdout) as Cluster.ClusterReport
    expect(report.statements).toBe("not measured: permission denied for view pg_stat_statements")
    expect(report.first).toBe("lazydial")
    for (const strategy of report.strategies) {
      expect(strategy.statementsPerTurn).toBeNull()
      expect(strategy.turns).toBe(24)
      expect(strategy.failed).toBe(0)
    }
  }, 210_000)
})
