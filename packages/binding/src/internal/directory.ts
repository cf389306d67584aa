import type { AgentId, InvalidOption, WorkspaceId } from "@lazydial/core"
import { AgentLookupError, BuildId, CurrentAgent } from "@lazydial/core"
import { Options as CoreOptions } from "@lazydial/core"
import * as Cause from "effect/Cause"
import * as DateTime from "effect/DateTime"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Request from "effect/Request"
import * as RequestResolver from "effect/RequestResolver"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type { AgentDirectory, Options } from "../AgentDirectory.js"
import type { Migrated } from "../Database.js"
import type { BindingStoreError } from "../Errors.js"
import { RebuildNotices } from "../RebuildNotices.js"
import * as builds from "./builds.js"
import { databaseError, Deadlines } from "./database.js"
import { withDeadline } from "./deadline.js"
import { noticeOf } from "./notices.js"

/** @internal */
export const defaultBatchWindow: Duration.Duration = Duration.millis(5)

/** @internal */
export const maxBatchWindow: Duration.Duration = Duration.seconds(1)

/** @internal */
export const queriesTotal = Metric.counter("lazydial_directory_queries_total", {
  description: "SQL queries made by latest-agent lookups of the agent directory",
  incremental: true
})

/** @internal */
export const lookupsTotal = Metric.counter("lazydial_directory_lookups_total", {
  description: "Latest-agent lookups answered by the agent directory, shared or not",
  incremental: true
})

class GetCurrentAgent extends Request.TaggedClass("GetCurrentAgent")<
  { readonly workspaceId: WorkspaceId },
  Option.Option<CurrentAgent>,
  AgentLookupError
> {}

const lookupError = (workspaceId: WorkspaceId) => (error: BindingStoreError | Schema.SchemaError) =>
  new AgentLookupError({
    workspaceId,
    detail: Schema.isSchemaError(error) ? databaseError("AgentDirectory.current")(error).detail : error.detail,
    cause: error
  })

// Two builds of one workspace recorded at once may pick the same number: the
// loser's insert fails on the key, and only that is tried again.
const isUniqueViolation = (error: SqlError): boolean => error.reason._tag === "UniqueViolation"

const checkWindow = (input: unknown): Effect.Effect<Duration.Duration, InvalidOption> =>
  CoreOptions.boundedDuration("batchWindow", input, maxBatchWindow)

/** @internal */
export const makeSql = (
  options?: Options
): Effect.Effect<
  AgentDirectory["Service"],
  InvalidOption,
  SqlClient.SqlClient | Migrated | Scope.Scope
