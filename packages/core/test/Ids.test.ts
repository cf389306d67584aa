/**
 * Ids are decoded once, at the boundary: every id Schema, fed arbitrary
 * values by fast-check, either decodes a UUID or refuses with an error that
 * names the id. Nothing may throw past the Effect error channel.
 */
import { describe, it } from "@effect/vitest"
import { AgentId, BuildId, ChatId, WorkspaceId } from "@lazydial/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FastCheck from "effect/FastCheck"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Strings near a UUID as well as far from it: fast-check's own strings rarely come close. */
const idLike = FastCheck.oneof(
  FastCheck.string(),
  FastCheck.uuid(),
  FastCheck.uuid().map((uuid) => uuid.slice(1)),
  FastCheck.uuid().map((uuid) => uuid.replace(/-/g, "")),
  FastCheck.uuid().map((uuid) => ` ${uuid}`),
  FastCheck.uuid().map((uuid) => `${uuid.slice(0, -1)}g`),
  FastCheck.uuid().map((uuid) => `${uuid}\n`)
)

const anyInput = FastCheck.oneof(FastCheck.anything(), idLike, FastCheck.object())

const formatLeft = <A>(result: Either.Either<A, ParseResult.ParseError>): string | undefined =>
  Either.isLeft(result) ? ParseResult.TreeFormatter.formatErrorSync(result.left) : undefined

/** Runs a decoding effect and says how it ended; a defect or a throw fails the property. */
const endsInErrorChannel = <A, E>(effect: Effect.Effect<A, E>): Exit.Exit<A, E> => {
  const exit = Effect.runSyncExit(effect)
  if (Exit.isFailure(exit) && !Option.isSome(Cause.failureOption(exit.cause))) {
    throw new Error(`not a typed failure: ${Cause.pretty(exit.cause)}`)
  }
  return exit
}

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
