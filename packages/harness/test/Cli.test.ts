/**
 * The harness's command line as a user runs it (`pnpm start`): a child process.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Schema from "effect/Schema"
import { spawn, spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { makeEta } from "../src/Cli.js"
import { Report } from "../src/Report.js"
// the runner of the service's CLI tests, for the same child process
import { runBin } from "../../service/test/runBin.js"

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))
const run = (args: ReadonlyArray<string>) =>
  spawnSync(process.execPath, ["--import", "tsx", bin, ...args], { encoding: "utf8", timeout: 80_000 })

const runAsync = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}) => runBin(bin, args, env)

describe("lazydial-harness", () => {
  it("rejects a bad flag on stderr, naming the flag, with exit code 2 and nothing on stdout", () => {
    const result = run(["--chats", "many"])
    expect(result.status).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("Invalid value for flag --chats: \"many\"")
  }, 30_000)

  it("--chats -5 says the rule in words, not a Schema tree", () => {
    const result = run(["--chats", "-5"])
    expect(result.status).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("--chats must be an integer from 1 to 1000000")
    expect(result.stderr).not.toMatch(/refinement|greaterThanOrEqualTo/)
  }, 30_000)

  it(
    "a flag without its value is named (last, or followed by another flag); a negative number is a value",
    async () => {
      // off the worker's thread, at once: four runs in a row would block it
      const [last, beforeFlag, subcommand, negative] = await Promise.all([
        runAsync(["--json", "--chats"]),
        runAsync(["--seed", "--json"]),
        runAsync(["cluster", "--replicas"]),
        runAsync(["--chats", "-5", "--json"])
      ])
      for (const [result, flag] of [[last, "--chats"], [beforeFlag, "--seed"], [subcommand, "--replicas"]] as const) {
        expect(result.status).toBe(2)
        expect(result.stdout).toBe("")
        expect(result.stderr).toContain(`Missing value for flag ${flag}`)
      }
      // -5 was read as the value of --chats, and refused by its range
      expect(negative.status).toBe(2)
      expect(negative.stderr).toContain("--chats must be an integer from 1 to 1000000")
      expect(negative.stderr).not.toContain("Missing value")
    },
    60_000
  )

  it("--html into a directory that does not exist fails before the run, on stderr, with exit code 2", () => {
    const began = Date.now()
    const result = run(["--html", "/no/such/dir/r.html"])
    expect(result.status).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("invalid --html: got /no/such/dir/r.html, expected a file in an existing directory")
    // no workload ran: no progress line, and well under a run's time
    expect(result.stderr).not.toContain("turns")
    expect(Date.now() - began).toBeLessThan(20_000)
  }, 30_000)

  it("--help shows defaults and examples, without ANSI codes when piped, and without unused built-ins", () => {
    const result = run(["--help"])
    expect(result.status).toBe(0)
    expect(result.stdout).toContain("turns per chat (default: 10)")
    expect(result.stdout).toContain("lazydial-harness --json > report.json")
    expect(result.stdout).not.toContain("\u001b[")
    expect(result.stdout).not.toMatch(/--completions|--log-level|--wizard/)
  }, 30_000)

  it(
    "cluster takes serve's --notices and --delay-mode (same choices, same defaults) and its own --rebuilds",
    async () => {
      // three runs at once, and off the worker's thread: spawnSync would block it for the three runs in a row
      const [cluster, serve, bad] = await Promise.all([
        runAsync(["cluster", "--help"]),
        runAsync(["serve", "--help"]),
        runAsync(["cluster", "--database-url", "postgres://127.0.0.1:1/x", "--delay-mode", "sometimes"])
      ])
      // one line per flag: its name, its description with the default, its choices (spaces collapsed: each
      // command's help aligns its own columns)
      const entries = (help: string) =>
        help.split("\n").filter((line) => /^\s*--(notices|delay-mode)\b/.test(line)).map((line) =>
          line.trim().replace(/\s+/g, " ")
        ).join("\n")
      expect(cluster.status).toBe(0)
      expect(entries(cluster.stdout)).toContain("(default: LAZYDIAL_NOTICES, else on)")
      expect(entries(cluster.stdout)).toContain("(default: LAZYDIAL_VALIDATION_DELAY=adaptive, else fixed)")
      expect(entries(cluster.stdout)).toEqual(entries(serve.stdout))
      expect(cluster.stdout).toContain("during a second measured phase, at seeded turns (0: only the steady phase)")
      expect(bad.status).toBe(2)
      expect(bad.stdout).toBe("")
    },
    60_000
  )

  it("the ETA waits for a first turn, then extrapolates the strategy's rate, and restarts with each strategy", () => {
    const eta = makeEta()
    expect(eta({ strategy: "lazydial", turns: 0, totalTurns: 100 }, 0)).toBe("ETA …")
    expect(eta({ strategy: "lazydial", turns: 25, totalTurns: 100 }, 5_000)).toBe("ETA 15s")
    expect(eta({ strategy: "latest", turns: 0, totalTurns: 100 }, 9_000)).toBe("ETA …")
    expect(eta({ strategy: "latest", turns: 50, totalTurns: 100 }, 11_000)).toBe("ETA 2s")
  })

  it("rejects an unknown flag with exit code 2", () => {
    const result = run(["--no-such-flag"])
    expect(result.status).toBe(2)
  }, 30_000)

  it("prints --json output that decodes with the Report schema; --dial-latency-ms reaches the agents", () => {
    const result = run([
      "--json",
      "--chats",
      "4",
      "--workspaces",
      "2",
      "--turns",
      "2",
      "--think-ms",
      "20",
      "--dial-latency-ms",
      "120",
      "--first",
      "lazydial_no_reuse"
    ])
    expect(result.status).toBe(0)
    const report = Schema.decodeUnknownSync(Report)(JSON.parse(result.stdout))
    expect(report.strategies.map((s) => s.strategy)).toEqual(["lazydial", "lazydial_no_reuse", "latest"])
    expect(report.settings.chats).toBe(4)
    expect(report.settings.order).toEqual(["lazydial_no_reuse", "latest", "lazydial"])
    expect(report.settings.dialLatencyMs).toBe(120)
    // every connect of a strategy that dials per turn waited out the agents' handshake (a timer: never less)
    for (const s of report.strategies.filter((s) => s.strategy !== "lazydial")) {
      expect(s.latency.counts.reduce((a, b) => a + b, 0)).toBeGreaterThan(0)
      expect(s.latency.p50).toBeGreaterThanOrEqual(120)
    }
  }, 90_000)

  it("--dial-latency-ms takes 0 to 60000 ms, said in words", async () => {
    const result = await runAsync(["--dial-latency-ms", "60001"])
    expect(result.status).toBe(2)
    expect(result.stdout).toBe("")
    expect(result.stderr).toContain("--dial-latency-ms must be an integer from 0 to 60000")
  }, 30_000)
})

const tiny = ["--chats", "4", "--workspaces", "2", "--turns", "2", "--think-ms", "20"]

describe("output a program can read (the harness's run, on PGlite)", () => {
  it("the text report is all stdout holds; progress and logs go to stderr", () => {
    const result = run(tiny)
    expect(result.status).toBe(0)
    expect(result.stdout.startsWith("With shared connections lazydial dialed")).toBe(true)
    expect(result.stdout).toContain("\nlazydial reference service: seed 1")
    expect(result.stdout).not.toMatch(/level=|message=|\{"/)
    expect(result.stderr).not.toContain("lazydial reference service")
  }, 90_000)

  it(
    "--json --port: stdout is the report, one JSON document, while the API it serves after it logs every request to stderr",
    async () => {
      const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", bin, "--json", "--port", "0", ...tiny], {
          env: { ...process.env, LAZYDIAL_DATABASE_URL: undefined },
          stdio: ["ignore", "pipe", "pipe"],
          timeout: 80_000,
          killSignal: "SIGKILL"
        })
        let stdout = ""
        let stderr = ""
        let asked = false
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString()
        })
        child.stderr.on("data", (chunk: Buffer) => {
          stderr += chunk.toString()
          const url = /serving the chat API on (http:\/\/[0-9.:]+)/.exec(stderr)?.[1]
          if (asked || url === undefined) return
          asked = true
          // requests: with no token (401) and to no route (404); each writes an access line
          void Promise.all(
            ["/workspaces", "/no/such/route"].map((path) => fetch(`${url}${path}`).then((r) => r.text()))
          )
            .finally(() => child.kill("SIGTERM"))
        })
        child.on("exit", (status, signal) =>
          signal === "SIGKILL"
            ? reject(new Error(`no exit within 80 s; stderr:\n${stderr}`))
            : resolve({ status, stdout, stderr }))
      })
      expect(result.status).toBe(0)
      const report = Schema.decodeUnknownSync(Report)(JSON.parse(result.stdout))
      expect(report.settings.chats).toBe(4)
      expect(result.stderr).toMatch(/message=request .*route=\/workspaces status=401/)
      expect(result.stderr).toMatch(/route=unmatched status=404/)
    },
    90_000
  )
})