> =>
  Effect.gen(function*() {
    const window = yield* checkWindow(options?.batchWindow ?? defaultBatchWindow)
    const sql = yield* SqlClient.SqlClient
    const deadlines = yield* Deadlines
    const notices = Option.getOrUndefined(yield* Effect.serviceOption(RebuildNotices))

    // Effect 4's RequestResolver batches the lookups of a window (its delay)
    // into one query for every workspace of the batch, within the query
    // deadline, and caches no answer unless asked (`withCache`). Two lookups
    // of one workspace in a batch share its row. A lookup never joins a query
    // already sent: it starts the next batch, so its answer is never older
    // than its call. Up to 0.1 two maps of our own did this, and also shared
    // a query in flight; measured against this, they made as many queries or
    // more (1,000 lookups of 10 workspaces spread over 100 ms: 11-15 queries
    // for both; over 1 s: 133-160 ours, 149-157 Effect's), in 60 more lines.
    // Effect 3's `dataLoader`, which they replaced, lost its batch at a zero
    // window; Effect 4's resolver runs a batch whose delay ended at once
    // (`addEntry` checks for it), and `batchWindow: 0` batches one tick.
    const resolver = RequestResolver.make<GetCurrentAgent>((entries) => {
      const workspaces = [...new Set(entries.map((entry) => entry.request.workspaceId))]
      const operation = "AgentDirectory.current"
      return builds.latest(sql, workspaces).pipe(
        Effect.mapError(databaseError(operation)),
        withDeadline(operation, deadlines.query),
        Effect.tap(() => Metric.update(queriesTotal, 1)),
        Effect.matchCauseEffect({
          onFailure: (cause) =>
            Effect.forEach(entries, (entry) => {
              const error = Cause.findErrorOption(cause)
              return Request.complete(
                entry,
                Option.isSome(error)
                  ? Exit.fail(lookupError(entry.request.workspaceId)(error.value))
                  : Exit.failCause(cause as Cause.Cause<never>) // safe: a cause with no failure holds defects and interruptions only
              )
            }, { discard: true }),
          onSuccess: (latest) =>
            Effect.forEach(entries, (entry) => {
              const workspaceId = entry.request.workspaceId
              const raw = latest.get(workspaceId)
              if (raw === undefined) return Request.succeed(entry, Option.none())
              // Rows are decoded one by one, per request: a row that breaks the
              // schema fails the lookup of its own workspace, not the whole batch's.
              return Request.completeEffect(
                entry,
                builds.decodeLatestRow(raw).pipe(
                  // every lookup answer is news for the connectors' views
                  Effect.tap((row) =>
                    notices === undefined ? Effect.void : notices.observe(
                      noticeOf(
                        workspaceId,
                        row.build_number,
                        row.build_id,
                        Option.fromNullishOr(row.agent_id),
                        row.superseded
                      )
                    )
                  ),
                  Effect.map((row) =>
                    row.agent_id === null
                      ? Option.none()
                      : Option.some(new CurrentAgent({ agentId: row.agent_id, buildId: row.build_id }))
                  ),
                  Effect.mapError(lookupError(workspaceId))
                )
              )
            }, { discard: true })
        })
      )
    })

    // the window sleeps on the Effect clock; a zero window is one scheduler tick
    const batched = RequestResolver.setDelayEffect(
      resolver,
      Duration.isZero(window) ? Effect.yieldNow : Effect.sleep(window)
    )
    const current = (workspaceId: WorkspaceId) =>
      Effect.request(new GetCurrentAgent({ workspaceId }), batched).pipe(
        Effect.tap(Metric.update(lookupsTotal, 1)),
        Effect.withSpan("AgentDirectory.current", { attributes: { "lazydial.workspace_id": workspaceId } })
      )

    const now = Effect.map(DateTime.now, DateTime.toDate)

    const insertBuild = (
      operation: string,
      workspaceId: WorkspaceId,
      buildId: BuildId,
      agentId: AgentId | null
    ) =>
      Effect.flatMap(now, (createdAt) =>
        // The NOTIFY is part of the insert's statement, so of its transaction:
        // PostgreSQL delivers it exactly when the build commits, never for a
        // build that rolled back. Its payload is the workspace id alone: a
        // notice only tells a replica where to look (see `RebuildNotices`).
        sql<{ readonly build_number: number }>`WITH inserted AS (
  INSERT INTO lazydial_workspace_builds (workspace_id, build_number, build_id, agent_id, created_at)
  SELECT ${workspaceId}::text, COALESCE(MAX(build_number), 0) + 1, ${buildId}::text, ${agentId}::text,
    ${createdAt}::timestamptz
  FROM lazydial_workspace_builds
  WHERE workspace_id = ${workspaceId}
  RETURNING workspace_id, build_number
)
SELECT build_number, pg_notify(${builds.channel}, workspace_id)::text AS notified
FROM inserted`).pipe(
          Effect.retry({ times: 3, while: isUniqueViolation }),
          Effect.map((rows) => rows[0]!.build_number),
          Effect.mapError(databaseError(operation)),
          withDeadline(operation, deadlines.query)
        )

    const service: AgentDirectory["Service"] = {
      batchWindow: window,
      current,
      recordBuild: Effect.fn("AgentDirectory.recordBuild")((workspaceId, build) =>
        insertBuild("AgentDirectory.recordBuild", workspaceId, build.buildId, build.agentId)
      ),
      stopWorkspace: Effect.fn("AgentDirectory.stopWorkspace")(function*(workspaceId, options) {
        const buildId = options?.buildId ?? BuildId.make(crypto.randomUUID())
        return yield* insertBuild("AgentDirectory.stopWorkspace", workspaceId, buildId, null)
      })
    }
    return service
  })
