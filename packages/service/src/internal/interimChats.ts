/**
 * A stand-in for `@lazydial/binding` while that package is being written: an
 * in-memory store and a turn path built on core's `LazyDial`. It is replaced
 * by the binding Layers as soon as they exist; nothing else depends on it.
 */
import {
  AgentDialerTag,
  type AgentId,
  AgentLookupTag,
  type BuildId,
  type ChatId,
  LazyDial,
  NoCurrentAgent,
  type WorkspaceId
} from "@lazydial/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { randomUUID } from "node:crypto"
import { ChatHasNoWorkspace, ChatNotFound, Chats, type ChatView, DialTimeout } from "../Chats.js"

export const make = (options: { readonly dialTimeout: Duration.DurationInput }) =>
  Effect.gen(function*() {
    const lazyDial = yield* LazyDial.LazyDial
    const lookup = yield* AgentLookupTag
    const dialer = yield* AgentDialerTag
    const rows = new Map<ChatId, ChatView>()
    const timeout = Duration.decode(options.dialTimeout)

    const get = (chatId: ChatId) =>
      Effect.suspend(() => {
        const row = rows.get(chatId)
        return row === undefined ? Effect.fail(new ChatNotFound({ chatId })) : Effect.succeed(row)
      })
    const put = (row: ChatView) => Effect.sync(() => (rows.set(row.chatId, row), row))
    // safe: a fresh UUID is a valid ChatId
    const newId = () => randomUUID() as ChatId

    const record = (chatId: ChatId, workspaceId: WorkspaceId, expected: Option.Option<AgentId>, agent: {
      readonly agentId: AgentId
      readonly buildId: BuildId
    }) =>
      Effect.sync(() => {
        const row = rows.get(chatId)
        if (row === undefined || !Option.contains(row.workspaceId, workspaceId)) return
        if (!Option.getEquivalence((a: AgentId, b: AgentId) => a === b)(row.agentId, expected)) return
        rows.set(chatId, { ...row, buildId: Option.some(agent.buildId), agentId: Option.some(agent.agentId) })
      })

    const connect = (chatId: ChatId) =>
      Effect.gen(function*() {
        const row = yield* get(chatId)
        if (Option.isNone(row.workspaceId)) return yield* Effect.fail(new ChatHasNoWorkspace({ chatId }))
        const workspaceId = row.workspaceId.value
        if (Option.isSome(row.agentId)) {
          const result = yield* lazyDial.dial({ agentId: row.agentId.value, workspaceId })
          if (result.switched && Option.isSome(result.current)) {
            yield* record(chatId, workspaceId, row.agentId, result.current.value)
          }
          return result.connection
        }
        const current = yield* lookup.current(workspaceId)
        if (Option.isNone(current)) return yield* Effect.fail(new NoCurrentAgent({ workspaceId }))
        yield* record(chatId, workspaceId, Option.none(), current.value)
        return yield* dialer.dial(current.value.agentId)
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new DialTimeout({ chatId, timeoutMillis: Duration.toMillis(timeout) })
        })
      )

    return Chats.of({
      create: (workspaceId) =>
        put({
          chatId: newId(),
          parentChatId: Option.none(),
          workspaceId,
          buildId: Option.none(),
          agentId: Option.none()
        }),
      createChild: (parentChatId) =>
        Effect.flatMap(get(parentChatId), (parent) =>
          put({ ...parent, chatId: newId(), parentChatId: Option.some(parentChatId) })),
      get,
      setWorkspace: (chatId, workspaceId) =>
        Effect.flatMap(get(chatId), (row) =>
          put({ ...row, workspaceId, buildId: Option.none(), agentId: Option.none() })),
      connect
    })
  })
