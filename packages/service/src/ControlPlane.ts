/**
 * The control plane: which agent each workspace has now, and who owns each
 * workspace. Rebuilds write it; the service's `AgentLookup` reads it.
 *
 * `layerDirectory` writes binding's `AgentDirectory` (the SQL table of
 * workspace builds, whose lookup is the service's `AgentLookup`); `layerMemory`
 * keeps a map, for tests that need no database.
 *
 * ## Changes of a workspace's agents, and why none can strand it
 *
 * The operations below run where the agents run (the `Fleet`), one at a time
 * per workspace (`Fleet.exclusive`). Each starts a new agent, records it, and
 * only then retires the old one:
 *
 * | operation | of a workspace that is | does | fails with |
 * |---|---|---|---|
 * | `startWorkspace` | new | records it with its owner, starts and records an agent | `DatabaseUnavailable` |
 * | `rebuild` | running | starts a new agent, records it, then retires the old one (`RetireMode`) | `UnknownWorkspace`, `WorkspaceStopped`, `DatabaseUnavailable` |
 * | `stop` | running (stopped: nothing to do) | records the stop, then retires the agent (`StopMode`) | `UnknownWorkspace`, `DatabaseUnavailable` |
 * | `start` | stopped | starts a new agent and records it | `UnknownWorkspace`, `WorkspaceNotStopped`, `DatabaseUnavailable` |
 * | `settle` | marked unsettled, or taken back | makes the fleet's agents agree with the directory | `DatabaseUnavailable` |
 *
 * A failure before the record leaves the old agent serving, and the directory
 * naming it. A failure *of* the record is not always a record that did not
 * happen: a statement whose answer timed out may still commit once a hung
 * server resumes. So a change that fails after the fleet acted leaves both
 * agents serving and marks the workspace unsettled; `settle` (run by
 * `keepSettled`) then asks the directory which agent it holds and retires the
 * others: the new agent when the record did not happen, the old one when it
 * did. At no point is the agent the directory names a retired one.
 *
 * A fleet that starts on a database with recorded workspaces takes them back
 * (`takeBack`): each running workspace, whose agent died with the fleet that
 * ran it, gets a new agent, recorded as a new build.
 *
 * @since 0.1.0
 */
import { AgentDirectory } from "@lazydial/binding"
import {
  type AgentId,
  AgentLookup,
  type CurrentAgent,
  CurrentAgent as CurrentAgentClass,
  WorkspaceId
} from "@lazydial/core"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { AgentAddresses, defaultOwner as addressesDefaultOwner } from "./AgentAddresses.js"
import { DatabaseUnavailable, databaseUnavailable } from "./Chats.js"
import { type AgentInfo, Fleet, type RetireMode, type StopMode } from "./Fleet.js"

/**
 * The owner of a workspace created without one (`startWorkspace` with no
 * owner, `fleet` with no `--owners`), and of workspaces recorded before
 * owners existed.
 *
 * @since 0.2.0
 * @category constants
 */
export const defaultOwner: string = addressesDefaultOwner

/**
 * No workspace has this id.
 *
 * @since 0.2.0
 * @category errors
 */
export class UnknownWorkspace extends Schema.TaggedError<UnknownWorkspace>()("UnknownWorkspace", {
  workspaceId: WorkspaceId
}) {
  override get message(): string {
    return `workspace ${this.workspaceId} does not exist: GET /workspaces lists the workspaces`
  }
}

/**
 * A rebuild of a stopped workspace: there is no agent to replace. Start it
 * first.
 *
 * @since 0.2.0
 * @category errors
 */
export class WorkspaceStopped extends Schema.TaggedError<WorkspaceStopped>()("WorkspaceStopped", {
  workspaceId: WorkspaceId
}) {
  override get message(): string {
    return `workspace ${this.workspaceId} is stopped: start it first (POST /workspaces/${this.workspaceId}/start)`
  }
}

/**
 * A start of a workspace that is not stopped: it has an agent already.
 *
 * @since 0.2.0
 * @category errors
 */
export class WorkspaceNotStopped extends Schema.TaggedError<WorkspaceNotStopped>()("WorkspaceNotStopped", {
  workspaceId: WorkspaceId
}) {
  override get message(): string {
    return `workspace ${this.workspaceId} is running: rebuild it for a new agent, or stop it first`
  }
}

