/**
 * Ids are decoded once, at the boundary: every id Schema, fed arbitrary
 * values by fast-check, either decodes a UUID or refuses with an error that
 * names the id. Nothing may throw past the Effect error channel.
 */
import { describe, it } from "@effect/vitest"
import { AgentId, BuildId, ChatId, WorkspaceId } from "@lazydial/core"
import type * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { anyInput, endsInErrorChannel } from "../src/testing.js"

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const formatLeft = <A>(result: Either.Either<A, ParseResult.ParseError>): string | undefined =>
  Either.isLeft(result) ? ParseResult.TreeFormatter.formatErrorSync(result.left) : undefined

describe("Ids", () => {
  const decoders = <A extends string>(name: string, schema: Schema.Schema<A, string>) =>
    [name, Schema.decodeUnknownEither(schema), Schema.decodeUnknown(schema)] as const
  const ids: ReadonlyArray<
    readonly [
      string,
      (input: unknown) => Either.Either<string, ParseResult.ParseError>,
      (input: unknown) => Effect.Effect<string, ParseResult.ParseError>
    ]
  > = [
    decoders("AgentId", AgentId),
    decoders("WorkspaceId", WorkspaceId),
    decoders("BuildId", BuildId),
    decoders("ChatId", ChatId)
  ]

  for (const [name, decodeEither, decode] of ids) {
    it(`${name}: any value decodes to a UUID or is refused with an error naming ${name}`, () => {
      FastCheck.assert(
        FastCheck.property(anyInput, (input) => {
          const result = decodeEither(input)
          const message = formatLeft(result)
          if (message === undefined) {
            return typeof input === "string" && uuidPattern.test(input)
          }
          endsInErrorChannel(decode(input))
          return message.startsWith(name) && !(typeof input === "string" && uuidPattern.test(input))
        }),
        { numRuns: 500 }
      )
    })
  }
})
