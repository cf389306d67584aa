import { it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import * as Effect from "effect/Effect"
import { switchesAfterARebuild } from "../examples/testKit.js"
import { B } from "./fixtures.js"

// The test-kit example in docs/core.md runs as written.
it.effect("the test kit example: switched after a rebuild, nothing leaked", () =>
  Effect.gen(function*() {
    const result = yield* switchesAfterARebuild
    deepStrictEqual(result, {
      switchedTo: B,
      unreleased: 0,
      releasedTwice: 0
    })
  }))