/**
 * One workspace as the control plane lists it: its id, its current agent
 * (None: stopped), and its owner.
 *
 * @since 0.2.0
 * @category models
 */
export type ListedWorkspace = readonly [workspaceId: WorkspaceId, current: Option.Option<CurrentAgent>, owner: string]

/**
 * @since 0.1.0
 * @category tags
 */
export class ControlPlane extends Context.Service<
  ControlPlane,
  {
    /**
     * Records the workspace's current build and agent (None: stopped). A
     * workspace not yet added is added, owned by `defaultOwner`.
     */
    readonly setCurrent: (
      workspaceId: WorkspaceId,
      current: Option.Option<CurrentAgent>
    ) => Effect.Effect<void, DatabaseUnavailable>
    /** Reads the current agent for reports and checks; not counted as a lookup. */
    readonly peek: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<CurrentAgent>, DatabaseUnavailable>
    /** Every workspace the control plane knows, with its owner, in the order they were first recorded. */
    readonly list: Effect.Effect<ReadonlyArray<ListedWorkspace>, DatabaseUnavailable>
    /** Records a workspace and its owner; a workspace already recorded keeps its first owner. */
    readonly addWorkspace: (workspaceId: WorkspaceId, owner: string) => Effect.Effect<void, DatabaseUnavailable>
    /** The workspace's owner; None: no such workspace. */
    readonly ownerOf: (workspaceId: WorkspaceId) => Effect.Effect<Option.Option<string>, DatabaseUnavailable>
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
  const owners = new Map<WorkspaceId, string>()
  const read = (workspaceId: WorkspaceId) => Effect.sync(() => current.get(workspaceId) ?? Option.none())
  const add = (workspaceId: WorkspaceId, owner: string) => {
    if (!owners.has(workspaceId)) owners.set(workspaceId, owner)
  }
  return Context.make(
    ControlPlane,
    ControlPlane.of({
      setCurrent: (workspaceId, agent) =>
        Effect.sync(() => {
          add(workspaceId, defaultOwner)
          current.set(workspaceId, agent)
        }),
      peek: read,
      list: Effect.sync(() =>
        Array.from(owners, ([workspaceId, owner]): ListedWorkspace => [
          workspaceId,
          current.get(workspaceId) ?? Option.none(),
          owner
        ])
      ),
      addWorkspace: (workspaceId, owner) => Effect.sync(() => add(workspaceId, owner)),
      ownerOf: (workspaceId) => Effect.sync(() => Option.fromNullishOr(owners.get(workspaceId)))
    })
  ).pipe(Context.add(AgentLookup.AgentLookup, AgentLookup.AgentLookup.of({ current: read })))
}))

