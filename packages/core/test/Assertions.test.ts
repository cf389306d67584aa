/**
 * The comparisons the tests use must be able to fail on Effect data. On Effect
 * 3, chai's `deepStrictEqual` passed `Option.none()` against `Option.some(1)`,
 * so the kit carried an `assertEqual` of its own. On Effect 4 the assertions of
 * `@effect/vitest/utils` catch every pair below, at any depth, so the tests use
 * them and the kit keeps no comparison of its own. If a release of Effect or
 * @effect/vitest stops catching one of these pairs, this test fails first.
 */
import { assert, describe, it } from "@effect/vitest"
import { assertEquals, deepStrictEqual } from "@effect/vitest/utils"
import * as Data from "effect/Data"
import * as Option from "effect/Option"
import * as Result from "effect/Result"

class Row extends Data.Class<{ readonly agentId: Option.Option<string> }> {}

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

const assertions = [["deepStrictEqual", deepStrictEqual], ["assertEquals", assertEquals]] as const

describe("the assertions the tests compare with", () => {
  for (const [name, actual, expected] of unequal) {
    for (const [assertion, compare] of assertions) {
      it(`${assertion} fails on ${name}`, () => {
        assert.throws(() => compare(actual, expected))
      })
    }
  }

  it("both pass on equal Effect data at any depth", () => {
    for (const [, compare] of assertions) {
      compare({ a: [Option.some({ b: 1 })] }, { a: [Option.some({ b: 1 })] })
      compare(new Row({ agentId: Option.some("a") }), new Row({ agentId: Option.some("a") }))
      compare(Result.succeed([1, 2]), Result.succeed([1, 2]))
    }
  })

  // Effect 4's Equal.equals caches a value's hash the first time it compares
  // it: an array compared, then changed, then compared again, can fail
  // assertEquals; deepStrictEqual compares what is there now, so the tests use it.
  it("deepStrictEqual compares an array as it is now, even after an earlier comparison", () => {
    const seen = [1, 2]
    deepStrictEqual(seen, [1, 2])
    seen.push(3)
    deepStrictEqual(seen, [1, 2, 3])
  })
})
