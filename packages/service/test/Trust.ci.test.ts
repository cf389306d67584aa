/**
 * Issue 17's attacks, as processes (run by scripts/test-replicas.sh, not by
 * `pnpm test`): a fleet and a `serve` replica on a real PostgreSQL, with an
 * extra role that may only connect. That role sends the forged notices of the
 * issue; a process on a freed agent port claims an agent's id; a rebuild
 * meets a database that dies, or hangs, in its middle.
 *
 * Every wait is bounded: each test's own deadline (vitest.ci.config.ts), 30 s
 * per request, 30 s per psql call, and the loops below end on a flag.
 */
import * as fs from "node:fs"
import * as Net from "node:net"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import * as P from "./processes.js"

const hasDatabase = P.databaseUrl !== ""
const channel = "lazydial_rebuilds"
const attacker = "lazydial_attacker"
// the service's own role: no superuser, it owns its database and the tables it makes there
const serviceRole = "lazydial_service"
// the validation delay of the issue's replicas: a turn that waits for it takes 500 ms
const validationDelayMs = 500

afterEach(P.stopAll)

interface Turn {
  readonly status: number
  readonly agent: string | undefined
  readonly workspace: string | undefined
  readonly outcome: string | undefined
  readonly reason: string | undefined
  readonly message: string | undefined
  readonly startedAt: number
  readonly ms: number
}

const turn = async (replica: P.Proc, chatId: string, token: string | undefined, message = "hi"): Promise<Turn> => {
  const startedAt = performance.now()
  const result = await P.post(`${replica.url}/chats/${chatId}/turns`, { message }, token)
    .catch(() => ({ status: -1, body: undefined }))
  const reply = typeof result.body?.["reply"] === "string" ? (result.body["reply"] as string).split(" ") : []
  return {
    status: result.status,
    agent: result.body?.["agent_id"],
    // the agent's own answer names its workspace: `ok <agent> <workspace> <message>`
    workspace: reply[2],
    outcome: result.body?.["outcome"],
    reason: result.body?.["reason"],
    message: result.body?.["message"],
    startedAt,
    ms: performance.now() - startedAt
  }
}

const createChat = async (replica: P.Proc, workspaceId: string, token: string | undefined) => {
  const created = await P.post(`${replica.url}/chats`, { workspace_id: workspaceId }, token)
  expect(created.status).toBe(201)
  return created.body!["chat_id"] as string
}

/** Turns each chat in a loop (20 ms apart) until `stop()`; answers every turn. */
const load = (replica: P.Proc, chats: ReadonlyArray<string>, token: string | undefined) => {
  const turns: Array<Turn> = []
  let running = true
  const done = Promise.all(chats.map(async (chatId) => {
    while (running) {
      turns.push(await turn(replica, chatId, token))
      await P.sleep(20)
    }
  }))
  const stop = async () => {
    running = false
    await done
  }
  return { turns, stop }
}

/** GET /health every 50 ms until `stop()`; answers each answer's time. */
const healthProbe = (replica: P.Proc) => {
  const probes: Array<{ readonly at: number; readonly ms: number; readonly status: number }> = []
  let running = true
  const done = (async () => {
    while (running) {
      const at = performance.now()
      const status = await P.get(`${replica.url}/health`).then((r) => r.status, () => -1)
      probes.push({ at, ms: performance.now() - at, status })
      await P.sleep(50)
    }
  })()
  const stop = async () => {
    running = false
    await done
  }
  return { probes, stop }
}

const latestBuild = (workspaceId: string, url: string) => {
  const [buildId = "", agentId = ""] = P.psql(
    `SELECT build_id, coalesce(agent_id, '') FROM lazydial_workspace_builds WHERE workspace_id = '${workspaceId}'
ORDER BY build_number DESC LIMIT 1`,
    url
  ).split("|")
  return { buildId, agentId }
}

/** A notice as the attacking role sends it: `pg_notify` on the directory's channel. */
const forge = (url: string, payload: string) =>
  P.psql(`SELECT pg_notify('${channel}', ${payload})`, P.urlAs(attacker, url))