/**
 * The control plane over binding's `AgentDirectory`: a rebuild records a new
 * build with its agent, a stop records a build with no agent. The list of
 * workspaces and their owners is the `AgentAddresses` book's, so every
 * replica sees the same.
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
          addresses.addWorkspace(workspaceId, defaultOwner),
          Option.match(current, {
            onNone: () => directory.stopWorkspace(workspaceId),
            onSome: (agent) => directory.recordBuild(workspaceId, agent)
          }).pipe(databaseUnavailable("ControlPlane.setCurrent"))
        ).pipe(Effect.asVoid),
      peek,
      list: Effect.flatMap(
        addresses.workspaces,
        (all) =>
          Effect.forEach(
            all,
            ({ owner, workspaceId }) =>
              Effect.map(peek(workspaceId), (current): ListedWorkspace => [workspaceId, current, owner])
          )
      ),
      addWorkspace: addresses.addWorkspace,
      ownerOf: addresses.ownerOf
    })
  })
)

type FleetServices = Fleet | ControlPlane | AgentAddresses

// Records a started agent: its address and secret first, then as the
// workspace's current agent (in that order: a replica that sees the agent can
// dial it).
const record = (workspaceId: WorkspaceId, agent: AgentInfo) =>
  Effect.gen(function*() {
    const control = yield* ControlPlane
    const addresses = yield* AgentAddresses
    yield* addresses.record({
      agentId: agent.agentId,
      workspaceId,
      host: "127.0.0.1",
      port: agent.port,
      secret: agent.secret
    })
    const current = new CurrentAgentClass({ agentId: agent.agentId, buildId: agent.buildId })
    yield* control.setCurrent(workspaceId, Option.some(current))
    return current
  })

const requireWorkspace = (workspaceId: WorkspaceId) =>
  Effect.gen(function*() {
    const control = yield* ControlPlane
    const owner = yield* control.ownerOf(workspaceId)
    if (Option.isNone(owner)) return yield* new UnknownWorkspace({ workspaceId })
  })

// Runs `change` as the workspace's one change in flight; when it fails (or is
// interrupted) after the fleet acted, the workspace is left to `settle`.
const changing = <A, E, R>(
  workspaceId: WorkspaceId,
  change: (
    unsettleOnFailure: <A2, E2, R2>(acted: Effect.Effect<A2, E2, R2>) => Effect.Effect<A2, E2, R2>
  ) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R | Fleet> =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    return yield* fleet.exclusive(workspaceId)(
      change((acted) => Effect.onError(acted, () => fleet.unsettle(workspaceId)))
    )
  })

// `changing`, for a workspace that must exist: its current agent read under its lock, for `change` to decide on.
const changingKnown = <A, E, R>(
  workspaceId: WorkspaceId,
  change: (
    current: Option.Option<CurrentAgent>,
    unsettleOnFailure: <A2, E2, R2>(acted: Effect.Effect<A2, E2, R2>) => Effect.Effect<A2, E2, R2>
  ) => Effect.Effect<A, E, R>
) =>
  changing(workspaceId, (acted) =>
    Effect.gen(function*() {
      yield* requireWorkspace(workspaceId)
      const current = yield* Effect.flatMap(ControlPlane, (control) => control.peek(workspaceId))
      return yield* change(current, acted)
    }))

/**
 * Creates a workspace owned by `owner` (`defaultOwner` unless given), with a
 * running agent, recorded.
 *
 * @since 0.1.0
 * @category operations
 */
export const startWorkspace = (
  workspaceId: WorkspaceId,
  owner: string = defaultOwner
): Effect.Effect<CurrentAgent, DatabaseUnavailable, FleetServices> =>
  changing(workspaceId, (acted) =>
    Effect.gen(function*() {
      const fleet = yield* Fleet
      const control = yield* ControlPlane
      yield* control.addWorkspace(workspaceId, owner)
      const agent = yield* fleet.start(workspaceId)
      return yield* acted(record(workspaceId, agent))
    }))

/**
 * Rebuilds a running workspace: a new agent (new id, new build, new secret)
 * starts and is recorded as current; only then does the old agent die, hang,
 * leave its port to the new one (`reuse_port`), or die in the middle of every
 * handshake. A stopped workspace fails with `WorkspaceStopped`.
 *
 * @since 0.1.0
 * @category operations
 */
export const rebuild = (
  workspaceId: WorkspaceId,
  mode: RetireMode
): Effect.Effect<CurrentAgent, UnknownWorkspace | WorkspaceStopped | DatabaseUnavailable, FleetServices> =>
  changingKnown(workspaceId, (current, acted) =>
    Effect.gen(function*() {
      if (Option.isNone(current)) return yield* new WorkspaceStopped({ workspaceId })
      const fleet = yield* Fleet
      const next = yield* fleet.start(workspaceId)
      return yield* acted(Effect.gen(function*() {
        const recorded = yield* record(workspaceId, next)
        yield* fleet.retire(current.value.agentId, mode, next.agentId)
        return recorded
      }))
    }))

/**
 * Stops a running workspace: a build with no agent is recorded, so lookups
 * answer `NoCurrentAgent`, then its agent dies or hangs. Stopping a stopped
 * workspace changes nothing.
 *
 * @since 0.2.0
 * @category operations
 */
export const stop = (
  workspaceId: WorkspaceId,
  mode: StopMode
): Effect.Effect<void, UnknownWorkspace | DatabaseUnavailable, FleetServices> =>
  changingKnown(workspaceId, (current, acted) =>
    Effect.gen(function*() {
      if (Option.isNone(current)) return
      const fleet = yield* Fleet
      const control = yield* ControlPlane
      // recorded first: a replica that dials the dying agent from now on finds the stop when it looks up
      yield* acted(Effect.andThen(
        control.setCurrent(workspaceId, Option.none()),
        fleet.retire(current.value.agentId, mode)
      ))
    }))

