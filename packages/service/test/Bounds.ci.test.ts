/**
 * Bounds across real processes (run by scripts/test-replicas.sh): 10,000
 * requests with bad ids grow `/metrics` by less than 10 KB; a slow body and
 * slow headers are cut at their deadlines (408, the connection closed);
 * `/ready` answers within its 2 s while PostgreSQL is hung; and start-up
 * errors end the process with a message that names the cause.
 */
import * as Effect from "effect/Effect"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as Net from "node:net"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import * as P from "./processes.js"
import { raw } from "./rawHttp.js"

const hasDatabase = P.databaseUrl !== ""

afterEach(P.stopAll)

const metricsBytes = async (proc: P.Proc) => (await (await fetch(`${proc.url}/metrics`)).text()).length

describe.skipIf(!hasDatabase)("bounds across processes (needs LAZYDIAL_TEST_DATABASE_URL)", () => {
  let url = ""
  let tokens = { path: "", users: {} as Record<string, P.User> }
  beforeAll(() => {
    url = P.freshDatabase("lazydial_bounds_test")
    tokens = P.tokenFile([{ name: "alice" }, { name: "ops", groups: ["operators"] }])
  })
  afterAll(() => fs.rmSync(tokens.path.replace(/\/tokens\.csv$/, ""), { recursive: true, force: true }))

  it("10,000 requests with bad ids, with and without a token, grow /metrics by less than 10 KB", async () => {
    const replica = await P.start(["serve", "--port", "0", "--database-url", url, "--token-auth-file", tokens.path])
    const alice = tokens.users["alice"]!.token
    const kinds = (i: number): readonly [string, string, unknown] => {
      const bad = `bad-${i}-${randomUUID().slice(0, 8)}`
      switch (i % 5) {
        case 0:
          return ["GET", `/chats/${bad}`, undefined]
        case 1:
          return ["POST", `/chats/${bad}/turns`, { message: "x" }]
        case 2:
          return ["PUT", `/chats/${bad}/workspace`, { workspace_id: null }]
        case 3:
          return ["POST", `/workspaces/${bad}/rebuild`, { mode: "die" }]
        default:
          return ["GET", `/${bad}/no/such/route`, undefined]
      }
    }
    const send = async (i: number) => {
      const [method, path, body] = kinds(i)
      const headers: Record<string, string> = i % 2 === 0 ? { authorization: `Bearer ${alice}` } : {}
      if (body !== undefined) headers["content-type"] = "application/json"
      const response = await fetch(`${replica.url}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000)
      })
      await response.arrayBuffer()
      return response.status
    }
    // every kind once with and without a token first, so that each series the requests can make exists
    for (let i = 0; i < 10; i++) await send(i)
    const before = await metricsBytes(replica)
    const statuses = new Map<number, number>()
    const began = performance.now()
    let next = 10
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < 10_010) {
        const status = await send(next++)
        statuses.set(status, (statuses.get(status) ?? 0) + 1)
      }
    }))
    const after = await metricsBytes(replica)
    const text = await (await fetch(`${replica.url}/metrics`)).text()
    console.log(
      `10,000 bad-id requests in ${Math.round(performance.now() - began)} ms, statuses ${
        JSON.stringify(Object.fromEntries(statuses))
      }: /metrics ${before} -> ${after} bytes`
    )
    // refused, each as its kind: unauthenticated, bad id, not an operator, no such route
    expect([...statuses.keys()].sort()).toEqual([400, 401, 403, 404])
    expect(after - before).toBeLessThan(10_000)
    expect(text).not.toMatch(/bad-\d/)
  })

  it("a slow body is cut at the request's deadline, slow headers at theirs: 408 and the connection closed", async () => {
    const replica = await P.start([
      "serve",
      "--port",
      "0",
      "--database-url",
      url,
      "--token-auth-file",
      tokens.path,
      "--headers-timeout-ms",
      "1000",
      "--request-timeout-ms",
      "2000"
    ])
    const port = Number(new URL(replica.url).port)
    const body = JSON.stringify({ workspace_id: null })
    const head = `POST /chats HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${tokens.users["alice"]!.token}\r\n` +
      `content-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`
    // one byte of the body every 300 ms: the whole of it would take 6 s
    const slowBody = await Effect.runPromise(raw(port, [head, ...body.split("")], 300))
    console.log(`slow body: closed after ${Math.round(slowBody.closedAfterMs)} ms: ${slowBody.text.split("\r\n")[0]}`)
    expect(slowBody.text).toMatch(/^HTTP\/1\.1 408 /)
    expect(slowBody.closedAfterMs).toBeGreaterThanOrEqual(1_950)
    // the deadline, plus Node's check interval (a quarter of the headers' deadline here) and some scheduling
    expect(slowBody.closedAfterMs).toBeLessThan(3_500)
    const slowHeaders = await Effect.runPromise(
      raw(port, ["GET /health HTTP/1.1\r\n", ...Array(60).fill("x-slow: 1\r\n")], 100)
    )
    console.log(`slow headers: closed after ${Math.round(slowHeaders.closedAfterMs)} ms`)
    expect(slowHeaders.text).toMatch(/^HTTP\/1\.1 408 /)
    expect(slowHeaders.closedAfterMs).toBeGreaterThanOrEqual(950)
    expect(slowHeaders.closedAfterMs).toBeLessThan(2_500)
    // the replica serves on
    expect((await P.get(`${replica.url}/health`)).status).toBe(200)
  })

  it("/ready answers 503 within its 2 s while PostgreSQL is hung, and ready again once it resumes", async () => {
    const replica = await P.start(["serve", "--port", "0", "--database-url", url, "--token-auth-file", tokens.path])
    expect((await P.get(`${replica.url}/ready`)).status).toBe(200)
    const hung = P.hangPostgres()
    const times: Array<number> = []
    try {
      // the pool's connection is hung mid-session, then every new one too
      for (let i = 0; i < 3; i++) {
        const began = performance.now()
        const ready = await P.get(`${replica.url}/ready`)
        times.push(performance.now() - began)
        expect(ready.status).toBe(503)
        expect(ready.body?.["reason"]).toBe("database_unavailable")
      }
    } finally {
      hung.resume()
    }
    console.log(`/ready with PostgreSQL hung: ${times.map(Math.round).join(", ")} ms`)
    for (const took of times) expect(took).toBeLessThan(2_500)
    expect(await P.eventually(async () => (await P.get(`${replica.url}/ready`)).status === 200, 15_000)).toBe(true)
  })

  it("start-up errors end the process with code 1 and a message that names the cause", async () => {
    // the port in use
    const holder = Net.createServer()
    await new Promise<void>((done) => holder.listen(0, "127.0.0.1", () => done()))
    const port = (holder.address() as Net.AddressInfo).port
    let began = performance.now()
    const taken = P.runToEnd([
      "serve",
      "--port",
      String(port),
      "--database-url",
      url,
      "--token-auth-file",
      tokens.path
    ])
    const takenMs = performance.now() - began
    holder.close()
    expect(taken.status).toBe(1)
    expect(taken.stderr).toContain(`cannot listen on 127.0.0.1:${port}: the port is in use`)
    // the port's fault, not the database's
    expect(taken.stderr).not.toContain("could not start on PostgreSQL")
    expect(takenMs).toBeLessThan(20_000)

    // a URL with no password, against a role that logs in with SCRAM: the process ends, it does not hang
    const scram = process.env["LAZYDIAL_TEST_PASSWORD_DATABASE_URL"]
    expect(scram, "test-postgres.sh exports LAZYDIAL_TEST_PASSWORD_DATABASE_URL").toBeDefined()
    const noPassword = new URL(scram!)
    noPassword.password = ""
    began = performance.now()
    const refused = P.runToEnd([
      "serve",
      "--port",
      "0",
      "--database-url",
      noPassword.toString(),
      "--token-auth-file",
      tokens.path
    ])
    const refusedMs = performance.now() - began
    console.log(
      `port in use: exit ${taken.status} in ${
        Math.round(takenMs)
      } ms; no password against SCRAM: exit ${refused.status} in ${Math.round(refusedMs)} ms`
    )
    expect(refused.status).toBe(1)
    expect(refused.stderr).toContain("password")
    expect(refused.stdout).toBe("")
    expect(refusedMs).toBeLessThan(20_000)
  })
})
