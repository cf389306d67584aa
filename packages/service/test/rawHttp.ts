/**
 * A raw HTTP client for the deadline tests: it writes a request in parts,
 * `gapMs` apart, and answers what came back and when the server closed the
 * connection. Real time, on purpose: the deadlines are Node's server timers,
 * which no test clock drives, so the tests that use it are process tests
 * (`*.ci.test.ts`, run by scripts/test-replicas.sh).
 */
import * as Effect from "effect/Effect"
import * as Net from "node:net"

export interface RawAnswer {
  readonly text: string
  readonly closedAfterMs: number
}

/** Bounded: a server that keeps the connection open for `boundMs` fails it, with what it answered so far. */
export const raw = (
  port: number,
  parts: ReadonlyArray<string>,
  gapMs: number,
  boundMs = 20_000
): Effect.Effect<RawAnswer, Error> =>
  Effect.callback<RawAnswer, Error>((resume) => {
    const began = performance.now()
    const socket = Net.connect({ host: "127.0.0.1", port })
    let text = ""
    let timer: ReturnType<typeof setTimeout> | undefined
    const bound = setTimeout(() => {
      socket.destroy()
      resume(Effect.fail(new Error(`the server kept the connection open for ${boundMs} ms; it answered: ${text}`)))
    }, boundMs)
    const writeFrom = (i: number) => {
      if (i >= parts.length || socket.destroyed) return
      socket.write(parts[i]!)
      timer = setTimeout(() => writeFrom(i + 1), gapMs)
    }
    socket.on("connect", () => writeFrom(0))
    socket.on("data", (chunk) => {
      text += chunk.toString()
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      clearTimeout(timer)
      clearTimeout(bound)
      resume(Effect.succeed({ text, closedAfterMs: performance.now() - began }))
    })
    return Effect.sync(() => {
      clearTimeout(timer)
      clearTimeout(bound)
      socket.destroy()
    })
  })

/** The port of a base URL such as `http://127.0.0.1:8081`. */
export const portOf = (url: string) => Number(new URL(url).port)
