/**
 * Runs a command line (a `bin.ts`, through tsx) as a child process, as a user
 * does, and answers its exit code and what it wrote: shared by the service's
 * and the harness's CLI tests.
 */
import { spawn } from "node:child_process"

export interface Ran {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Bounded: spawn kills the child after `timeoutMs`, and the promise then fails naming the command. */
export const runBin = (
  bin: string,
  args: ReadonlyArray<string>,
  env: Record<string, string | undefined> = {},
  timeoutMs = 50_000
) =>
  new Promise<Ran>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", bin, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGKILL"
    })
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
        ? reject(new Error(`${args.join(" ")}: no exit within ${timeoutMs / 1000} s`))
        : resolve({ status, stdout, stderr }))
  })
