/**
 * Replicas as processes on one real PostgreSQL (run by
 * scripts/test-replicas.sh, not by `pnpm test`): a fleet and two `serve`
 * replicas share chats and agents; database faults answer typed 503s and no
 * replica exits; SIGTERM lets turns finish; start-up errors go to stderr.
 */
import * as fs from "node:fs"
import { afterEach, describe, expect, it } from "vitest"
import * as P from "./processes.js"

const hasDatabase = P.databaseUrl !== ""

afterEach(P.stopAll)

const turn = (replica: P.Proc, chatId: string, message = "hi") =>
  P.post(`${replica.url}/chats/${chatId}/turns`, { message })

const historyTrigger = `
CREATE TABLE IF NOT EXISTS test_binding_history (
  seq bigserial PRIMARY KEY, chat_id text NOT NULL, workspace_id text, build_id text, agent_id text
);
CREATE OR REPLACE FUNCTION test_binding_history() RETURNS trigger AS $$
BEGIN
  INSERT INTO test_binding_history (chat_id, workspace_id, build_id, agent_id)
  VALUES (NEW.chat_id, NEW.workspace_id, NEW.build_id, NEW.agent_id);
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS test_binding_history ON lazydial_chat_bindings;
CREATE TRIGGER test_binding_history AFTER INSERT OR UPDATE ON lazydial_chat_bindings
FOR EACH ROW EXECUTE FUNCTION test_binding_history();`

