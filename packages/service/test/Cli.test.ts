/**
 * The command line as an operator runs it: a child process.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { runBin } from "./runBin.js"

const bin = fileURLToPath(new URL("../src/bin.ts", import.meta.url))

const run = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}) => runBin(bin, args, env)

describe("lazydial-service", () => {
  it(
    "rejects a bad flag and an unknown one on stderr, naming the flag, with exit code 2 and nothing on stdout",
    async () => {
      // off the worker's thread, at once
      const [bad, range, unknown] = await Promise.all([
        run(["serve", "--port", "many"]),
        run(["fleet", "--workspaces", "-5"]),
        run(["serve", "--no-such-flag"])
      ])
      expect(bad.status).toBe(2)
      expect(bad.stderr).toContain("Invalid value for flag --port: \"many\"")
      // the rule in words, not a Schema tree
      expect(range.status).toBe(2)
      expect(range.stderr).toContain("--workspaces must be an integer from 1 to 1000000")
      expect(range.stderr).not.toMatch(/refinement|greaterThanOrEqualTo/)
      expect(unknown.status).toBe(2)
      for (const result of [bad, range, unknown]) {
        expect(result.stdout).toBe("")
        expect(result.stderr).toContain("Run lazydial-service --help for every option and examples.")
      }
    },
    60_000
  )

  it("a flag without its value is named (last, or followed by another flag)", async () => {
    const [last, beforeFlag] = await Promise.all([
      run(["serve", "--port"]),
      run(["fleet", "--seed", "--no-auth"])
    ])
    for (const [result, flag] of [[last, "--port"], [beforeFlag, "--seed"]] as const) {
      expect(result.status).toBe(2)
      expect(result.stdout).toBe("")
      expect(result.stderr).toContain(`Missing value for flag ${flag}`)
    }
  }, 60_000)

  it(
    "--help names the two subcommands and shows examples, without ANSI codes when piped, and without unused built-ins",
    async () => {
      const [top, serve] = await Promise.all([run(["--help"]), run(["serve", "--help"])])
      expect(top.status).toBe(0)
      expect(top.stdout).toContain("serve")
      expect(top.stdout).toContain("fleet")
      expect(top.stdout).toContain("lazydial-service serve --port 8081")
      expect(serve.stdout).toContain(
        "how long a turn may take to connect to its agent, in milliseconds (default: LAZYDIAL_DIAL_TIMEOUT, else 10000)"
      )
      for (const result of [top, serve]) {
        expect(result.stdout).not.toContain("\u001b[")
        expect(result.stdout).not.toMatch(/--completions|--log-level|--wizard/)
      }
    },
    60_000
  )

  it(
    "serve and fleet take a token file or --no-auth (neither, both, or bad --owners: exit 2 before anything starts), and the deadlines",
    async () => {
      const noFile = { LAZYDIAL_TOKEN_AUTH_FILE: undefined }
      const [serveHelp, fleetHelp, neither, both, owners] = await Promise.all([
        run(["serve", "--help"]),
        run(["fleet", "--help"]),
        run(["serve", "--port", "0"], noFile),
        run(["serve", "--port", "0", "--no-auth", "--token-auth-file", "/nonexistent/tokens.csv"], noFile),
        run(["fleet", "--port", "0", "--no-auth", "--owners", "alice,,bob"], noFile)
      ])
      for (const help of [serveHelp.stdout, fleetHelp.stdout]) {
        for (const flag of ["--token-auth-file", "--no-auth", "--headers-timeout-ms", "--request-timeout-ms"]) {
          expect(help).toContain(flag)
        }
        expect(help).toContain("LAZYDIAL_TOKEN_AUTH_FILE")
      }
      expect(fleetHelp.stdout).toContain("--owners")
      expect(neither.status).toBe(2)
      expect(neither.stderr).toContain(
        "serve needs a token file: --token-auth-file PATH or LAZYDIAL_TOKEN_AUTH_FILE"
      )
      expect(neither.stderr).toContain("or --no-auth")
      expect(both.status).toBe(2)
      expect(both.stderr).toContain("--no-auth and a token file (--token-auth-file) contradict each other")
      expect(owners.status).toBe(2)
      expect(owners.stderr).toContain("invalid --owners: got alice,,bob, expected user names separated by commas")
      for (const result of [neither, both, owners]) expect(result.stdout).toBe("")
    },
    60_000
  )
})

/**
 * Starts the CLI as a long-running process on PGlite (no database URL), waits for its first stdout line, runs
 * `requests` against the address it printed, then stops it with SIGTERM: what it wrote on each stream.
 */
const runProcess = (args: ReadonlyArray<string>, requests: (url: string) => Promise<void>) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", bin, ...args], {
      env: { ...process.env, LAZYDIAL_DATABASE_URL: undefined, LAZYDIAL_TOKEN_AUTH_FILE: undefined },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 60_000,
      killSignal: "SIGKILL"
    })
    let stdout = ""
    let stderr = ""
    let asked = false
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      if (asked || !stdout.includes("\n")) return
      asked = true
      let first: Record<string, unknown>
      try {
        first = JSON.parse(stdout.split("\n")[0]!) as Record<string, unknown>
      } catch {
        // not an event: stop it at once, and let the assertions on what it printed say why
        child.kill("SIGTERM")
        return
      }
      requests(String(first["serving"] ?? first["fleet"])).then(
        () => child.kill("SIGTERM"),
        (error) => (child.kill("SIGKILL"), reject(error))
      )
    })
    child.on("exit", (status, signal) =>
      signal === "SIGKILL"
        ? reject(new Error(`${args.join(" ")}: killed; stderr:\n${stderr}`))
        : resolve({ status, stdout, stderr }))
  })

// a request that answers, one that is a client's error, and one a route does not have: each writes an access line
const someRequests = async (url: string) => {
  for (const path of ["/health", "/workspaces", "/no/such/route"]) await (await fetch(`${url}${path}`)).text()
}

describe("output a program can read", () => {
  for (const command of ["serve", "fleet"] as const) {
    it(
      `${command} on PGlite: stdout is one JSON line per process event and nothing else; every log line is on stderr`,
      async () => {
        const result = await runProcess([command, "--no-auth", "--port", "0"], someRequests)
        expect(result.status).toBe(0)
        const lines = result.stdout.split("\n").filter((line) => line !== "")
        expect(lines).toHaveLength(1)
        const event = JSON.parse(lines[0]!) as Record<string, unknown>
        expect(Object.keys(event)).toContain(command === "serve" ? "serving" : "fleet")
        // the PGlite warning, the --no-auth warning and the access log: all on stderr, as logfmt
        expect(result.stderr).toMatch(/level=WARN .*embedded PGlite database/)
        expect(result.stderr).toMatch(/level=INFO .*message=request .*route=\/health status=200/)
        expect(result.stderr).toMatch(/route=unmatched status=404/)
        expect(result.stdout).not.toMatch(/level=|message=/)
      },
      90_000
    )
  }
})