/**
 * Starts a stopped workspace again: a new agent, recorded as current. A
 * workspace that is running fails with `WorkspaceNotStopped`.
 *
 * @since 0.2.0
 * @category operations
 */
export const start = (
  workspaceId: WorkspaceId
): Effect.Effect<CurrentAgent, UnknownWorkspace | WorkspaceNotStopped | DatabaseUnavailable, FleetServices> =>
  changingKnown(workspaceId, (current, acted) =>
    Effect.gen(function*() {
      if (Option.isSome(current)) return yield* new WorkspaceNotStopped({ workspaceId })
      const fleet = yield* Fleet
      const next = yield* fleet.start(workspaceId)
      return yield* acted(record(workspaceId, next))
    }))

/**
 * Makes this fleet's agents of a workspace agree with the directory, which
 * is the truth:
 *
 * | the directory names | this fleet | settle |
 * |---|---|---|
 * | an agent that serves here | | retires its other serving agents (`die`) |
 * | an agent that does not serve here (dead, or another fleet's) | | takes the workspace back: records a serving agent of it (the newest), or a new one, then retires the others |
 * | no agent (stopped) | | retires every serving agent of it |
 *
 * Answers the agent the workspace now has (None: stopped). When the
 * directory cannot answer, or a record fails, the workspace stays unsettled,
 * for the next try.
 *
 * @since 0.2.0
 * @category operations
 */
export const settle = (
  workspaceId: WorkspaceId
): Effect.Effect<Option.Option<AgentId>, DatabaseUnavailable, FleetServices> =>
  changing(workspaceId, () =>
    Effect.gen(function*() {
      const fleet = yield* Fleet
      const control = yield* ControlPlane
      const current = yield* control.peek(workspaceId)
      const serving = fleet.serving(workspaceId)
      let keep = Option.map(current, (agent) => agent.agentId)
      const named = Option.getOrUndefined(keep)
      if (named !== undefined && !serving.some((agent) => agent.agentId === named)) {
        // a failed take-back left a serving agent: record it rather than start one more per try
        const newest = serving.at(-1)
        const agent = newest ?? (yield* fleet.start(workspaceId))
        keep = Option.some((yield* record(workspaceId, agent)).agentId)
      }
      for (const agent of serving) {
        if (Option.isNone(keep) || agent.agentId !== keep.value) yield* fleet.retire(agent.agentId, "die")
      }
      yield* fleet.settled(workspaceId)
      return keep
    }))

/**
 * Takes back the running workspaces recorded in the database, for a fleet
 * that starts where another ran: each gets a new agent, recorded (`settle`
 * of each). Answers the running workspaces, in the order they were first
 * recorded; stopped workspaces stay stopped.
 *
 * @since 0.2.0
 * @category operations
 */
export const takeBack: Effect.Effect<ReadonlyArray<WorkspaceId>, DatabaseUnavailable, FleetServices> = Effect.gen(
  function*() {
    const control = yield* ControlPlane
    const all = yield* control.list
    const running: Array<WorkspaceId> = []
    for (const [workspaceId, current] of all) {
      if (Option.isNone(current)) continue
      yield* settle(workspaceId)
      running.push(workspaceId)
    }
    return running
  }
)

/**
 * How often `keepSettled` looks for unsettled workspaces.
 *
 * @since 0.2.0
 * @category constants
 */
export const settleInterval: Duration.Duration = Duration.seconds(1)

/**
 * Settles, every `interval`, each workspace a failed change left unsettled,
 * until it is settled. Costs nothing while none is: only the fleet's own
 * memory is read. Run it in the fleet's scope.
 *
 * @since 0.2.0
 * @category operations
 */
export const keepSettled = (
  interval: Duration.Input = settleInterval
): Effect.Effect<never, never, FleetServices> =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    return yield* Effect.forever(Effect.andThen(
      Effect.sleep(interval),
      Effect.flatMap(fleet.unsettled, (unsettled) =>
        Effect.forEach(unsettled, (workspaceId) =>
          settle(workspaceId).pipe(
            Effect.catch((error) => Effect.logWarning(`workspace ${workspaceId} not settled yet: ${error.message}`))
          ), { discard: true }))
    ))
  })
