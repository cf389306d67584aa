/**
 * The command line as a user runs it: a child process.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Report } from "../src/Report.js"

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))
const run = (args: ReadonlyArray<string>) =>
  spawnSync(process.execPath, ["--import", "tsx", bin, ...args], { encoding: "utf8", timeout: 80_000 })

describe("lazydial-service", () => {
  it("rejects a bad flag with a usage error and exit code 2", () => {
    const result = run(["--chats", "many"])
    expect(result.status).toBe(2)
    const output = result.stdout + result.stderr
    expect(output).toContain("--chats")
    expect(output).toMatch(/USAGE/i)
  }, 30_000)

  it("rejects an unknown flag with exit code 2", () => {
    const result = run(["--no-such-flag"])
    expect(result.status).toBe(2)
  }, 30_000)

  it("prints --json output that decodes with the Report schema", () => {
    const result = run(["--json", "--chats", "4", "--workspaces", "2", "--turns", "2", "--think-ms", "20"])
    expect(result.status).toBe(0)
    const report = Schema.decodeUnknownSync(Report)(JSON.parse(result.stdout))
    expect(report.strategies.map((s) => s.strategy)).toEqual(["lazydial", "latest"])
    expect(report.settings.chats).toBe(4)
  }, 90_000)
})
