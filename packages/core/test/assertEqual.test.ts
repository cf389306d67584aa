import { assert, describe, it } from "@effect/vitest"
import * as Data from "effect/Data"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import { assertEqual } from "../src/testing.js"

class Row extends Data.Class<{ readonly agentId: Option.Option<string> }> {}

// The reason this helper exists: the plain chai comparison cannot fail on these pairs.
const unequal: ReadonlyArray<readonly [string, unknown, unknown]> = [
  ["none against some, top level", Option.none(), Option.some(1)],
  ["none against some, inside an object", { a: Option.none() }, { a: Option.some(1) }],
  ["none against some, inside an array", [Option.none()], [Option.some(1)]],
  ["some against another some", Option.some(2), Option.some(1)],
  ["a failure against a success", Result.fail(1), Result.succeed(1)],
  [
    "Data classes that differ inside an Option",
    new Row({ agentId: Option.none() }),
    new Row({ agentId: Option.some("a") })
  ],
  ["an extra key", { a: 1, b: 2 }, { a: 1 }],
  ["a different string", "a", "b"]
]

describe("assertEqual", () => {
  for (const [name, actual, expected] of unequal) {
    it(`fails on ${name}`, () => {
      assert.throws(() => assertEqual(actual, expected), /expected/)
    })
  }

  it("passes on equal Effect data at any depth", () => {
    assertEqual({ a: [Option.some({ b: 1 })] }, { a: [Option.some({ b: 1 })] })
    assertEqual(new Row({ agentId: Option.some("a") }), new Row({ agentId: Option.some("a") }))
    assertEqual(Result.succeed([1, 2]), Result.succeed([1, 2]))
  })

  it("names both values and the caller's message when it fails", () => {
    assert.throws(
      () => assertEqual<Option.Option<number>>(Option.none(), Option.some(1), "the row's agent"),
      /the row's agent: expected/
    )
  })
})
