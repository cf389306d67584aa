/**
 * Checks for the options lazydial's Layers take, shared with the packages
 * built on core so that every option fails the same way.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { InvalidOption } from "./Errors.js"

/**
 * A duration option: a `Duration`, milliseconds, nanoseconds as a bigint, or
 * text such as `"5 seconds"`. A negative, infinite or unreadable value is a
 * configuration mistake, refused here with an `InvalidOption` that names the
 * option, not clamped or turned into zero.
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
    const decoded = decodeDuration(input)
    if (decoded === undefined) return invalid()
    if (Duration.isNegative(decoded) || !Duration.isFinite(decoded) || Duration.isGreaterThan(decoded, max)) {
      return invalid()
    }
    if (!allowZero && Duration.isZero(decoded)) return invalid()
    return Effect.succeed(decoded)
  })

/**
 * The inputs an option may be given as. Effect 4's `Duration.Input` also takes
 * objects such as `{ seconds: 5 }`, where a stray `{}` would read as zero, and
 * tuples: options are typed by hand or read from text, so only the forms that
 * cannot be mistaken are taken.
 */
const decodeDuration = (input: unknown): Duration.Duration | undefined => {
  if (Duration.isDuration(input)) return input
  if (typeof input === "number") return Number.isNaN(input) ? undefined : Duration.millis(input)
  if (typeof input === "bigint") return Duration.nanos(input)
  if (typeof input !== "string") return undefined
  const text = input.trim()
  // Bare digits are milliseconds, as a number is.
  if (/^\d+(\.\d+)?$/.test(text)) return Duration.millis(Number(text))
  return Option.getOrUndefined(Duration.fromInput(text as Duration.Input)) // safe: fromInput refuses any other text
}

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
