/**
 * The control plane: which agent each workspace has now. Rebuilds write it;
 * the service's `AgentLookup` reads it.
 *
 * `layerDirectory` writes binding's `AgentDirectory` (the SQL table of
 * workspace builds, whose lookup is the service's `AgentLookup`); `layerMemory`
 * keeps a map, for tests that need no database.
 *
 * @since 0.1.0
 */
import { AgentDirectory } from "@lazydial/binding"
import { AgentLookup, type CurrentAgent, CurrentAgent as CurrentAgentClass, type WorkspaceId } from "@lazydial/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { AgentAddresses } from "./AgentAddresses.js"
import { DatabaseUnavailable, databaseUnavailable } from "./Chats.js"
import { Fleet, type RetireMode, type StopMode } from "./Fleet.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class ControlPlane extends Context.Service<
  ControlPlane,
  {
    /** Records the workspace's current build and agent (None: stopped). */
    readonly setCurrent: (
      workspaceId: WorkspaceId,
      current: Option.Option<CurrentAgent>
    ) => Effect.Effect<void, DatabaseUnavailable>
    /** Reads the current agent for reports and checks; not counted as a lookup. */
    readonly peek: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<CurrentAgent>, DatabaseUnavailable>
    /** Every workspace the control plane knows, in the order they were first recorded. */
    readonly list: Effect.Effect<
      ReadonlyArray<readonly [WorkspaceId, Option.Option<CurrentAgent>]>,
      DatabaseUnavailable
    >
  }
>()("@lazydial/service/ControlPlane") {}

/**
 * The control plane and the `AgentLookup` that reads it, in memory.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<ControlPlane | AgentLookup.AgentLookup> = Layer.effectContext(Effect.sync(() => {
  const current = new Map<WorkspaceId, Option.Option<CurrentAgent>>()
  const read = (workspaceId: WorkspaceId) => Effect.sync(() => current.get(workspaceId) ?? Option.none())
  return Context.make(
    ControlPlane,
    ControlPlane.of({
      setCurrent: (workspaceId, agent) => Effect.sync(() => void current.set(workspaceId, agent)),
      peek: read,
      list: Effect.sync(() => Array.from(current.entries()))
    })
  ).pipe(Context.add(AgentLookup.AgentLookup, AgentLookup.AgentLookup.of({ current: read })))
}))

/**
 * The control plane over binding's `AgentDirectory`: a rebuild records a new
 * build with its agent, a stop records a build with no agent. The list of
 * workspaces is the `AgentAddresses` book's, so every replica sees the same.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDirectory: Layer.Layer<
  ControlPlane,
  never,
  AgentDirectory.AgentDirectory | AgentAddresses
> = Layer.effect(
  ControlPlane,
  Effect.gen(function*() {
    const directory = yield* AgentDirectory.AgentDirectory
    const addresses = yield* AgentAddresses
    const peek = (workspaceId: WorkspaceId) =>
      Effect.mapError(
        directory.current(workspaceId),
        (cause) => new DatabaseUnavailable({ operation: "ControlPlane.peek", cause })
      )
    return ControlPlane.of({
      setCurrent: (workspaceId, current) =>
        Effect.andThen(
          addresses.addWorkspace(workspaceId),
          Option.match(current, {
            onNone: () => directory.stopWorkspace(workspaceId),
            onSome: (agent) => directory.recordBuild(workspaceId, agent)
          }).pipe(databaseUnavailable("ControlPlane.setCurrent"))
        ).pipe(Effect.asVoid),
      peek,
      list: Effect.flatMap(
        addresses.workspaces,
        (all) => Effect.forEach(all, (workspaceId) => Effect.map(peek(workspaceId), (c) => [workspaceId, c] as const))
      )
    })
  })
)

/**
 * Starts a workspace: a new agent, its address recorded, then recorded as
 * current (in that order: a replica that sees the agent can dial it).
 *
 * @since 0.1.0
 * @category operations
 */
export const startWorkspace = (
  workspaceId: WorkspaceId,
  port?: number
): Effect.Effect<CurrentAgent, DatabaseUnavailable, Fleet | ControlPlane | AgentAddresses> =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const control = yield* ControlPlane
    const addresses = yield* AgentAddresses
    const agent = yield* fleet.start(workspaceId, port)
    yield* addresses.record({ agentId: agent.agentId, workspaceId, host: "127.0.0.1", port: agent.port })
    const current = new CurrentAgentClass({ agentId: agent.agentId, buildId: agent.buildId })
    yield* control.setCurrent(workspaceId, Option.some(current))
    return current
  })

/**
 * Rebuilds a workspace: the old agent dies, hangs, dies and leaves its port
 * to the new one, or dies in the middle of every handshake; the new agent (new
 * id, new build) is recorded as current. A stopped workspace is left as it is.
 *
 * @since 0.1.0
 * @category operations
 */
export const rebuild = (
  workspaceId: WorkspaceId,
  mode: RetireMode
): Effect.Effect<Option.Option<CurrentAgent>, DatabaseUnavailable, Fleet | ControlPlane | AgentAddresses> =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const control = yield* ControlPlane
    const current = yield* control.peek(workspaceId)
    if (Option.isNone(current)) return Option.none()
    const old = fleet.info(current.value.agentId)
    yield* fleet.retire(current.value.agentId, mode)
    const port = mode === "reuse_port" ? Option.getOrUndefined(Option.map(old, (info) => info.port)) : undefined
    return Option.some(yield* startWorkspace(workspaceId, port))
  })

/**
 * Stops a workspace: its agent dies or hangs, and a build with no agent is
 * recorded, so lookups answer `NoCurrentAgent`. Stopping a stopped workspace
 * changes nothing.
 *
 * @since 0.2.0
 * @category operations
 */
export const stop = (
  workspaceId: WorkspaceId,
  mode: StopMode
): Effect.Effect<void, DatabaseUnavailable, Fleet | ControlPlane> =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const control = yield* ControlPlane
    const current = yield* control.peek(workspaceId)
    if (Option.isNone(current)) return
    // recorded first: a replica that dials the dying agent from now on finds the stop when it looks up
    yield* control.setCurrent(workspaceId, Option.none())
    yield* fleet.retire(current.value.agentId, mode)
  })
