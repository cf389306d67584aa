/**
 * What a connection kept across turns costs a replica, on real sockets:
 *
 * - a dial (TCP connect and the HMAC handshake) and a probe (`ping`, answered
 *   `pong`) on an open connection: p50 and p99, at the agents' dial latency
 *   0 (localhost) and 50 ms (`fleet --dial-latency-ms 50`, a tunnel's cost);
 * - heap and external memory per open, idle connection of the socket dialer
 *   (its socket, reader, queue and mutex): N connections, asserted open by
 *   the dialer's own counters, read after a full GC, median of 3 rounds.
 *
 * The agents run in a child process (plain Node, the fleet's line protocol),
 * so that the heap read is the dialer's alone. Core's `SharedConnections`
 * entry (its RcMap slot) comes on top: binding's bench measures it
 * (`pnpm --filter @lazydial/binding bench`).
 *
 *   pnpm --filter @lazydial/service bench:connections
 *   LAZYDIAL_BENCH_CONNECTIONS=5000 pnpm --filter @lazydial/service bench:connections
 */
import { AgentDialer, AgentId, WorkspaceId } from "@lazydial/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import * as os from "node:os"
import * as AgentAddresses from "../src/AgentAddresses.js"
import * as SocketDialer from "../src/SocketDialer.js"

const connections = Number(process.env["LAZYDIAL_BENCH_CONNECTIONS"] ?? 2000)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc (pnpm --filter @lazydial/service bench:connections)")

// The fleet's agent, in plain JavaScript for a child process: the same answers as src/internal/fleet.ts, with the
// handshake's answer held back by LATENCY ms.
const agentSource = `
const net = require("node:net")
const { createHmac } = require("node:crypto")
const secret = Buffer.from(process.env.SECRET, "hex")
const id = process.env.AGENT_ID
const latency = Number(process.env.LATENCY)
const server = net.createServer((socket) => {
  socket.setNoDelay(true)
  socket.on("error", () => {})
  let buffer = ""
  socket.on("data", (chunk) => {
    buffer += chunk.toString("utf8")
    let newline = buffer.indexOf("\\n")
    while (newline >= 0) {
      const line = buffer.slice(0, newline)
      buffer = buffer.slice(newline + 1)
      if (line.startsWith("hello ")) {
        const nonce = line.slice(6)
        const answer = "agent " + id + " " + createHmac("sha256", secret).update(nonce + " " + id).digest("hex") + "\\n"
        if (latency > 0) setTimeout(() => socket.write(answer), latency)
        else socket.write(answer)
      } else if (line === "ping") socket.write("pong\\n")
      else if (line.startsWith("turn ")) socket.write("ok " + id + " - " + line.slice(5) + "\\n")
      else socket.write("error unknown request\\n")
      newline = buffer.indexOf("\\n")
    }
  })
})
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => console.log(server.address().port))
`

const workspaceId = WorkspaceId.make(randomUUID())

/** An agent in a child process, its dialer, for `use`; the child is killed after. */
const withAgent = <A, E>(
  latencyMillis: number,
  use: (
    agentId: AgentId,
    counters: ReturnType<typeof SocketDialer.makeCounters>
  ) => Effect.Effect<A, E, AgentDialer.AgentDialer>
) =>
  Effect.gen(function*() {
    const agentId = AgentId.make(randomUUID())
    const secret = randomBytes(32)
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["-e", agentSource], {
          env: { SECRET: secret.toString("hex"), AGENT_ID: agentId, LATENCY: String(latencyMillis) },
          stdio: ["ignore", "pipe", "inherit"]
        })
      ),
      (child) => Effect.sync(() => child.kill("SIGKILL"))
    )
    const port = yield* Effect.callback<number>((resume) => {
      child.stdout!.once("data", (chunk: Buffer) => resume(Effect.succeed(Number(chunk.toString().trim()))))
    })
    const book = Layer.succeed(
      AgentAddresses.AgentAddresses,
      AgentAddresses.AgentAddresses.of({
        record: () => Effect.void,
        resolve: (id) =>
          Effect.succeed(
            id === agentId
              ? Option.some({ agentId, workspaceId, host: "127.0.0.1", port, secret: Redacted.make(secret) })
              : Option.none()
          ),
        addWorkspace: () => Effect.void,
        workspaces: Effect.succeed([]),
        ownerOf: () => Effect.succeed(Option.none())
      })
    )
    const counters = SocketDialer.makeCounters()
    return yield* Effect.provide(use(agentId, counters), SocketDialer.layer(counters).pipe(Layer.provide(book)))
  }).pipe(Effect.scoped)

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

