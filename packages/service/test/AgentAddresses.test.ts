/**
 * The SQL address book on the embedded database: addresses with their
 * secrets, owners written once, and caches that cannot grow with what they
 * are asked.
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import type { AgentId, WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import * as AgentAddresses from "../src/AgentAddresses.js"
import { BoundedCache, makeSql } from "../src/internal/agentAddresses.js"
import * as Handshake from "../src/internal/handshake.js"
import * as Service from "../src/Service.js"

// safe: fresh UUIDs are valid ids
const newWorkspace = () => randomUUID() as WorkspaceId
const newAgent = () => randomUUID() as AgentId

/** A book on the database, with caches of its own: each call is another replica. */
const makeBook = makeSql

layer(Service.layerDatabase(undefined), { timeout: 60_000 })("AgentAddresses.layerSql", (it) => {
  it.effect("an address is recorded with its secret; another replica resolves both, byte for byte", () =>
    Effect.gen(function*() {
      const writer = yield* makeBook
      const reader = yield* makeBook
      const agentId = newAgent()
      const workspaceId = newWorkspace()
      const secret = Handshake.newSecret()
      yield* writer.record({ agentId, workspaceId, host: "127.0.0.1", port: 4321, secret: Redacted.make(secret) })
      const resolved = Option.getOrThrow(yield* reader.resolve(agentId))
      expect([resolved.agentId, resolved.workspaceId, resolved.host, resolved.port]).toEqual([
        agentId,
        workspaceId,
        "127.0.0.1",
        4321
      ])
      expect(Buffer.from(Redacted.value(resolved.secret)).equals(Buffer.from(secret))).toBe(true)
      // the secret does not show where an address is printed
      expect(String(resolved.secret)).not.toContain(Buffer.from(secret).toString("hex"))
      deepStrictEqual(yield* reader.resolve(newAgent()), Option.none())
    }))

  it.effect("an address with no secret (recorded by an older version) is not dialable", () =>
    Effect.gen(function*() {
      const book = yield* makeBook
      const sql = yield* SqlClient.SqlClient
      const agentId = newAgent()
      yield* sql`INSERT INTO ${sql(AgentAddresses.agentsTable)} (agent_id, workspace_id, host, port)
VALUES (${agentId}, ${newWorkspace()}, '127.0.0.1', 1)`
      deepStrictEqual(yield* book.resolve(agentId), Option.none())
    }))

  it.effect("the secrets table grants nothing to PUBLIC", () =>
    Effect.gen(function*() {
      yield* makeBook
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly grants: number; readonly acl: string | null }>`SELECT
  (SELECT count(*)::int FROM aclexplode(c.relacl) WHERE grantee = 0) AS grants, c.relacl::text AS acl
FROM pg_class c WHERE c.relname = ${AgentAddresses.agentSecretsTable}`
      expect(rows[0]!.grants).toBe(0)
      // an explicit ACL (the REVOKE ran): not the default, which a later default privilege could widen
      expect(rows[0]!.acl).not.toBeNull()
    }))

  it.effect("a workspace keeps its first owner; one recorded before owners existed is defaultOwner's", () =>
    Effect.gen(function*() {
      const book = yield* makeBook
      const sql = yield* SqlClient.SqlClient
      const alice = newWorkspace()
      const old = newWorkspace()
      yield* book.addWorkspace(alice, "alice")
      yield* book.addWorkspace(alice, "mallory")
      yield* sql`INSERT INTO ${sql(AgentAddresses.workspacesTable)} (workspace_id) VALUES (${old})`
      const reader = yield* makeBook
      deepStrictEqual(yield* reader.ownerOf(alice), Option.some("alice"))
      deepStrictEqual(yield* reader.ownerOf(old), Option.some(AgentAddresses.defaultOwner))
      deepStrictEqual(yield* reader.ownerOf(newWorkspace()), Option.none())
      // Both rows may carry the same created_at (one clock tick): their order is not the point here.
      const listed = (yield* reader.workspaces).filter((w) => w.workspaceId === alice || w.workspaceId === old)
      const byId = (a: { readonly workspaceId: string }, b: { readonly workspaceId: string }) =>
        a.workspaceId < b.workspaceId ? -1 : 1
      expect([...listed].sort(byId)).toEqual(
        [{ workspaceId: alice, owner: "alice" }, { workspaceId: old, owner: "default" }].sort(byId)
      )
    }))
})

describe("BoundedCache", () => {
  it("keeps its capacity, and lets the least recently used go first", () => {
    const cache = new BoundedCache<string, number>(2)
    cache.set("a", 1)
    cache.set("b", 2)
    expect(cache.get("a")).toBe(1)
    cache.set("c", 3)
    expect(cache.size).toBe(2)
    expect(cache.get("b")).toBeUndefined()
    expect(cache.get("a")).toBe(1)
    expect(cache.get("c")).toBe(3)
    for (let i = 0; i < 1000; i++) cache.set(`k${i}`, i)
    expect(cache.size).toBe(2)
  })
})
