import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { switchesAfterARebuild } from "../examples/testKit.js"

// The test-kit example in docs/core.md runs as written.
it.effect("the test kit example: switched after a rebuild, nothing leaked", () =>
  Effect.gen(function*() {
    const result = yield* switchesAfterARebuild
    assert.deepStrictEqual(result, {
      switchedTo: "00000000-0000-4000-8000-00000000000b",
      unreleased: 0,
      releasedTwice: 0
    })
  }))
