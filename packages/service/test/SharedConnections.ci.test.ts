/**
 * Connections kept across turns, across replicas, as processes on one real
 * PostgreSQL (run by scripts/test-replicas.sh on the compiled build, not by
 * `pnpm test`): each replica keeps one connection to the agent its turns use;
 * a rebuild whose old agent stays alive and keeps its sockets (`hang`) has
 * both replicas close theirs once the read their notice prompted answers,
 * with no turn in between; and no socket is left open after the run.
 *
 * What is counted where: the fleet's `/metrics` counts the sockets its
 * agents accepted and that are still open (`lazydial_fleet_sockets_open`),
 * and those of retired agents (`lazydial_fleet_retired_sockets_open`); each
 * replica's counts its shared connections' dials, borrows and drops (core's
 * `SharedConnections.metrics`).
 */
import { afterEach, describe, expect, it } from "vitest"
import * as Probe from "../src/Probe.js"
import * as P from "./processes.js"

const hasDatabase = P.databaseUrl !== ""

afterEach(P.stopAll)

const turn = (replica: P.Proc, chatId: string) => P.post(`${replica.url}/chats/${chatId}/turns`, { message: "hi" })

const metric = (name: string) => async (proc: P.Proc) => {
  const response = await fetch(`${proc.url}/metrics`, { signal: AbortSignal.timeout(10_000) })
  return Probe.counterTotal(await response.text(), name)
}

const socketsOpen = metric("lazydial_fleet_sockets_open")
const retiredSocketsOpen = metric("lazydial_fleet_retired_sockets_open")
const sharedDials = metric("lazydial_shared_connection_dials_total")
const sharedBorrows = metric("lazydial_shared_connection_borrows_total")
const sharedDrops = metric("lazydial_shared_connection_drops_total")

/** SIGTERM, and its exit code. */
const terminate = async (proc: P.Proc) => {
  proc.child.kill("SIGTERM")
  return await proc.exited
}

describe.skipIf(!hasDatabase)("connections kept across turns, two replicas (needs LAZYDIAL_TEST_DATABASE_URL)", () => {
  it("a rebuild whose old agent hangs: both replicas close their connection to it after the notice's read, with no turn", async () => {
    const fleet = await P.fleet(1)
    const [a, b] = await Promise.all([P.serve(), P.serve()])
    const replicas = [a, b] as const
    const [workspace] = fleet.info["workspaces"] as Array<string>

    // one chat, bound through a; four turns on each replica
    const chatId = (await P.post(`${a.url}/chats`, { workspace_id: workspace })).body!["chat_id"] as string
    expect((await turn(a, chatId)).body!["outcome"]).toBe("lazy_bind")
    const outcomes: Array<unknown> = []
    for (const replica of [a, a, a, b, b, b, b]) outcomes.push((await turn(replica, chatId)).body!["outcome"])
    expect(outcomes).toEqual(Array(7).fill("fast"))
    const agent = (await turn(b, chatId)).body!["agent_id"] as string

    // each replica holds one connection to the agent, opened by its one dial; every other turn borrowed it
    expect(await socketsOpen(fleet)).toBe(2)
    expect(await Promise.all(replicas.map(sharedDials))).toEqual([1, 1])
    expect(await Promise.all(replicas.map(sharedBorrows))).toEqual([4, 5])
    const drops = await Promise.all(replicas.map(sharedDrops))
    const reads = await Promise.all(replicas.map(P.noticeReads))

    // the old agent hangs: alive, its sockets open; only the directory can tell a replica it is retired
    const rebuilt = await P.post(`${fleet.url}/workspaces/${workspace}/rebuild`, { mode: "hang" })
    expect(rebuilt.status).toBe(200)
    const next = rebuilt.body!["agent_id"] as string
    expect(next).not.toBe(agent)

    // no turn: within 5 s both replicas read the directory (prompted by the notice) and closed their connection
    const closed = await P.eventually(async () => (await retiredSocketsOpen(fleet)) === 0, 5000)
    expect({ closed, open: await socketsOpen(fleet), retired: await retiredSocketsOpen(fleet) })
      .toEqual({ closed: true, open: 0, retired: 0 })
    expect((await Promise.all(replicas.map(P.noticeReads))).every((n, i) => n > reads[i]!)).toBe(true)
    expect(await Promise.all(replicas.map(sharedDrops))).toEqual(drops.map((n) => n + 1))
    // the check is not blind: before the reads, those two sockets were the old agent's, and no turn ran since
    expect(await Promise.all(replicas.map(sharedBorrows))).toEqual([4, 5])

    // the next turns go to the new agent, each replica on one new connection
    for (const replica of replicas) {
      const after = await turn(replica, chatId)
      expect(after.status).toBe(200)
      expect(after.body!["agent_id"]).toBe(next)
    }
    expect(await socketsOpen(fleet)).toBe(2)

    // the replicas stop (SIGTERM, exit 0): no socket is left open at the agents
    expect(await Promise.all(replicas.map(terminate))).toEqual([0, 0])
    expect(await P.eventually(async () => (await socketsOpen(fleet)) === 0, 5000)).toBe(true)
  })
})
