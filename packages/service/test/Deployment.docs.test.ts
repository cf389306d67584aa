/**
 * docs/deployment.md's shell examples, run as they are written: every ```sh
 * block that follows a `<!-- docs-check: run -->` line, in one bash with
 * `set -euo pipefail`, from the repository's root, on a database of its own
 * of the throwaway PostgreSQL (scripts/test-docs.sh). They start a fleet and
 * two replicas from the build, probe them, make a chat and its turns, rebuild,
 * stop and start a workspace, and stop every process with SIGTERM: the block
 * fails unless each exits 0. Whatever the block leaves behind when it fails
 * is killed with its process group.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { expect, it } from "vitest"

const repo = path.resolve(import.meta.dirname, "../../..")
const databaseUrl = process.env["LAZYDIAL_TEST_DATABASE_URL"] ?? ""

/** The blocks marked to be run, in order. */
const runnableBlocks = (markdown: string): ReadonlyArray<string> => {
  const blocks: Array<string> = []
  const marker = /<!-- docs-check: run -->\n```sh\n([\s\S]*?)\n```/g
  for (const match of markdown.matchAll(marker)) blocks.push(match[1]!)
  return blocks
}

const psql = (sql: string) => {
  const result = spawnSync(
    process.env["LAZYDIAL_TEST_PSQL"] ?? "psql",
    [databaseUrl, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
    { encoding: "utf8", timeout: 30_000 }
  )
  if (result.status !== 0) throw new Error(`psql failed: ${result.stderr}`)
}

it.skipIf(databaseUrl === "")(
  "docs/deployment.md's examples run as written: a fleet and two replicas from the build, probed, used, and stopped by SIGTERM with exit 0",
  async () => {
    const docs = fs.readFileSync(path.join(repo, "docs/deployment.md"), "utf8")
    const blocks = runnableBlocks(docs)
    expect(blocks.length).toBeGreaterThan(0)
    // a database of its own: a fleet takes back the workspaces a database holds
    psql("DROP DATABASE IF EXISTS lazydial_docs WITH (FORCE)")
    psql("CREATE DATABASE lazydial_docs")
    const url = new URL(databaseUrl)
    url.pathname = "/lazydial_docs"
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "lazydial-docs-"))
    const script = path.join(scratch, "deployment.sh")
    fs.writeFileSync(script, `set -euo pipefail\n${blocks.join("\n")}\n`)
    let group = 0
    const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn("bash", [script], {
        cwd: repo,
        env: {
          ...process.env,
          LAZYDIAL_DATABASE_URL: url.toString(),
          LAZYDIAL_TOKEN_AUTH_FILE: undefined,
          LAZYDIAL_NO_AUTH: undefined,
          TMPDIR: scratch
        },
        // a group of its own: whatever the block started is killed with it, below
        detached: true,
        stdio: ["ignore", "pipe", "pipe"]
      })
      group = child.pid!
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString()
      })
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString()
      })
      const bound = setTimeout(() => process.kill(-group, "SIGKILL"), 240_000)
      child.on("exit", (status) => {
        clearTimeout(bound)
        resolve({ status, stdout, stderr })
      })
    })
    // anything the block left running (nothing, when it succeeded: it waited for every process it started)
    try {
      process.kill(-group, "SIGKILL")
    } catch {
      // the group is empty
    }
    const logs = fs.readdirSync(scratch, { recursive: true }).filter((name) => String(name).endsWith(".log"))
      .map((name) => `--- ${String(name)}\n${fs.readFileSync(path.join(scratch, String(name)), "utf8").slice(-1500)}`)
      .join("\n")
    fs.rmSync(scratch, { recursive: true, force: true })
    expect(result.status, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}\n${logs}`).toBe(0)
    const lines = result.stdout.split("\n")
    expect(lines).toContain(`{"status":"ready"}`)
    // the chat's first turn binds it; after the rebuild the other replica switches by notice; the stop fails at once
    expect(lines.filter((line) => /^[a-z_]+$/.test(line))).toEqual(["lazy_bind", "switched_by_notice", "no_agent"])
  }
)
