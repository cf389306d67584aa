/**
 * Ids are decoded once, at the boundary: every id Schema, fed arbitrary
 * values, either decodes a UUID or refuses with an error that names the id.
 * Nothing may throw past the Effect error channel.
 */
import { assert, describe, it } from "@effect/vitest"
import { AgentId, BuildId, ChatId, WorkspaceId } from "@lazydial/core"
import * as Arbitrary from "effect/Arbitrary"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schema from "effect/Schema"
import { anyInput, endsInErrorChannel } from "../src/testing.js"

// Any 128-bit hex in the 8-4-4-4-12 form, as PostgreSQL's uuid type and the Effect 3 version took it.
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

describe("Ids", () => {
  const ids = [["AgentId", AgentId], ["WorkspaceId", WorkspaceId], ["BuildId", BuildId], ["ChatId", ChatId]] as const

  for (const [name, schema] of ids) {
    it(`${name}: any value decodes to a UUID or is refused with an error naming ${name}`, () => {
      const decode = Schema.decodeUnknownEffect(schema)
      const result = Effect.runSync(Arbitrary.checkEffect(anyInput, (input) => {
        const exit = endsInErrorChannel(decode(input))
        const uuid = typeof input === "string" && uuidPattern.test(input)
        if (Exit.isSuccess(exit)) return uuid
        return !uuid && String(exit.cause).includes(name)
      }, { runs: 500 }))
      assert.strictEqual(result._tag, "Passed", Arbitrary.formatCheckFailure(result))
    })
  }

  it("the refusal names the id", () => {
    const exit = Schema.decodeUnknownExit(AgentId)("not-a-uuid")
    assert.isTrue(Exit.isFailure(exit))
    assert.include(String(exit), "AgentId")
  })
})