describe.skipIf(!hasDatabase)("two replicas and a fleet (needs LAZYDIAL_TEST_DATABASE_URL)", () => {
  it("share chats and agents, take 100 concurrent turns of one chat, and converge after a rebuild", async () => {
    const fleet = await P.fleet(2)
    const [a, b] = await Promise.all([P.serve(), P.serve()])
    P.psql(historyTrigger)
    const [workspace] = fleet.info["workspaces"] as Array<string>

    // created on replica 1, turned on replica 2
    const created = await P.post(`${a.url}/chats`, { workspace_id: workspace })
    expect(created.status).toBe(201)
    const chatId = created.body!["chat_id"] as string
    const first = await turn(b, chatId)
    expect(first.status).toBe(200)
    expect(first.body!["outcome"]).toBe("lazy_bind")
    const agent = first.body!["agent_id"] as string
    // a second chat, bound through replica 1, for the convergence check
    const other = (await P.post(`${b.url}/chats`, { workspace_id: workspace })).body!["chat_id"] as string
    expect((await turn(a, other)).status).toBe(200)

    // 100 concurrent turns of one chat, split over both replicas
    const many = await Promise.all(Array.from({ length: 100 }, (_, i) => turn(i % 2 === 0 ? a : b, chatId, `t${i}`)))
    expect(many.map((r) => r.status)).toEqual(Array(100).fill(200))
    expect(new Set(many.map((r) => r.body!["agent_id"]))).toEqual(new Set([agent]))

    // a rebuild: both replicas converge to the new agent
    const rebuilt = await P.post(`${fleet.url}/workspaces/${workspace}/rebuild`, { mode: "die" })
    expect(rebuilt.status).toBe(200)
    const next = rebuilt.body!["agent_id"] as string
    expect(next).not.toBe(agent)
    for (const [replica, chat] of [[a, chatId], [b, chatId], [b, other], [a, other]] as const) {
      const after = await turn(replica, chat)
      expect(after.status).toBe(200)
      expect(after.body!["agent_id"]).toBe(next)
      expect(after.body!["chat"]["agent_id"]).toBe(next)
    }
    // the other replica learns the workspace list from the database too
    const listed = await P.get(`${b.url}/workspaces`)
    expect((listed.body as unknown as Array<{ agent_id: string }>).map((w) => w.agent_id)).toContain(next)

    // from SQL: no row names an agent of another workspace
    expect(P.psql(`SELECT count(*) FROM lazydial_chat_bindings c
JOIN lazydial_service_agents a ON a.agent_id = c.agent_id WHERE a.workspace_id <> c.workspace_id`)).toBe("0")
    // and no row went back to an older build
    expect(P.psql(`WITH h AS (
  SELECT h.seq, h.chat_id, b.build_number FROM test_binding_history h
  JOIN lazydial_workspace_builds b ON b.build_id = h.build_id)
SELECT count(*) FROM h h1 JOIN h h2 ON h1.chat_id = h2.chat_id AND h2.seq > h1.seq AND h2.build_number < h1.build_number`))
      .toBe("0")
    // the history saw the rebuild (the check above is not vacuous)
    expect(Number(P.psql(`SELECT count(DISTINCT build_id) FROM test_binding_history WHERE chat_id = '${chatId}'`)))
      .toBe(2)
  })

  // "hang" is the rebuild the notice must save a turn from: the old agent
  // accepts and never answers, so without the notice the turn waits out the
  // validation delay (5 s here) before it looks up. "die" fails fast and would
  // look up at once. Either way the notice leaves nothing to look up.
  it.each(["hang", "die"] as const)(
    "a fleet rebuild (%s): both replicas switch on the next turn by notice, with 0 lookups (counters and database)",
    async (mode) => {
      const validationDelayMs = 5000
      const fleet = await P.fleet(1)
      const [a, b] = await Promise.all([
        P.serve("--validation-delay-ms", String(validationDelayMs)),
        P.serve("--validation-delay-ms", String(validationDelayMs))
      ])
      const replicas = [a, b] as const
      const [workspace] = fleet.info["workspaces"] as Array<string>

      // one chat bound (lazy bind, one lookup) by each replica, then turned on
      // the other too: both replicas are warm and each has looked the
      // workspace up once, so each view knows its build
      const chats = await Promise.all(replicas.map(async (replica) => {
        const chatId = (await P.post(`${replica.url}/chats`, { workspace_id: workspace })).body!["chat_id"] as string
        const bound = await turn(replica, chatId)
        expect(bound.body!["outcome"]).toBe("lazy_bind")
        return chatId
      }))
      for (const [replica, chatId] of [[a, chats[1]!], [b, chats[0]!]] as const) {
        expect((await turn(replica, chatId)).status).toBe(200)
      }

      const before = await Promise.all(replicas.map(P.lookupCounters))
      const read = await Promise.all(replicas.map(P.noticeReads))
      // the replicas' lazy binds were seen at the database (the measure below is not blind)
      expect(P.databaseLookups()).toBeGreaterThanOrEqual(2)
      const rebuilt = await P.post(`${fleet.url}/workspaces/${workspace}/rebuild`, { mode })
      expect(rebuilt.status).toBe(200)
      const next = rebuilt.body!["agent_id"] as string
      // The NOTIFY was committed with the build, before the fleet answered,
      // and reaches a listening replica in milliseconds; a notice is only a
      // hint, and the replica learns the new build from the directory read it
      // prompts. Wait (at most 5 s) until both replicas' prompted reads moved,
      // so the turns below start after them, as a real deployment's next turns would.
      const bothRead = await P.eventually(
        async () => (await Promise.all(replicas.map(P.noticeReads))).every((n, i) => n > read[i]!),
        5000
      )
      expect(bothRead).toBe(true)
      // after the rebuild and the reads it prompted: what the turns below add is theirs
      const atTheDatabase = P.databaseLookups()

      // each replica's first turn after the rebuild, each on the chat the other bound
      const timed = async (replica: P.Proc, chatId: string) => {
        const started = performance.now()
        const result = await turn(replica, chatId)
        return { ...result, ms: performance.now() - started }
      }
      const first = [await timed(a, chats[1]!), await timed(b, chats[0]!)]
      // then the chat each bound itself, now bound by the other to the new agent
      const second = [await timed(a, chats[0]!), await timed(b, chats[1]!)]
      for (const result of [...first, ...second]) {
        expect(result.status).toBe(200)
        expect(result.body!["agent_id"]).toBe(next)
        expect(result.body!["chat"]["agent_id"]).toBe(next)
        // a turn that waited for the validation delay would take 5 s
        expect(result.ms).toBeLessThan(2000)
      }
      expect(first.map((r) => r.body!["outcome"])).toEqual(["switched_by_notice", "switched_by_notice"])
      expect(second.map((r) => r.body!["outcome"])).toEqual(["fast", "fast"])

      // 0 lookups: no replica's counter moved, nor the count at the database
      expect(await Promise.all(replicas.map(P.lookupCounters))).toEqual(before)
      expect(P.databaseLookups()).toBe(atTheDatabase)
      // the counters are not blind: each replica's lazy bind was counted
      for (const counters of before) {
        expect(counters.directoryLookups).toBeGreaterThanOrEqual(1)
        expect(counters.bindingLookups).toBeGreaterThanOrEqual(1)
      }
    }
  )

  // Issue 18: a stopped workspace's chat waited the whole validation delay on every turn of a replica that did not
  // bind it (0.53-0.58 s), although that replica heard the stop's notice. The stop's agent hangs: a replica that
  // dialed it would wait the delay (2 s here) before it learned anything.
  it("a stopped workspace's chat answers 503 no_agent in under 50 ms on both replicas, the one that did not bind it too", async () => {
    const validationDelayMs = 2000
    const fleet = await P.fleet(1)
    const [a, b] = await Promise.all([
      P.serve("--validation-delay-ms", String(validationDelayMs)),
      P.serve("--validation-delay-ms", String(validationDelayMs))
    ])
    const [workspace] = fleet.info["workspaces"] as Array<string>
    const chatId = (await P.post(`${a.url}/chats`, { workspace_id: workspace })).body!["chat_id"] as string
    // bound by a; b serves a turn of it on the bound agent (no lookup: b never looked the workspace up)
    expect((await turn(a, chatId)).body!["outcome"]).toBe("lazy_bind")
    expect((await turn(b, chatId)).body!["outcome"]).toBe("fast")

    const read = await Promise.all([a, b].map(P.noticeReads))
    const stopped = await P.post(`${fleet.url}/workspaces/${workspace}/stop`, { mode: "hang" })
    expect(stopped.status).toBe(200)
    // the stop's notice prompts each replica's read of the directory: wait (at most 5 s) for both, as a real
    // deployment's next turns would come after them
    expect(
      await P.eventually(async () => (await Promise.all([a, b].map(P.noticeReads))).every((n, i) => n > read[i]!), 5000)
    )
      .toBe(true)

    for (const replica of [b, a]) {
      const times: Array<number> = []
      for (let i = 0; i < 5; i++) {
        const started = performance.now()
        const result = await turn(replica, chatId)
        times.push(performance.now() - started)
        expect(result.status).toBe(503)
        expect(result.body!["reason"]).toBe("no_agent")
      }
      const sorted = [...times].sort((x, y) => x - y)
      console.log(
        `stopped workspace, ${replica === a ? "the replica that bound the chat" : "the other replica"}: ` +
          `${sorted.map((ms) => ms.toFixed(1)).join(", ")} ms`
      )
      // the median of five under 50 ms, and none anywhere near the validation delay a dial of the hung agent waits
      expect(sorted[2]!).toBeLessThan(50)
      expect(sorted[4]!).toBeLessThan(validationDelayMs / 4)
    }
  })

  it("database faults: every turn succeeds or is a typed 503, no replica exits, both recover within 2 s", async () => {
    const stop = process.env["LAZYDIAL_TEST_PG_STOP_COMMAND"]
    const startPg = process.env["LAZYDIAL_TEST_PG_START_COMMAND"]
    expect(stop && startPg).toBeTruthy()
    const fleet = await P.fleet(2)
    const replicas = await Promise.all([P.serve(), P.serve()])
    const [workspace] = fleet.info["workspaces"] as Array<string>
    const chats = await Promise.all(replicas.map(async (replica) => {
      const chatId = (await P.post(`${replica.url}/chats`, { workspace_id: workspace })).body!["chat_id"] as string
      expect((await turn(replica, chatId)).status).toBe(200)
      return chatId
    }))

    const statuses: Array<{ status: number; reason: unknown }> = []
    let running = true
    const load = Promise.all(replicas.map(async (replica, i) => {
      while (running) {
        const result = await turn(replica, chats[i]!).catch(() => ({ status: -1, body: undefined }))
        statuses.push({ status: result.status, reason: result.body?.["reason"] })
        await P.sleep(20)
      }
    }))
    await P.sleep(300)
    // terminate every backend of the service
    P.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE application_name = 'lazydial' AND pid <> pg_backend_pid()`)
    await P.sleep(500)
    // then stop PostgreSQL for 3 s
    P.shell(stop!)
    await P.sleep(1000)
    const during = await Promise.all(replicas.map((replica) => P.get(`${replica.url}/ready`)))
    expect(during.map((r) => r.status)).toEqual([503, 503])
    expect(during[0]!.body!["reason"]).toBe("database_unavailable")
    await P.sleep(2000)
    P.shell(startPg!)
    const restarted = performance.now()
    // both answer a turn again within 2 s of the restart
    const recovered = await Promise.all(replicas.map(async (replica, i) => {
      for (;;) {
        const result = await turn(replica, chats[i]!)
        if (result.status === 200) return performance.now() - restarted
        if (performance.now() - restarted > 5000) return Infinity
        await P.sleep(50)
      }
    }))
    running = false
    await load
    // the figures of docs/reliability.md
    console.log(
      `faults: ${statuses.length} turns, ${statuses.filter((s) => s.status === 200).length} ok, ${
        statuses.filter((s) => s.status === 503).length
      } typed 503 (${[...new Set(statuses.map((s) => s.reason).filter(Boolean))].join(", ")}); recovered after ${
        recovered.map((ms) => Math.round(ms)).join(" and ")
      } ms`
    )
    expect(Math.max(...recovered)).toBeLessThan(2000)
    const ready = await Promise.all(replicas.map((replica) => P.get(`${replica.url}/ready`)))
    expect(ready.map((r) => r.status)).toEqual([200, 200])

    // every turn: a success or a typed 503; and some of them were 503s
    const bad = statuses.filter((s) => !(s.status === 200 || (s.status === 503 && typeof s.reason === "string")))
    expect(bad).toEqual([])
    expect(statuses.some((s) => s.status === 503 && s.reason === "database_unavailable")).toBe(true)
    for (const replica of replicas) expect(replica.child.exitCode).toBeNull()
  })

  it("SIGTERM with turns in flight: they finish, and the replica exits 0 within the grace period", async () => {
    const fleet = await P.fleet(1)
    // notices off: with them the turns below would switch at once, and none would be in flight at SIGTERM
    const replica = await P.serve("--validation-delay-ms", "1500", "--grace-ms", "8000", "--notices", "off")
    const [workspace] = fleet.info["workspaces"] as Array<string>
    const chats = await Promise.all(Array.from({ length: 5 }, async () => {
      const chatId = (await P.post(`${replica.url}/chats`, { workspace_id: workspace })).body!["chat_id"] as string
      expect((await turn(replica, chatId)).status).toBe(200)
      return chatId
    }))
    // a hung agent: the bound chats' next turns wait for the validation delay (1.5 s), then switch
    expect((await P.post(`${fleet.url}/workspaces/${workspace}/rebuild`, { mode: "hang" })).status).toBe(200)
    const inFlight = Promise.all(chats.map((chatId) => turn(replica, chatId)))
    await P.sleep(400)
    const signalled = performance.now()
    replica.child.kill("SIGTERM")
    const results = await inFlight
    expect(results.map((r) => r.status)).toEqual(Array(5).fill(200))
    expect(results.map((r) => r.body!["outcome"])).toEqual(Array(5).fill("switched"))
    expect(await replica.exited).toBe(0)
    expect(performance.now() - signalled).toBeLessThan(8000)
  })
})

describe("start-up errors: non-zero exit, the message on stderr", () => {
  // past the authentication check (a missing token file is a usage error of its own), to the database's errors
  const noAuth = () => ["--no-auth"]

  it("a mysql:// URL is refused with exit code 2", () => {
    const result = P.runToEnd(["serve", "--port", "0", "--database-url", "mysql://u:secret@127.0.0.1:3306/x"])
    expect(result.status).toBe(2)
    expect(result.stderr).toContain("mysql://")
    expect(result.stderr).not.toContain("secret")
    expect(result.stdout).toBe("")
  })

  it("an empty LAZYDIAL_DATABASE_URL is refused with exit code 2", () => {
    const result = P.runToEnd(["serve", "--port", "0"], { LAZYDIAL_DATABASE_URL: "" })
    expect(result.status).toBe(2)
    expect(result.stderr).toMatch(/invalid LAZYDIAL_DATABASE_URL: got an empty string/)
  })

  it("a closed port: the error names host and port, never the password", () => {
    const result = P.runToEnd([
      "serve",
      "--port",
      "0",
      "--database-url",
      "postgres://u:secret@127.0.0.1:1/x",
      ...noAuth()
    ])
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("127.0.0.1:1")
    expect(result.stderr).not.toContain("secret")
    expect(result.stdout).toBe("")
  })

  it.skipIf(!hasDatabase)("a wrong password (needs LAZYDIAL_TEST_DATABASE_URL)", () => {
    // a role that must give a password: put a scram rule first in pg_hba.conf
    P.psql(`DO $$ BEGIN CREATE ROLE lazydial_pw LOGIN PASSWORD 'right';
EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
    const hba = P.psql("SHOW hba_file")
    const rules = fs.readFileSync(hba, "utf8")
    if (!rules.startsWith("host all lazydial_pw")) {
      fs.writeFileSync(hba, `host all lazydial_pw 127.0.0.1/32 scram-sha-256\n${rules}`)
      P.psql("SELECT pg_reload_conf()")
    }
    const url = new URL(P.databaseUrl)
    url.username = "lazydial_pw"
    url.password = "wrong-secret"
    const result = P.runToEnd(["serve", "--port", "0", "--database-url", url.toString(), ...noAuth()])
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain(`${url.hostname}:${url.port}`)
    expect(result.stderr).toMatch(/password/i)
    expect(result.stderr).not.toContain("wrong-secret")
  })

  it.skipIf(!hasDatabase)("a schema from the future (needs LAZYDIAL_TEST_DATABASE_URL)", async () => {
    const url = new URL(P.databaseUrl)
    url.pathname = "/lazydial_future"
    P.psql("DROP DATABASE IF EXISTS lazydial_future")
    P.psql("CREATE DATABASE lazydial_future")
    // migrate it with this version, then pretend a newer one ran migration 999
    await P.start(["serve", "--port", "0", "--database-url", url.toString(), ...noAuth()])
    await P.stopAll()
    P.psql(
      "INSERT INTO lazydial_binding_migrations (migration_id, name) VALUES (999, 'from_the_future')",
      url.toString()
    )
    const result = P.runToEnd(["serve", "--port", "0", "--database-url", url.toString(), ...noAuth()])
    expect(result.status).not.toBe(0)
    expect(result.stderr).toContain("migration 999")
    expect(result.stderr).toContain(`${url.hostname}:${url.port}`)
    expect(result.stdout).toBe("")
  })
})
