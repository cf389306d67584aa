/**
 * Rebuild notices end to end: real agents, the embedded database's
 * LISTEN/NOTIFY, and the service's wiring (notices on by default).
 */
import { expect, layer } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import { RebuildNotices } from "@lazydial/binding"
import type { WorkspaceId } from "@lazydial/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Schedule from "effect/Schedule"
import { randomUUID } from "node:crypto"
import { Chats } from "../src/Chats.js"
import * as ControlPlane from "../src/ControlPlane.js"
import * as Service from "../src/Service.js"

const counters = Service.makeCounters()

const TestLayer = Service.layer({ validationDelay: "2 seconds", dialTimeout: "5 seconds" }, counters).pipe(
  Layer.provide(Service.layerDatabase(undefined))
)

// safe: a fresh UUID is a valid id
const newWorkspace = () => randomUUID() as WorkspaceId

// real sockets and LISTEN need real time: no TestClock here
layer(TestLayer, { timeout: 60_000, excludeTestServices: true })("rebuild notices in the service", (it) => {
  it.effect(
    "after a rebuild, a bound chat's next turn is switched_by_notice, with 0 lookups",
    () =>
      Effect.gen(function*() {
        const chats = yield* Chats
        const notices = yield* RebuildNotices.RebuildNotices
        // LISTEN starts with the Layer, in the background: wait (bounded) until it is up
        yield* notices.status.pipe(
          Effect.filterOrFail((status) => status.listening),
          Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo({ duration: "10 seconds" })))
        )
        const workspaceId = newWorkspace()
        yield* ControlPlane.startWorkspace(workspaceId)
        const chat = yield* chats.create(Option.some(workspaceId))
        const first = yield* Effect.scoped(chats.connect(chat.chatId))
        expect(first.outcome).toBe("lazy_bind")

        const heard = yield* notices.subscribe
        const rebuilt = yield* ControlPlane.rebuild(workspaceId, "hang")
        const agentId = rebuilt.agentId
        // the NOTIFY is delivered after the rebuild's commit: wait for it, as a turn a moment later would
        yield* PubSub.take(heard).pipe(
          Effect.repeat({ until: ({ notice }) => notice.agentId === agentId }),
          Effect.timeout("10 seconds")
        )

        const before = counters.probe.lookups
        const turn = yield* Effect.scoped(chats.connect(chat.chatId))
        expect(turn.outcome).toBe("switched_by_notice")
        expect(turn.repaired).toBe(true)
        deepStrictEqual(turn.binding.agentId, Option.some(agentId))
        expect(counters.probe.lookups - before).toBe(0)
      }),
    30_000
  )
})
