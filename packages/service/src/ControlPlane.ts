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
import { Fleet, type RetireMode } from "./Fleet.js"

/**
 * @since 0.1.0
 * @category tags
 */
export class ControlPlane extends Context.Tag("@lazydial/service/ControlPlane")<
  ControlPlane,
  {
    /** Records the workspace's current build and agent (None: stopped). */
    readonly setCurrent: (workspaceId: WorkspaceId, current: Option.Option<CurrentAgent>) => Effect.Effect<void>
    /** Reads the current agent for reports and checks; not counted as a lookup. */
    readonly peek: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<CurrentAgent>>
    /** Every workspace the control plane knows, in the order they were first recorded. */
    readonly list: Effect.Effect<ReadonlyArray<readonly [WorkspaceId, Option.Option<CurrentAgent>]>>
  }
>() {}

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
 * build with its agent, a stop records a build with no agent.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerDirectory: Layer.Layer<ControlPlane, never, AgentDirectory.AgentDirectory> = Layer.effect(
  ControlPlane,
  Effect.gen(function*() {
    const directory = yield* AgentDirectory.AgentDirectory
    const known: Array<WorkspaceId> = []
    const remember = (workspaceId: WorkspaceId) =>
      Effect.sync(() => {
        if (!known.includes(workspaceId)) known.push(workspaceId)
      })
    return ControlPlane.of({
      setCurrent: (workspaceId, current) =>
        Effect.zipRight(
          remember(workspaceId),
          Option.match(current, {
            onNone: () => directory.stopWorkspace(workspaceId),
            onSome: (agent) => directory.recordBuild(workspaceId, agent)
          })
        ).pipe(Effect.asVoid, Effect.orDie),
      peek: (workspaceId) => Effect.orDie(directory.current(workspaceId)),
      list: Effect.suspend(() =>
        Effect.forEach(
          [...known],
          (workspaceId) =>
            Effect.map(Effect.orDie(directory.current(workspaceId)), (current) => [workspaceId, current] as const)
        )
      )
    })
  })
)

/**
 * Starts a workspace: a new agent, recorded as current.
 *
 * @since 0.1.0
 * @category operations
 */
export const startWorkspace = (workspaceId: WorkspaceId): Effect.Effect<CurrentAgent, never, Fleet | ControlPlane> =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const control = yield* ControlPlane
    const agent = yield* fleet.start(workspaceId)
    const current = new CurrentAgentClass({ agentId: agent.agentId, buildId: agent.buildId })
    yield* control.setCurrent(workspaceId, Option.some(current))
    return current
  })

/**
 * Rebuilds a workspace: the old agent dies, hangs, dies and leaves its port
 * to the new one, or dies in the middle of every handshake; the new agent (new id, new build) is recorded as current.
 * A stopped workspace is left as it is.
 *
 * @since 0.1.0
 * @category operations
 */
export const rebuild = (
  workspaceId: WorkspaceId,
  mode: RetireMode
): Effect.Effect<Option.Option<CurrentAgent>, never, Fleet | ControlPlane> =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const control = yield* ControlPlane
    const current = yield* control.peek(workspaceId)
    if (Option.isNone(current)) return Option.none()
    const old = fleet.info(current.value.agentId)
    yield* fleet.retire(current.value.agentId, mode)
    const port = mode === "reuse_port" ? Option.getOrUndefined(Option.map(old, (info) => info.port)) : undefined
    const next = yield* fleet.start(workspaceId, port)
    const recorded = new CurrentAgentClass({ agentId: next.agentId, buildId: next.buildId })
    yield* control.setCurrent(workspaceId, Option.some(recorded))
    return Option.some(recorded)
  })
