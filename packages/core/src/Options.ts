/**
 * Checks for the options lazydial's Layers take, shared with the packages
 * built on core so that every option fails the same way.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { InvalidOption } from "./Errors.js"

/**
 * `Duration.decode` turns a negative number into zero without a word; a
 * negative delay is a configuration mistake, so it is refused here instead,
 * with an `InvalidOption` that names the option.
 *
 * @since 0.1.0
 * @category validation
 */
export const boundedDuration = (
  option: string,
  input: unknown,
  max: Duration.Duration,
  options?: {
    /** False for durations that must be above zero, such as timeouts. */
    readonly allowZero?: boolean | undefined
  }
): Effect.Effect<Duration.Duration, InvalidOption> =>
  Effect.suspend(() => {
    const allowZero = options?.allowZero ?? true
    const expected = allowZero
      ? `a duration from 0 to ${Duration.format(max)}`
      : `a duration above 0, at most ${Duration.format(max)}`
    const invalid = () =>
      Effect.fail(
        new InvalidOption({ option, value: typeof input === "bigint" ? `${input}n` : String(input), expected })
      )
    if (typeof input === "number" && !(input >= 0)) return invalid()
    if (typeof input === "bigint" && input < 0n) return invalid()
    if (typeof input === "string" && input.trim().startsWith("-")) return invalid()
    if (Duration.isDuration(input) && input.value._tag === "Millis" && input.value.millis < 0) return invalid()
    const decoded = Duration.decodeUnknown(input)
    if (decoded._tag === "None") return invalid()
    const duration = decoded.value
    if (!Duration.isFinite(duration) || Duration.greaterThan(duration, max)) return invalid()
    if (!allowZero && Duration.isZero(duration)) return invalid()
    return Effect.succeed(duration)
  })

/**
 * A number in `[min, max]` (or `(min, max]` with `minExclusive`), given as a
 * number or as the text of one (from Config). Anything else is refused with
 * an `InvalidOption` that names the option.
 *
 * @since 0.1.0
 * @category validation
 */
export const boundedNumber = (
  option: string,
  input: unknown,
  min: number,
  max: number,
  options?: {
    readonly minExclusive?: boolean | undefined
    readonly integer?: boolean | undefined
  }
): Effect.Effect<number, InvalidOption> =>
  Effect.suspend(() => {
    const minExclusive = options?.minExclusive ?? false
    const integer = options?.integer ?? false
    const expected = `${integer ? "an integer" : "a number"} ${minExclusive ? "above" : "from"} ${min}${
      minExclusive ? ", at most" : " to"
    } ${max}`
    const value = typeof input === "number"
      ? input
      : typeof input === "string" && input.trim() !== ""
      ? Number(input)
      : Number.NaN
    const tooLow = minExclusive ? !(value > min) : !(value >= min)
    if (tooLow || !(value <= max) || (integer && !Number.isInteger(value))) {
      return Effect.fail(new InvalidOption({ option, value: String(input), expected }))
    }
    return Effect.succeed(value)
  })
