/**
 * Authentication and ownership across real processes (run by
 * scripts/test-replicas.sh): a fleet and a `serve` replica on a database of
 * their own, one token file for both. Unauthenticated requests get 401,
 * another user's chats and workspaces are 404s, non-operators get 403 on the
 * control routes; and a process without a usable token file does not start.
 */
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import * as P from "./processes.js"

const hasDatabase = P.databaseUrl !== ""

afterEach(P.stopAll)

interface Answer {
  readonly status: number
  readonly body: Record<string, any> | undefined
  readonly text: string
}

/** Any method, any body, as the holder of `token` (none: anonymous). */
const call = async (method: string, url: string, token?: string, body?: unknown): Promise<Answer> => {
  const headers: Record<string, string> = {}
  if (token !== undefined) headers["authorization"] = `Bearer ${token}`
  if (body !== undefined) headers["content-type"] = "application/json"
  const response = await fetch(url, {
    method,
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000)
  })
  const text = await response.text()
  let parsed: Record<string, any> | undefined
  try {
    parsed = JSON.parse(text) as Record<string, any>
  } catch {
    parsed = undefined
  }
  return { status: response.status, body: parsed, text }
}

describe.skipIf(!hasDatabase)(
  "authentication and ownership across processes (needs LAZYDIAL_TEST_DATABASE_URL)",
  () => {
    let url = ""
    let tokens = { path: "", users: {} as Record<string, P.User> }
    beforeAll(() => {
      url = P.freshDatabase("lazydial_auth_test")
      tokens = P.tokenFile([{ name: "alice" }, { name: "bob" }, { name: "ops", groups: ["operators"] }])
    })
    afterAll(() => fs.rmSync(tokens.path.replace(/\/tokens\.csv$/, ""), { recursive: true, force: true }))

    it("401 without a known token, 404 across users, 403 for non-operators; the owner and the operator are served", async () => {
      const token = (name: string) => tokens.users[name]!.token
      const fleet = await P.start([
        "fleet",
        "--port",
        "0",
        "--database-url",
        url,
        "--workspaces",
        "2",
        "--owners",
        "alice,bob",
        "--token-auth-file",
        tokens.path
      ])
      const replica = await P.start(["serve", "--port", "0", "--database-url", url, "--token-auth-file", tokens.path])
      const owners = fleet.info["owners"] as Record<string, string>
      const workspaces = fleet.info["workspaces"] as Array<string>
      const mine = workspaces.find((id) => owners[id] === "alice")!
      const theirs = workspaces.find((id) => owners[id] === "bob")!
      expect([mine, theirs].every((id) => id !== undefined)).toBe(true)

      // alice's chat on her workspace, bound by a first turn
      const created = await call("POST", `${replica.url}/chats`, token("alice"), { workspace_id: mine })
      expect(created.status).toBe(201)
      const chatId = created.body!["chat_id"] as string
      const first = await call("POST", `${replica.url}/chats/${chatId}/turns`, token("alice"), { message: "hi" })
      expect(first.status).toBe(200)

      // 401: no token, and a token that is not in the file, on every kind of route of both processes
      const routes: ReadonlyArray<readonly [string, string, unknown]> = [
        ["POST", `${replica.url}/chats`, { workspace_id: mine }],
        ["GET", `${replica.url}/chats/${chatId}`, undefined],
        ["PUT", `${replica.url}/chats/${chatId}/workspace`, { workspace_id: null }],
        ["POST", `${replica.url}/chats/${chatId}/children`, undefined],
        ["POST", `${replica.url}/chats/${chatId}/turns`, { message: "hi" }],
        ["GET", `${replica.url}/workspaces`, undefined],
        ["GET", `${fleet.url}/workspaces`, undefined],
        ["POST", `${fleet.url}/workspaces/${mine}/rebuild`, { mode: "die" }],
        ["POST", `${fleet.url}/workspaces/${mine}/stop`, { mode: "die" }],
        ["POST", `${fleet.url}/workspaces/${mine}/start`, undefined]
      ]
      for (const who of [undefined, "0123456789abcdef0123456789abcdef"]) {
        for (const [method, target, body] of routes) {
          const answer = await call(method, target, who, body)
          expect([method, target, answer.status, answer.body?.["_tag"]]).toEqual([method, target, 401, "Unauthorized"])
        }
      }
      // open: /health; /ready and /metrics to this loopback client
      for (const proc of [replica, fleet]) {
        for (const path of ["/health", "/ready", "/metrics"]) {
          expect([path, (await call("GET", `${proc.url}${path}`)).status]).toEqual([path, 200])
        }
      }

      // 404 across users: bob sees no chat of alice's, with the body of a missing chat
      const missing = randomUUID()
      for (
        const [method, suffix, body] of [
          ["GET", "", undefined],
          ["PUT", "/workspace", { workspace_id: theirs }],
          ["POST", "/children", undefined],
          ["POST", "/turns", { message: "hi" }]
        ] as const
      ) {
        const stranger = await call(method, `${replica.url}/chats/${chatId}${suffix}`, token("bob"), body)
        const none = await call(method, `${replica.url}/chats/${missing}${suffix}`, token("bob"), body)
        expect([method, suffix, stranger.status]).toEqual([method, suffix, 404])
        expect(stranger.text.replaceAll(chatId, "<id>")).toBe(none.text.replaceAll(missing, "<id>"))
      }
      // ... nor binds a chat to alice's workspace, nor lists it, on the replica or the fleet
      const foreign = await call("POST", `${replica.url}/chats`, token("bob"), { workspace_id: mine })
      expect([foreign.status, foreign.body?.["_tag"]]).toEqual([404, "WorkspaceNotFound"])
      const own = await call("POST", `${replica.url}/chats`, token("bob"), {})
      expect(own.status).toBe(201)
      const moved = await call("PUT", `${replica.url}/chats/${own.body!["chat_id"]}/workspace`, token("bob"), {
        workspace_id: mine
      })
      expect(moved.status).toBe(404)
      for (const proc of [replica, fleet]) {
        const listed = (await call("GET", `${proc.url}/workspaces`, token("bob"))).body as unknown as Array<
          { workspace_id: string }
        >
        expect(listed.map((w) => w.workspace_id)).toEqual([theirs])
      }

      // 403: the owner is no operator
      for (const [path, body] of [["rebuild", { mode: "die" }], ["stop", { mode: "die" }]] as const) {
        const answer = await call("POST", `${fleet.url}/workspaces/${mine}/${path}`, token("alice"), body)
        expect([path, answer.status, answer.body?.["_tag"]]).toEqual([path, 403, "Forbidden"])
      }
      // the operator: rebuild, stop, a rebuild of the stopped workspace is a 409, start, and a replica sends them away
      const rebuilt = await call("POST", `${fleet.url}/workspaces/${mine}/rebuild`, token("ops"), { mode: "die" })
      expect(rebuilt.status).toBe(200)
      const after = await call("POST", `${replica.url}/chats/${chatId}/turns`, token("alice"), { message: "again" })
      expect(after.body?.["agent_id"]).toBe(rebuilt.body!["agent_id"])
      expect((await call("POST", `${fleet.url}/workspaces/${mine}/stop`, token("ops"), { mode: "die" })).status).toBe(
        200
      )
      const stopped = await call("POST", `${fleet.url}/workspaces/${mine}/rebuild`, token("ops"), { mode: "die" })
      expect([stopped.status, stopped.body?.["_tag"]]).toEqual([409, "WorkspaceStopped"])
      expect(stopped.body?.["message"]).toContain("start it first")
      const started = await call("POST", `${fleet.url}/workspaces/${mine}/start`, token("ops"))
      expect(started.status).toBe(200)
      const onReplica = await call("POST", `${replica.url}/workspaces/${mine}/rebuild`, token("ops"), { mode: "die" })
      expect([onReplica.status, onReplica.body?.["_tag"]]).toEqual([409, "NotTheFleet"])
      // alice's chat turns on the started workspace's agent
      const resumed = await call("POST", `${replica.url}/chats/${chatId}/turns`, token("alice"), { message: "back" })
      expect([resumed.status, resumed.body?.["agent_id"]]).toEqual([200, started.body!["agent_id"]])
    })

    it("a chat owners table that another role made first is refused at start: its rows could give any chat to anyone", () => {
      // the service as a role of its own (a superuser is a member of every role: nothing would be foreign to it),
      // owning its database, and an intruder that may create tables in its schema
      const own = P.freshDatabase("lazydial_auth_foreign_test")
      for (const role of ["lazydial_auth_service", "lazydial_auth_intruder"]) {
        P.psql(`DO $$ BEGIN CREATE ROLE ${role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`)
      }
      P.psql("ALTER DATABASE lazydial_auth_foreign_test OWNER TO lazydial_auth_service")
      P.psql("GRANT CREATE ON SCHEMA public TO lazydial_auth_intruder", own)
      const service = P.urlAs("lazydial_auth_service", own)
      P.psql(
        "CREATE TABLE lazydial_service_chat_owners (chat_id text PRIMARY KEY, owner text NOT NULL, created_at timestamptz)",
        P.urlAs("lazydial_auth_intruder", own)
      )
      const refused = P.runToEnd(["serve", "--port", "0", "--database-url", service, "--token-auth-file", tokens.path])
      expect(refused.status).toBe(1)
      expect(refused.stderr).toContain(
        "table lazydial_service_chat_owners is owned by role lazydial_auth_intruder, not by this service's role"
      )
    })

    it("a process with no token file refuses to start unless --no-auth, naming both; a bad file is refused with its line", () => {
      for (const command of ["serve", "fleet"]) {
        const none = P.runToEnd([command, "--port", "0", "--database-url", url], { LAZYDIAL_TOKEN_AUTH_FILE: "" })
        // an empty variable is refused as empty; unset, the message names both ways
        expect(none.status).toBe(2)
        const unset = P.runToEnd([command, "--port", "0", "--database-url", url])
        expect([command, unset.status]).toEqual([command, 2])
        expect(unset.stderr).toContain("--token-auth-file PATH or LAZYDIAL_TOKEN_AUTH_FILE")
        expect(unset.stderr).toContain("--no-auth")
        expect(unset.stdout).toBe("")
      }
      const dir = fs.mkdtempSync("/tmp/lazydial-bad-tokens-")
      const bad = `${dir}/tokens.csv`
      fs.writeFileSync(bad, `# users\n${"a".repeat(32)},alice,1\n${"b".repeat(32)},bob\n`, { mode: 0o600 })
      for (const command of ["serve", "fleet"]) {
        const refused = P.runToEnd([command, "--port", "0", "--database-url", url, "--token-auth-file", bad])
        expect([command, refused.status]).toEqual([command, 1])
        expect(refused.stderr).toContain(`the token file ${bad} line 3: expected token,user,uid`)
        expect(refused.stderr).not.toContain("b".repeat(32))
        // from the variable too
        const fromEnv = P.runToEnd([command, "--port", "0", "--database-url", url], { LAZYDIAL_TOKEN_AUTH_FILE: bad })
        expect(fromEnv.status).toBe(1)
        expect(fromEnv.stderr).toContain("line 3")
        // a file and --no-auth contradict each other
        const both = P.runToEnd([command, "--port", "0", "--database-url", url, "--token-auth-file", bad, "--no-auth"])
        expect(both.status).toBe(2)
        expect(both.stderr).toContain("contradict")
      }
      fs.rmSync(dir, { recursive: true, force: true })
    })
  }
)
