import { describe, expect, it } from "@effect/vitest"
import { deepStrictEqual } from "@effect/vitest/utils"
import * as Duration from "effect/Duration"
import * as Service from "../src/Service.js"

const millis = (d: Duration.Input | undefined) => d === undefined ? undefined : Duration.toMillis(d)

describe("Service.lazyDialOptions", () => {
  it("fixed: the validation delay as given", () => {
    const options = Service.lazyDialOptions({ validationDelay: "500 millis", dialTimeout: "2 seconds" })
    deepStrictEqual(options?.delay, Duration.millis(500))
  })

  it("adaptive: starts at the validation delay and may grow past it, to half the dial timeout", () => {
    const options = Service.lazyDialOptions({
      validationDelay: "500 millis",
      delayMode: "adaptive",
      dialTimeout: "2 seconds"
    })
    expect(options?.delay).toBe("adaptive")
    const adaptive = options?.adaptive
    expect([millis(adaptive?.initial), millis(adaptive?.min), millis(adaptive?.max)]).toEqual([500, 50, 1000])
    expect(adaptive?.factor).toBe(2)
  })

  it("adaptive: a starting value above the ceiling starts at the ceiling", () => {
    const adaptive = Service.lazyDialOptions({
      validationDelay: "5 seconds",
      delayMode: "adaptive",
      dialTimeout: "2 seconds"
    })?.adaptive
    expect([millis(adaptive?.initial), millis(adaptive?.max)]).toEqual([1000, 1000])
  })
})
