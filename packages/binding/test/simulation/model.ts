/**
 * The simulation's model of the world: which builds each workspace had, in
 * order, and every version of every chat's row, as the store wrote it. The
 * invariants are checked against it.
 */
import type { BindingStore, ChatBinding as ChatBindingModule } from "@lazydial/binding"
import { type AgentId, type ChatId, CurrentAgent, type WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

type Store = BindingStore.BindingStore["Service"]
type ChatBinding = ChatBindingModule.ChatBinding

export interface WorkspaceModel {
  readonly workspaceId: WorkspaceId
  /** Every build, oldest first. */
  readonly builds: Array<CurrentAgent>
  /** None: stopped. */
  current: Option.Option<CurrentAgent>
}

export interface AgentHome {
  readonly workspaceId: WorkspaceId
  /** The build's position in its workspace's history: larger is newer. */
  readonly index: number
}

export class Model {
  readonly workspaces: Array<WorkspaceModel> = []
  readonly homes = new Map<AgentId, AgentHome>()
  /** Per chat, every row version written, by version. */
  readonly history = new Map<ChatId, Map<number, ChatBinding>>()
  readonly violations: Array<string> = []

  addWorkspace(workspaceId: WorkspaceId): WorkspaceModel {
    const workspace: WorkspaceModel = { workspaceId, builds: [], current: Option.none() }
    this.workspaces.push(workspace)
    return workspace
  }

  addBuild(workspace: WorkspaceModel, agentId: AgentId, buildId: CurrentAgent["buildId"]): CurrentAgent {
    const build = new CurrentAgent({ agentId, buildId })
    this.homes.set(agentId, { workspaceId: workspace.workspaceId, index: workspace.builds.length })
    workspace.builds.push(build)
    workspace.current = Option.some(build)
    return build
  }

  violation(message: string): void {
    // Bounded: a broken invariant tends to break on every step.
    if (this.violations.length < 50) this.violations.push(message)
  }

  /** Invariant: a stored binding never names an agent of another workspace (or an unknown one). */
  checkRow(operation: string, row: ChatBinding): void {
    if (Option.isNone(row.agentId)) return
    const home = this.homes.get(row.agentId.value)
    if (home === undefined) {
      return this.violation(`${operation}: chat ${row.chatId} names unknown agent ${row.agentId.value}`)
    }
    if (Option.isNone(row.workspaceId) || row.workspaceId.value !== home.workspaceId) {
      this.violation(
        `${operation}: chat ${row.chatId} is on workspace ${Option.getOrElse(row.workspaceId, () => "none")} ` +
          `but names agent ${row.agentId.value} of workspace ${home.workspaceId}`
      )
    }
    const build = this.workspaces.find((w) => w.workspaceId === home.workspaceId)?.builds[home.index]
    if (build === undefined || !Option.contains(row.buildId, build.buildId)) {
      this.violation(`${operation}: chat ${row.chatId} pairs agent ${row.agentId.value} with the wrong build`)
    }
  }

  private written(operation: string, row: ChatBinding): void {
    this.checkRow(operation, row)
    let versions = this.history.get(row.chatId)
    if (versions === undefined) {
      versions = new Map()
      this.history.set(row.chatId, versions)
    }
    if (versions.has(row.version)) this.violation(`${operation}: chat ${row.chatId} wrote version ${row.version} twice`)
    versions.set(row.version, row)
  }

  /**
   * Invariant: a binding never moves back to an older build. Checked over the
   * whole history of each row, version after version, so the order in which
   * concurrent writers were observed does not matter.
   */
  checkHistories(): void {
    for (const [chatId, versions] of this.history) {
      const max = Math.max(...versions.keys())
      let previous: ChatBinding | undefined
      for (let version = 1; version <= max; version++) {
        const row = versions.get(version)
        if (row === undefined) {
          this.violation(`chat ${chatId}: version ${version} was never observed`)
          previous = undefined
          continue
        }
        if (
          previous !== undefined && Option.isSome(previous.agentId) && Option.isSome(row.agentId) &&
          Option.makeEquivalence((a: WorkspaceId, b: WorkspaceId) => a === b)(previous.workspaceId, row.workspaceId)
        ) {
          const before = this.homes.get(previous.agentId.value)?.index ?? -1
          const after = this.homes.get(row.agentId.value)?.index ?? -1
          if (after < before) {
            this.violation(`chat ${chatId}: version ${version} moved back from build #${before} to build #${after}`)
          }
        }
        previous = row
      }
    }
  }

  /**
   * The store, with every write observed. Each wrapped write is
   * uninterruptible, so an interrupted turn cannot write a row and skip its
   * observation; the memory store's writes are atomic anyway.
   */
  watch(store: Store): Store {
    return {
      createChat: (options) =>
        Effect.uninterruptible(
          Effect.tap(store.createChat(options), (row) => Effect.sync(() => this.written("createChat", row)))
        ),
      createChild: (parent, options) =>
        Effect.uninterruptible(
          Effect.tap(store.createChild(parent, options), (row) => Effect.sync(() => this.written("createChild", row)))
        ),
      get: (chatId) => Effect.tap(store.get(chatId), (row) => Effect.sync(() => this.checkRow("get", row))),
      setWorkspace: (chatId, workspaceId) =>
        Effect.uninterruptible(
          Effect.tap(store.setWorkspace(chatId, workspaceId), (row) =>
            Effect.sync(() => this.written("setWorkspace", row)))
        ),
      recordAgent: (chatId, write) =>
        Effect.uninterruptible(Effect.tap(store.recordAgent(chatId, write), (result) =>
          Effect.sync(() => {
            if (result._tag === "Recorded") return this.written("recordAgent", result.binding)
            this.checkRow("recordAgent (lost)", result.binding)
          })))
    }
  }
}