const timings = (millis: Array<number>) => {
  const sorted = [...millis].sort((a, b) => a - b)
  return { p50: percentile(sorted, 0.5).toFixed(3), p99: percentile(sorted, 0.99).toFixed(3), n: sorted.length }
}

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(effect), ([took]) => Duration.toMillis(took))

/** Dials (each closed after) and pings on one open connection, in ms. */
const latencies = (latencyMillis: number, dials: number, pings: number) =>
  withAgent(latencyMillis, (agentId) =>
    Effect.gen(function*() {
      const dialer = yield* AgentDialer.AgentDialer
      const dialMillis = yield* Effect.forEach(
        Array.from({ length: dials }),
        () => timed(Effect.scoped(dialer.dial(agentId)))
      )
      const pingMillis = yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* dialer.dial(agentId)
        return yield* Effect.forEach(Array.from({ length: pings }), () => timed(SocketDialer.probe(connection)))
      }))
      return { latencyMillis, dial: timings(dialMillis), probe: timings(pingMillis) }
    }))

const used = () => {
  const memory = process.memoryUsage()
  return { heap: memory.heapUsed, external: memory.external + memory.arrayBuffers }
}

const settle = Effect.promise(async () => {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
})

/** Heap and external bytes per open, idle connection of the dialer. */
const memoryRound = withAgent(0, (agentId, counters) =>
  Effect.gen(function*() {
    const dialer = yield* AgentDialer.AgentDialer
    yield* settle
    const before = used()
    const per = yield* Effect.scoped(Effect.gen(function*() {
      const open = yield* Effect.forEach(Array.from({ length: connections }), () => dialer.dial(agentId), {
        concurrency: 64
      })
      const stats = SocketDialer.stats(counters)
      if (open.length !== connections || stats.stillOpen !== connections) {
        return yield* Effect.die(
          new Error(`expected ${connections} open connections, the dialer has ${stats.stillOpen}`)
        )
      }
      yield* settle
      const after = used()
      return {
        heap: (after.heap - before.heap) / connections,
        external: (after.external - before.external) / connections
      }
    }))
    return per
  }))

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const main = Effect.gen(function*() {
  console.log(
    `node ${process.version}, ${os.cpus().length} cores, load average ${
      os.loadavg().map((l) => l.toFixed(2)).join(" ")
    }`
  )
  for (const [latency, dials] of [[0, 500], [50, 60]] as const) {
    const result = yield* latencies(latency, dials, 2000)
    console.log(
      `dial latency ${latency} ms: dial p50 ${result.dial.p50} ms, p99 ${result.dial.p99} ms (n=${result.dial.n}); ` +
        `probe p50 ${result.probe.p50} ms, p99 ${result.probe.p99} ms (n=${result.probe.n})`
    )
  }
  const rounds = yield* Effect.forEach([1, 2, 3], () => memoryRound)
  const heap = median(rounds.map((r) => r.heap))
  const external = median(rounds.map((r) => r.external))
  console.log(
    `per open connection (${connections} open, median of 3): heap ${(heap / 1024).toFixed(2)} KiB, ` +
      `external ${(external / 1024).toFixed(2)} KiB (rounds: ${
        rounds.map((r) => `${(r.heap / 1024).toFixed(2)}+${(r.external / 1024).toFixed(2)}`).join(", ")
      } KiB)`
  )
  console.log(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`)
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
