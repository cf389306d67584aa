/**
 * The HTTP API of the one-process run, served after its report (`--port`):
 * the agents, the chats and the API in this process, on the run's database.
 *
 * @since 0.2.0
 */
import { Processes, Server, Service, type Settings } from "@lazydial/service"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"

/**
 * `workspaces` workspaces in this process, given to `owners` in turn, and the
 * API over them, served until SIGTERM or SIGINT. Its address and the
 * workspaces' ids go to stderr: stdout carries the report only.
 *
 * @since 0.2.0
 * @category running
 */
export const serve = (options: {
  readonly port: number
  readonly workspaces: number
  readonly databaseUrl: Option.Option<Processes.DatabaseTarget>
  /** binding's database settings (`Settings.database`), PostgreSQL only. */
  readonly database?: Settings.DatabaseSettings | undefined
  /** The users the workspaces are given to, in turn; none: `ControlPlane.defaultOwner`. */
  readonly owners?: ReadonlyArray<string> | undefined
  /** Passed on to `Server.layer`. */
  readonly server?: Processes.ServerOptions | undefined
}): Effect.Effect<never, Processes.StartupFailed> =>
  Effect.gen(function*() {
    const all = Server.layer({ ...options.server, port: options.port }).pipe(
      Layer.provideMerge(
        Service.layer({ validationDelay: "1 second", dialTimeout: "10 seconds" }, Service.makeCounters())
      )
    )
    return yield* Processes.runOn(
      options.databaseUrl,
      options.database,
      all,
      Effect.gen(function*() {
        const ids = yield* Processes.startWorkspaces(options.workspaces, options.owners)
        const address = yield* Server.baseUrl
        yield* Console.error(
          `serving the chat API on ${address} (Ctrl-C to stop). Workspaces:\n  ${ids.join("\n  ")}\n` +
            `try: curl -s -X POST ${address}/chats -H "authorization: Bearer $TOKEN" ` +
            `-H 'content-type: application/json' -d '{"workspace_id":"${ids[0]}"}'`
        )
        return yield* Effect.never
      })
    )
  })
