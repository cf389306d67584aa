/**
 * The cluster's report, from figures made up for the purpose (the runs
 * themselves, with processes and PostgreSQL, are in Cluster.ci.test.ts).
 */
import { describe, expect, it } from "vitest"
import * as Cluster from "../src/Cluster.js"

const phase = (overrides: Partial<Cluster.PhaseFigures>): Cluster.PhaseFigures => ({
  phase: "steady",
  turns: 400,
  ok: 400,
  databaseUnavailable: 0,
  failed: 0,
  seconds: 4,
  turnsPerSecond: 100,
  p50Ms: 10,
  p99Ms: 40,
  rebuilds: 0,
  rebuildsFailed: 0,
  outcomes: { fast: 400 },
  failures: {},
  switchedByNotice: 0,
  dialsPerTurn: 0,
  borrowsPerTurn: 1,
  drops: 0,
  retiredAgentTurns: 0,
  retiredSocketsOpen: 0,
  replicaLookupsPerTurn: 0,
  replicaQueriesPerTurn: 0,
  statementsPerTurn: 1,
  lookupsPerTurn: 0,
  byStatement: [],
  replicas: [],
  ...overrides
})

const report = (overrides: Partial<Cluster.ClusterReport> = {}): Cluster.ClusterReport => ({
  replicas: 2,
  chats: 40,
  turnsPerChat: 10,
  concurrency: 16,
  workspaces: 8,
  seed: 1,
  validationDelayMs: 500,
  delayMode: "fixed",
  notices: true,
  rebuilds: 12,
  first: "latest",
  dialLatencyMs: 50,
  retiredAfterMs: 500,
  statements: "measured at the database with pg_stat_statements (every statement of the measured turns, all processes)",
  strategies: [
    {
      ...phase({}),
      strategy: "lazydial",
      ranAs: 2,
      withRebuilds: phase({
        phase: "rebuilds",
        switchedByNotice: 11,
        failed: 1,
        p99Ms: 60,
        lookupsPerTurn: 0.01,
        dialsPerTurn: 0.03,
        drops: 12
      })
    },
    {
      ...phase({ p50Ms: 60, p99Ms: 70, dialsPerTurn: null, borrowsPerTurn: null, drops: null }),
      strategy: "lazydial_no_reuse",
      ranAs: 3,
      withRebuilds: phase({
        phase: "rebuilds",
        failed: 2,
        retiredAgentTurns: 2,
        retiredSocketsOpen: 1,
        dialsPerTurn: null,
        borrowsPerTurn: null,
        drops: null
      })
    },
    {
      ...phase({
        p50Ms: 20,
        p99Ms: 30,
        statementsPerTurn: 2,
        lookupsPerTurn: 1,
        turnsPerSecond: 80,
        dialsPerTurn: null,
        borrowsPerTurn: null,
        drops: null
      }),
      strategy: "latest",
      ranAs: 1,
      withRebuilds: phase({
        phase: "rebuilds",
        failed: 3,
        p99Ms: 35,
        lookupsPerTurn: 1,
        dialsPerTurn: null,
        borrowsPerTurn: null,
        drops: null
      })
    }
  ],
  ...overrides
})

describe("the cluster's report", () => {
  it("opens with what the run shows: statements and lookups per turn, p50 and p99 with their ratio, the rebuilds", () => {
    const [first, second, dials, rebuilds, blank] = Cluster.render(report()).split("\n")
    expect(first).toBe(
      "Steady turns on 2 replica(s): lazydial made 1 SQL statements and 0 lookups per turn at the database, latest " +
        "2 SQL statements and 1 lookups per turn at the database; 100 against 80 turns/s."
    )
    expect(second).toBe(
      "Turn p50 10 ms (lazydial) against 20 ms (latest), 0.50×; p99 40 ms against 30 ms, 1.33×. A p99 of 400 turns " +
        "is their 5th slowest: judge it over several runs, alternating --first (latest ran first here)."
    )
    expect(dials).toBe(
      "At a 50 ms handshake, shared connections made 0 dials per steady turn (1 borrows per turn, the replicas' " +
        "counters): turn p50 10 ms against 60 ms with a dial per turn (lazydial_no_reuse), 0.17×."
    )
    expect(rebuilds).toContain("With 12 rebuilds: lazydial switched 11 turns by notice")
    expect(rebuilds).toContain("failed 1 turns (latest 3)")
    expect(rebuilds).toContain(
      "Turns that met a retired agent more than 500 ms after its rebuild was answered: 0 with shared connections, " +
        "2 without."
    )
    expect(blank).toBe("")
  })

  it("gives each phase its dials, borrows and drops, and the rebuild phase its turns that met a retired agent", () => {
    const text = Cluster.render(report())
    expect(text).toContain("handshake latency 50 ms, ran in the order latest, lazydial, lazydial_no_reuse")
    expect(text).toContain(
      "  shared connections: 0.03 dials and 1 borrows per turn, 12 dropped (the replicas' counters)"
    )
    expect(text).toContain("  connections not shared: a dial per turn (the replicas count only shared dials)")
    const retired = text.split("\n").filter((line) => line.includes("turns that met a retired agent after"))
    // one line per strategy's rebuild phase, none for the steady phases
    const still = "connections retired agents still held 500 ms after the phase:"
    expect(retired).toEqual([
      `  turns that met a retired agent after its notice-prompted read: 0; ${still} 0`,
      `  turns that met a retired agent after its notice-prompted read: 2; ${still} 1`,
      `  turns that met a retired agent after its notice-prompted read: 0; ${still} 0`
    ])
  })

  it("says what it could not measure, in the database's words", () => {
    const text = Cluster.render(report({
      statements: "not measured: permission denied for view pg_stat_statements",
      strategies: report().strategies.map((s) => ({ ...s, statementsPerTurn: null, lookupsPerTurn: null }))
    }))
    expect(text).toContain("SQL statements: not measured: permission denied for view pg_stat_statements")
    expect(text.split("\n")[0]).toContain("0 lookups per turn (the replicas' counters; statements not measured)")
  })
})
