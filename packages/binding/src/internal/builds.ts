import { AgentId, BuildId, WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as SqlClient from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"

// The table of builds is read by the directory's lookups and by the reads
// that notices prompt: its SQL lives here, once, for both.

/**
 * The NOTIFY channel of the directory's notices. A notice's payload is the
 * workspace id alone: the directory is the truth, and the payload only says
 * where to look.
 *
 * @internal
 */
export const channel = "lazydial_rebuilds"

/**
 * How many of the builds before the latest one an answer names: the builds a
 * view may judge superseded (a chat bound to one of them is stale, or, after
 * a stop, stopped).
 *
 * @internal
 */
export const supersededPerAnswer = 8

/** @internal */
export const LatestRow = Schema.Struct({
  workspace_id: WorkspaceId,
  build_number: Schema.Int,
  build_id: BuildId,
  agent_id: Schema.NullOr(AgentId),
  superseded: Schema.Array(BuildId)
})

/**
 * A row of `latest`, decoded; the rejected value is shown: ids are no secret,
 * and the column alone does not say what is wrong.
 *
 * @internal
 */
export const decodeLatestRow = Schema.decodeUnknownEffect(LatestRow, { errors: "all", reportInput: true })

/**
 * The latest build of each of `workspaces`, with its agent, in one query, so
 * that the build and the agent always belong together, and the builds before
 * it (newest first, at most `supersededPerAnswer`): the raw rows, keyed by
 * workspace id, for each caller to decode row by row (a row that breaks the
 * schema fails its own workspace only). A workspace with no build has no row.
 *
 * The builds before the latest come with it so that a replica that never saw
 * them still knows a chat bound to one of them is stale: above all after a
 * stop, which every replica must answer at once for the chats of the builds
 * it stopped, whichever replica bound them.
 *
 * @internal
 */
export const latest = (
  sql: SqlClient.SqlClient,
  workspaces: ReadonlyArray<string>,
  purpose: "lookup" | "notice" = "lookup"
): Effect.Effect<ReadonlyMap<unknown, unknown>, SqlError> =>
  Effect.map(
    // The read a notice prompted has a column of its own, so that it is a
    // statement of its own at the database (pg_stat_statements tells it from a
    // turn's lookup by its shape).
    sql<{ readonly workspace_id: unknown }>`SELECT latest.workspace_id, latest.build_number, latest.build_id,
  latest.agent_id, ARRAY(
    SELECT older.build_id FROM lazydial_workspace_builds AS older
    WHERE older.workspace_id = latest.workspace_id AND older.build_number < latest.build_number
    ORDER BY older.build_number DESC LIMIT ${supersededPerAnswer}
  ) AS superseded${sql.literal(purpose === "notice" ? ", true AS prompted_by_notice" : "")}
FROM (
  SELECT DISTINCT ON (workspace_id) workspace_id, build_number, build_id, agent_id
  FROM lazydial_workspace_builds
  WHERE ${sql.in("workspace_id", workspaces)}
  ORDER BY workspace_id, build_number DESC
) AS latest`,
    (rows) => new Map(rows.map((row) => [row.workspace_id, row]))
  )
