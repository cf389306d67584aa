/**
 * Who owns each chat: the user who created it. The HTTP API shows a chat to
 * its owner only; to anyone else it does not exist (404, the body of a
 * missing chat).
 *
 * | Layer | store | use |
 * |---|---|---|
 * | `layerSql` | a service-owned table in the shared database | every process that serves chats |
 * | `layerMemory` | a map | tests |
 *
 * Why a table of the service's and not a column of binding's chat table: an
 * owner is a fact of this service's users (a name from its token file), not
 * of the binding library, which knows chats, workspaces and agents only. The
 * table is created like `AgentAddresses`' (`CREATE TABLE IF NOT EXISTS` under
 * a transaction-scoped advisory lock, taken only when the table is missing, so
 * a role that holds the lock cannot keep a replica from starting), and the
 * chat's row references nothing in binding's tables, so either side can
 * change alone. A table of that name that another role owns is refused at
 * start: its rows could give any chat to anyone.
 *
 * The owner is recorded before the chat is created: a chat never exists
 * without one. A failure between the two leaves an owner for a chat that
 * does not exist, which nobody can tell from a missing chat.
 *
 * An owner is written once and never changes, so a replica caches the owners
 * it read, at most `cacheCapacity` of them (the oldest go first); only
 * answers that found an owner are cached. A steady-state turn reads no owner
 * from the database. Every statement has binding's client-side query
 * deadline (`Database.withDeadline`, `LAZYDIAL_DB_QUERY_DEADLINE`), which
 * holds when the server hangs: it fails as `DatabaseUnavailable`.
 *
 * @since 0.2.0
 */
import type { ChatId } from "@lazydial/core"
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import type * as SqlClient from "effect/sql/SqlClient"
import type { DatabaseUnavailable } from "./Chats.js"
import * as internal from "./internal/chatOwners.js"

/**
 * @since 0.2.0
 * @category tags
 */
export class ChatOwners extends Context.Service<
  ChatOwners,
  {
    /** Records a new chat's owner; a chat already recorded keeps its first owner. */
    readonly record: (chatId: ChatId, owner: string) => Effect.Effect<void, DatabaseUnavailable>
    /** The chat's owner. None: no owner was recorded (no such chat, for everyone). */
    readonly ownerOf: (chatId: ChatId) => Effect.Effect<Option.Option<string>, DatabaseUnavailable>
  }
>()("@lazydial/service/ChatOwners") {}

/**
 * The table of chat owners.
 *
 * @since 0.2.0
 * @category constants
 */
export const table: string = internal.table

/**
 * How many owners a replica keeps in memory.
 *
 * @since 0.2.0
 * @category constants
 */
export const cacheCapacity: number = internal.cacheCapacity

/**
 * The owners in the shared database; creates the table when missing, and
 * fails (`DatabaseUnavailable`) when the database does not answer within the
 * query deadline.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerSql: Layer.Layer<ChatOwners, DatabaseUnavailable, SqlClient.SqlClient> = Layer.effect(
  ChatOwners,
  internal.makeSql
)

/**
 * The owners in a map, for tests.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerMemory: Layer.Layer<ChatOwners> = Layer.sync(ChatOwners, internal.makeMemory)
