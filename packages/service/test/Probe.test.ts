/**
 * What reads a process's lookups from outside (the process tests, the
 * harness's `cluster`): counters from Prometheus text, and which statements of
 * pg_stat_statements are lookups.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Probe from "../src/Probe.js"

const metrics = `# HELP lazydial_directory_lookups_total Latest-agent lookups
# TYPE lazydial_directory_lookups_total counter
lazydial_directory_lookups_total 3
# HELP lazydial_directory_lookups_total_by_cache not this one
lazydial_directory_lookups_total_by_cache 100
# TYPE lazydial_lookups_total counter
lazydial_lookups_total{path="a"} 2
lazydial_lookups_total{path="b \\"x\\" 9"} 5
`

describe("Probe", () => {
  it("counterTotal sums every series of one counter, and no other metric whose name starts the same", () => {
    expect(Probe.counterTotal(metrics, Probe.lookupMetrics.directoryLookups)).toBe(3)
    expect(Probe.counterTotal(metrics, Probe.lookupMetrics.coreLookups)).toBe(7)
    // a counter the process has not touched yet is 0
    expect(Probe.counterTotal(metrics, Probe.lookupMetrics.bindingLookups)).toBe(0)
  })

  it("isLookupStatement: a SELECT on the builds table, not the fleet's build write, a notice's read, nor other tables", () => {
    expect(Probe.isLookupStatement(
      "SELECT DISTINCT ON (workspace_id) workspace_id, build_number, build_id, agent_id\nFROM lazydial_workspace_builds WHERE"
    )).toBe(true)
    expect(Probe.isLookupStatement(
      "WITH inserted AS ( INSERT INTO lazydial_workspace_builds (workspace_id) SELECT $1 FROM lazydial_workspace_builds"
    )).toBe(false)
    expect(Probe.isLookupStatement("SELECT chat_id FROM lazydial_chat_bindings WHERE chat_id = $1")).toBe(false)
    // the read a rebuild notice prompted is not a turn's lookup
    expect(Probe.isLookupStatement(
      "SELECT DISTINCT ON (workspace_id) workspace_id, build_number, build_id, agent_id, true AS prompted_by_notice FROM lazydial_workspace_builds WHERE workspace_id IN ($1) ORDER BY workspace_id, build_number DESC"
    )).toBe(false)
  })
})