const forgedNotice = (fields: { workspaceId: string; order: number; buildId: string; agentId: string | null }) =>
  `json_build_object('workspaceId', '${fields.workspaceId}', 'order', ${fields.order}, 'buildId', '${fields.buildId}',
'agentId', ${fields.agentId === null ? "NULL" : `'${fields.agentId}'`})::text`

const randomUuid = () => crypto.randomUUID()

/** Every counter of binding's notices on a replica's /metrics, summed: received, malformed, dropped... */
const noticeCounters = async (replica: P.Proc) => {
  const text = await fetch(`${replica.url}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text())
  return text.split("\n").filter((line) => line.startsWith("lazydial_notice"))
    .reduce((sum, line) => sum + (Number(line.split(" ").at(-1)) || 0), 0)
}

const historyTrigger = `
CREATE TABLE IF NOT EXISTS test_binding_history (
  seq bigserial PRIMARY KEY, chat_id text NOT NULL, workspace_id text, build_id text, agent_id text
);
CREATE OR REPLACE FUNCTION test_binding_history() RETURNS trigger AS $$
BEGIN
  INSERT INTO test_binding_history (chat_id, workspace_id, build_id, agent_id)
  VALUES (NEW.chat_id, NEW.workspace_id, NEW.build_id, NEW.agent_id);
  RETURN NEW;
END $$ LANGUAGE plpgsql SECURITY DEFINER;
DROP TRIGGER IF EXISTS test_binding_history ON lazydial_chat_bindings;
CREATE TRIGGER test_binding_history AFTER INSERT OR UPDATE ON lazydial_chat_bindings
FOR EACH ROW EXECUTE FUNCTION test_binding_history();`

describe.skipIf(!hasDatabase)(
  "trust: a role that may only connect, impostors, and rebuilds (needs LAZYDIAL_TEST_DATABASE_URL)",
  () => {
    const tokens = P.tokenFile([
      { name: "victim" },
      { name: "other" },
      { name: "operator", groups: ["operators"] }
    ])
    const victim = tokens.users["victim"]!.token
    const other = tokens.users["other"]!.token
    const operator = tokens.users["operator"]!.token
    const auth = () => P.tokenArgs(tokens.path)
    let url = ""

    beforeAll(() => {
      if (!hasDatabase) return
      // the attacking role: it may log in and connect (PUBLIC's default), nothing more
      for (const role of [attacker, serviceRole]) {
        P.psql(`DO $$ BEGIN CREATE ROLE ${role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
      }
    })
    afterAll(() => fs.rmSync(tokens.path, { force: true }))

    /** A fleet of two workspaces, one the victim's and one the other user's, on a database of its own; and a replica. */
    const start = async (database: string, ...replicaFlags: Array<string>) => {
      url = P.freshDatabase(database, serviceRole)
      const fleet = await P.fleetOn(P.urlAs(serviceRole, url), 2, ...P.ownersArgs(["victim", "other"]), ...auth())
      const replica = await P.serveOn(
        P.urlAs(serviceRole, url),
        "--validation-delay-ms",
        String(validationDelayMs),
        ...auth(),
        ...replicaFlags
      )
      const owners = fleet.info["owners"] as Record<string, string>
      const ids = fleet.info["workspaces"] as Array<string>
      // without `--owners` (before the CLI takes it) both are the default owner's: the first is the victim's
      const byOwner = (owner: string, i: number) => ids.find((id) => owners[id] === owner) ?? ids[i]!
      return { fleet, replica, victimWorkspace: byOwner("victim", 0), otherWorkspace: byOwner("other", 1) }
    }

    it("forged notices move nothing: every turn of the victim's chats answers 200 from the victim's own agent, and /health stays under 100 ms", async () => {
      const { fleet, otherWorkspace, replica, victimWorkspace } = await start("lazydial_trust_notices")
      expect(victimWorkspace).toBeDefined()
      expect(otherWorkspace).toBeDefined()

      // the role can connect and notify, and read nothing: not the secrets, not the addresses, not the builds
      const attackerUrl = P.urlAs(attacker, url)
      expect(P.psql("SELECT current_user", attackerUrl)).toBe(attacker)
      for (const table of ["lazydial_service_agent_secrets", "lazydial_service_agents", "lazydial_workspace_builds"]) {
        const read = P.psqlResult(`SELECT * FROM ${table}`, attackerUrl)
        expect(read.status).not.toBe(0)
        expect(read.stderr).toMatch(/permission denied/)
      }

      const chats = await Promise.all(Array.from({ length: 4 }, () => createChat(replica, victimWorkspace, victim)))
      for (const chatId of chats) {
        const bound = await turn(replica, chatId, victim)
        expect(bound.status, JSON.stringify(bound)).toBe(200)
      }
      // the other workspace's agent is live, and this replica has dialed it
      const otherChat = await createChat(replica, otherWorkspace, other)
      const otherTurn = await turn(replica, otherChat, other)
      expect(otherTurn.status, JSON.stringify(otherTurn)).toBe(200)
      const otherAgent = otherTurn.agent!
      P.psql(historyTrigger, url)

      const heardBefore = await noticeCounters(replica)
      const before = load(replica, chats, victim)
      const health = healthProbe(replica)
      await P.sleep(500)

      // 1. the victim's current build at a huge order; 2. a random build and the other workspace's live agent
      const current = latestBuild(victimWorkspace, url)
      forge(url, forgedNotice({ workspaceId: victimWorkspace, order: 900_000_000, ...current }))
      forge(
        url,
        forgedNotice({ workspaceId: victimWorkspace, order: 900_000_001, buildId: randomUuid(), agentId: otherAgent })
      )
      await P.sleep(1500)
      // 3. a forged stop
      forge(
        url,
        forgedNotice({ workspaceId: victimWorkspace, order: 900_000_002, buildId: randomUuid(), agentId: null })
      )
      await P.sleep(1500)

      // a real rebuild, whose old agent hangs: the victim's turns follow it to the new agent. The traffic
      // pauses meanwhile: a turn whose exchange reached the old agent as it hung would wait for its answer in
      // vain, which is what a hung agent does, not what a notice does
      await before.stop()
      const drops = await P.sharedDrops(replica)
      const rebuilt = await P.post(`${fleet.url}/workspaces/${victimWorkspace}/rebuild`, { mode: "hang" }, operator)
      expect(rebuilt.status).toBe(200)
      const next = rebuilt.body!["agent_id"] as string
      // and resumes once the replica's read of the rebuild has dropped its connection to the old agent: a turn
      // that borrowed that connection before the read answered (issue 20) reaches the hung agent as well
      expect(await P.eventually(async () => (await P.sharedDrops(replica)) > drops, 5000)).toBe(true)
      const traffic = load(replica, chats, victim)
      // asserted at the end, after the figures are printed
      const followed = await P.eventually(
        async () => traffic.turns.slice(-chats.length).every((t) => t.agent === next),
        10_000
      )
      await P.sleep(1000)
      const settledAt = performance.now()
      const writesBefore = Number(P.psql("SELECT coalesce(max(seq), 0) FROM test_binding_history", url))

      // 4. a notice naming the retired, hung agent (and its build) at a huge order
      forge(url, forgedNotice({ workspaceId: victimWorkspace, order: 900_000_003, ...current }))
      await P.sleep(1500)

      // 5. 50,000 junk payloads in one statement
      const stderrBefore = replica.stderr().length
      const junkFrom = performance.now()
      P.psql(
        `SELECT count(pg_notify('${channel}', CASE g % 4
  WHEN 0 THEN 'junk ' || g
  WHEN 1 THEN '{"workspaceId": ' || g || '}'
  WHEN 2 THEN '{"workspaceId":"${victimWorkspace}","order":' || (900000100 + g) || ',"buildId":"' || gen_random_uuid() || '","agentId":"${otherAgent}"}'
  ELSE repeat('x', 1000) END)) FROM generate_series(1, 50000) g`,
        attackerUrl
      )
      const junkSent = performance.now()
      await P.sleep(2000)
      const junkUntil = performance.now()
      const junkLog = replica.stderr().length - stderrBefore

      // 6. a deeply nested array (7,800 bytes), and a `__proto__` key naming the other workspace's agent
      forge(url, `repeat('[', 3900) || repeat(']', 3900)`)
      forge(
        url,
        `'{"__proto__":{"agentId":"${otherAgent}"},"workspaceId":"${victimWorkspace}","order":900000200,"buildId":"${randomUuid()}","agentId":"${otherAgent}"}'`
      )
      await P.sleep(1500)

      // a new chat of the victim's binds to the victim's agent
      const fresh = await createChat(replica, victimWorkspace, victim)
      const freshTurn = await turn(replica, fresh, victim)
      await traffic.stop()
      await health.stop()

      const turns = [...before.turns, ...traffic.turns]
      const failed = turns.filter((t) => t.status !== 200)
      const elsewhere = turns.filter((t) => t.workspace !== victimWorkspace || t.agent === otherAgent)
      const victimAgents = new Set(
        P.psql(`SELECT agent_id FROM lazydial_service_agents WHERE workspace_id = '${victimWorkspace}'`, url).split(
          "\n"
        )
      )
      const slowAfter = turns.filter((t) => t.startedAt > settledAt + 500 && t.ms >= validationDelayMs)
      const junkHealth = health.probes.filter((p) => p.at >= junkFrom && p.at <= junkUntil)
      const writesAfter = Number(P.psql(
        `SELECT count(*) FROM test_binding_history WHERE seq > ${writesBefore} AND chat_id IN (${
          chats.map((c) => `'${c}'`).join(",")
        })`,
        url
      ))
      // the figures of docs/security.md
      console.log(
        `forged notices: ${turns.length} turns of the victim's chats, ${failed.length} failed, ${elsewhere.length} ` +
          `answered elsewhere, ${slowAfter.length} waited the validation delay after the forged retired-agent notice; ` +
          `50,000 junk payloads sent in ${Math.round(junkSent - junkFrom)} ms, /health max ${
            Math.round(Math.max(...junkHealth.map((p) => p.ms)))
          } ms over ${junkHealth.length} probes meanwhile, ${junkLog} bytes of log; ` +
          `${writesAfter} binding writes after the forged notices; failed turns: ${
            JSON.stringify(
              failed.slice(0, 5).map((t) => ({
                status: t.status,
                reason: t.reason,
                message: t.message,
                ms: Math.round(t.ms)
              }))
            )
          }; notice counters +${(await noticeCounters(replica)) - heardBefore}`
      )

      expect(turns.length).toBeGreaterThan(100)
      expect(followed).toBe(true)
      expect(failed).toEqual([])
      expect(elsewhere).toEqual([])
      for (const t of turns) expect(victimAgents.has(t.agent!)).toBe(true)
      expect(slowAfter).toEqual([])
      expect(writesAfter).toBe(0)
      expect(freshTurn.status).toBe(200)
      expect(freshTurn.agent).toBe(next)
      expect(freshTurn.outcome).toBe("lazy_bind")
      // /health answered throughout the junk, each time within 100 ms
      expect(junkHealth.length).toBeGreaterThan(10)
      expect(junkHealth.filter((p) => p.status !== 200 || p.ms >= 100)).toEqual([])
      // malformed notices are logged at a bounded rate, not one line each
      expect(junkLog).toBeLessThan(256 * 1024)
      // the replica heard them (the attack is not vacuous)
      expect(await noticeCounters(replica)).toBeGreaterThan(heardBefore)

      // from SQL: every chat names an agent and a build the directory holds for its own workspace
      expect(P.psql(
        `SELECT count(*) FROM lazydial_chat_bindings c WHERE c.agent_id IS NOT NULL AND NOT EXISTS (
  SELECT 1 FROM lazydial_workspace_builds b
  WHERE b.workspace_id = c.workspace_id AND b.build_id = c.build_id AND b.agent_id = c.agent_id)`,
        url
      )).toBe("0")

      // the replica still listens: a real rebuild reaches it, and the victim's next turn follows
      const again = await P.post(`${fleet.url}/workspaces/${victimWorkspace}/rebuild`, { mode: "die" }, operator)
      expect(again.status).toBe(200)
      const last = again.body!["agent_id"] as string
      expect(await P.eventually(async () => (await turn(replica, chats[0]!, victim)).agent === last, 5000)).toBe(true)
      expect(replica.child.exitCode).toBeNull()
    })

    it("a secrets table made first by another role: the fleet refuses to start, and writes no secret", () => {
      // the schema as PostgreSQL 14 and older leave it: anyone may create tables in it
      url = P.freshDatabase("lazydial_trust_squatted", serviceRole)
      P.psql("GRANT CREATE ON SCHEMA public TO PUBLIC", url)
      P.psql(
        `CREATE TABLE lazydial_service_agent_secrets (agent_id text PRIMARY KEY, secret text NOT NULL);
GRANT ALL ON lazydial_service_agent_secrets TO PUBLIC`,
        P.urlAs(attacker, url)
      )
      const result = P.runToEnd([
        "fleet",
        "--port",
        "0",
        "--database-url",
        P.urlAs(serviceRole, url),
        "--workspaces",
        "1",
        "--no-auth"
      ])
      expect(result.status).not.toBe(0)
      expect(result.stderr).toContain(`table lazydial_service_agent_secrets is owned by role ${attacker}`)
      expect(result.stdout).toBe("")
      expect(P.psql("SELECT count(*) FROM lazydial_service_agent_secrets", P.urlAs(attacker, url))).toBe("0")
    })

    it("an impostor on a freed agent port is refused, and a restarted fleet takes the workspace back", async () => {
      const { fleet, replica, victimWorkspace } = await start("lazydial_trust_impostor")
      const chatId = await createChat(replica, victimWorkspace, victim)
      const first = await turn(replica, chatId, victim)
      expect(first.status, JSON.stringify(first)).toBe(200)
      const agentId = first.agent!
      const port = Number(P.psql(`SELECT port FROM lazydial_service_agents WHERE agent_id = '${agentId}'`, url))

      // the fleet dies; a process takes its agent's port and claims to be that agent
      fleet.child.kill("SIGKILL")
      await fleet.exited
      const heard: Array<string> = []
      const accepted = new Set<Net.Socket>()
      const impostor = Net.createServer((socket) => {
        accepted.add(socket)
        socket.on("close", () => accepted.delete(socket))
        socket.on("error", () => {})
        let buffer = ""
        socket.on("data", (chunk: Buffer) => {
          buffer += chunk.toString()
          let newline = buffer.indexOf("\n")
          while (newline >= 0) {
            const line = buffer.slice(0, newline)
            buffer = buffer.slice(newline + 1)
            heard.push(line)
            // the bare claim of the issue's impostor, then a made-up proof
            if (line.startsWith("hello")) {
              socket.write(heard.length % 2 === 0 ? `agent ${agentId}\n` : `agent ${agentId} ${"0".repeat(64)}\n`)
            } else if (line.startsWith("turn ")) socket.write(`ok ${agentId} ${victimWorkspace} ${line.slice(5)}\n`)
            newline = buffer.indexOf("\n")
          }
        })
      })
      await new Promise<void>((resolve, reject) => {
        impostor.once("error", reject)
        impostor.listen({ host: "127.0.0.1", port }, () => resolve())
      })
      try {
        const refused = []
        for (let i = 0; i < 6; i++) refused.push(await turn(replica, chatId, victim))
        console.log(
          `impostor: ${refused.length} turns, statuses ${[...new Set(refused.map((t) => t.status))].join(",")} (${
            [...new Set(refused.map((t) => t.reason))].join(",")
          }); the impostor read ${heard.filter((l) => l.startsWith("hello")).length} hellos and ${
            heard.filter((l) => l.startsWith("turn")).length
          } turns`
        )
        expect(refused.filter((t) => t.status === 200)).toEqual([])
        // it was dialed (the test is not vacuous), and no turn reached it
        expect(heard.some((line) => line.startsWith("hello "))).toBe(true)
        expect(heard.filter((line) => line.startsWith("turn"))).toEqual([])
      } finally {
        // its connections go first: a server's close waits for them
        for (const socket of accepted) socket.destroy()
        await new Promise((resolve) => impostor.close(resolve))
      }

      // the fleet again, on the same database: it takes the workspace back with a new agent; the attacking
      // role holds the advisory lock of the address book's first migration meanwhile, which cannot stop it
      const squatter = P.psqlSession(P.urlAs(attacker, url))
      squatter.send("SELECT pg_advisory_lock(7263101); SELECT 'held';")
      expect(await P.eventually(async () => squatter.output().includes("held"), 10_000)).toBe(true)
      const restarted = await P.fleetOn(P.urlAs(serviceRole, url), 2, ...P.ownersArgs(["victim", "other"]), ...auth())
        .finally(squatter.close)
      expect(restarted.info["taken_back"]).toBe(2)
      expect(restarted.info["workspaces"]).toContain(victimWorkspace)
      const taken = latestBuild(victimWorkspace, url).agentId
      expect(taken).not.toBe(agentId)
      expect(
        await P.eventually(async () => {
          const after = await turn(replica, chatId, victim)
          return after.status === 200 && after.agent === taken && after.workspace === victimWorkspace
        }, 10_000)
      ).toBe(true)
    })

    const waitingInsert = "WHERE wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO lazydial_workspace_builds%'"

    /**
     * A rebuild whose record is held: a session locks the builds table against
     * inserts (reads go on), so the fleet's insert of the new build waits there,
     * between the new agent's start and its record. Then the database dies (a
     * fast shutdown, which ends every session) or hangs (SIGSTOP).
     */
    const holdTheRecord = async (fleet: P.Proc, workspaceId: string) => {
      const lock = P.psqlSession(url)
      lock.send("BEGIN; LOCK TABLE lazydial_workspace_builds IN SHARE ROW EXCLUSIVE MODE; SELECT 'locked';")
      expect(await P.eventually(async () => lock.output().includes("locked"), 10_000)).toBe(true)
      const rebuild = P.post(`${fleet.url}/workspaces/${workspaceId}/rebuild`, { mode: "die" }, operator)
        .then((r) => ({ ...r, at: performance.now() }), () => ({ status: -1, body: undefined, at: performance.now() }))
      // the fleet's insert waits for the lock: the rebuild is in its middle
      const waiting = await P.eventually(
        async () => Number(P.psql(`SELECT count(*) FROM pg_stat_activity ${waitingInsert}`, url)) > 0,
        10_000
      )
      expect(waiting).toBe(true)
      return { lock, rebuild }
    }

    /** Whether a connection to 127.0.0.1:`port` is refused (the agent there is stopped). */
    const refuses = (port: number) =>
      new Promise<boolean>((resolve) => {
        const socket = Net.connect({ host: "127.0.0.1", port })
        // a listener answers a local connect at once: no answer in 2 s is no refusal either
        socket.setTimeout(2000, () => {
          socket.destroy()
          resolve(false)
        })
        socket.once("connect", () => {
          socket.destroy()
          resolve(false)
        })
        socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"))
      })

    /**
     * Waits (at most 10 s) until every agent of the workspace but the one the
     * directory names is stopped: the fleet settled what the failed rebuild left.
     */
    const onlyTheCurrentServes = async (workspaceId: string) => {
      const current = latestBuild(workspaceId, url).agentId
      const others = P.psql(
        `SELECT port FROM lazydial_service_agents WHERE workspace_id = '${workspaceId}' AND agent_id <> '${current}'`,
        url
      ).split("\n").filter((line) => line !== "").map(Number)
      // the failed rebuild's address was recorded before its build: there is an agent to settle
      expect(others.length).toBeGreaterThan(0)
      return P.eventually(async () => (await Promise.all(others.map(refuses))).every(Boolean), 10_000)
    }

    /** Turns the chat until one answers 200 from the agent the directory names now, within `ms`. */
    const servesFromCurrent = async (replica: P.Proc, chatId: string, workspaceId: string, ms: number) => {
      let last: Turn | undefined
      const ok = await P.eventually(async () => {
        last = await turn(replica, chatId, victim)
        return last.status === 200 && last.agent === latestBuild(workspaceId, url).agentId
      }, ms)
      return { ok, last }
    }

    it("a rebuild with the database killed in its middle leaves the workspace serving, on its old agent", async () => {
      const stop = process.env["LAZYDIAL_TEST_PG_STOP_COMMAND"]
      const startPg = process.env["LAZYDIAL_TEST_PG_START_COMMAND"]
      expect(stop && startPg).toBeTruthy()
      const { fleet, replica, victimWorkspace } = await start("lazydial_trust_killed")
      const chatId = await createChat(replica, victimWorkspace, victim)
      const bound = await turn(replica, chatId, victim)
      expect(bound.status, JSON.stringify(bound)).toBe(200)
      const old = bound.agent!

      const { lock, rebuild } = await holdTheRecord(fleet, victimWorkspace)
      const killedAt = performance.now()
      try {
        // the rebuild's session first, while the lock still holds its insert (so it cannot commit on the way
        // down), then the whole server
        P.psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity ${waitingInsert}`, url)
        P.shell(stop!)
      } finally {
        P.shell(startPg!)
        await lock.close()
      }
      const answered = await rebuild
      console.log(
        `rebuild, database killed in its middle: answered ${answered.status} after ${
          Math.round(answered.at - killedAt)
        } ms`
      )
      expect(answered.status).not.toBe(200)
      expect(answered.status).toBeGreaterThan(0)

      // the workspace still serves, from the agent the directory still names: the old one
      const { last, ok } = await servesFromCurrent(replica, chatId, victimWorkspace, 15_000)
      expect(ok).toBe(true)
      expect(last!.agent).toBe(old)
      expect(latestBuild(victimWorkspace, url).agentId).toBe(old)
      // the new agent, which was never recorded as current, is stopped
      expect(await onlyTheCurrentServes(victimWorkspace)).toBe(true)
      // and a rebuild after it works as ever
      const after = await P.post(`${fleet.url}/workspaces/${victimWorkspace}/rebuild`, { mode: "die" }, operator)
      expect(after.status).toBe(200)
      expect((await servesFromCurrent(replica, chatId, victimWorkspace, 10_000)).ok).toBe(true)
      expect(fleet.child.exitCode).toBeNull()
    })

    it("a rebuild with the database hung (SIGSTOP) in its middle answers within its deadline and leaves the workspace serving", async () => {
      const { fleet, replica, victimWorkspace } = await start("lazydial_trust_hung")
      const chatId = await createChat(replica, victimWorkspace, victim)
      const bound = await turn(replica, chatId, victim)
      expect(bound.status, JSON.stringify(bound)).toBe(200)

      const { lock, rebuild } = await holdTheRecord(fleet, victimWorkspace)
      const hungAt = performance.now()
      const hung = P.hangPostgres()
      const answered = await rebuild.finally(() => hung.resume())
      await lock.close()
      console.log(
        `rebuild, database hung in its middle: answered ${answered.status} after ${Math.round(answered.at - hungAt)} ms`
      )
      expect(answered.status).not.toBe(200)
      expect(answered.at - hungAt).toBeLessThan(15_000)

      // whether the held insert committed after the resume or not, the workspace serves from the agent the
      // directory names, and the fleet settles on it
      const { ok } = await servesFromCurrent(replica, chatId, victimWorkspace, 15_000)
      expect(ok).toBe(true)
      await P.sleep(1500)
      for (let i = 0; i < 5; i++) {
        const t = await turn(replica, chatId, victim)
        expect(t.status).toBe(200)
        expect(t.agent).toBe(latestBuild(victimWorkspace, url).agentId)
      }
      expect(await onlyTheCurrentServes(victimWorkspace)).toBe(true)
      expect(fleet.child.exitCode).toBeNull()
    })
  }
)
