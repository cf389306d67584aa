/**
 * Checks for the options lazydial's Layers take, shared with the packages
 * built on core so that every option fails the same way.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SchemaGetter from "effect/SchemaGetter"
import { InvalidOption } from "./Errors.js"

/**
 * What a duration option must be, in words, for an error message.
 */
const durationExpected = (max: Duration.Duration, allowZero: boolean) =>
  allowZero
    ? `a duration from 0 to ${Duration.format(max)}`
    : `a duration above 0, at most ${Duration.format(max)}`

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

/** The duration `input` stands for, if it is one in range. */
const checkDuration = (input: unknown, max: Duration.Duration, allowZero: boolean): Duration.Duration | undefined => {
  const decoded = decodeDuration(input)
  if (decoded === undefined) return undefined
  if (Duration.isNegative(decoded) || !Duration.isFinite(decoded) || Duration.isGreaterThan(decoded, max)) {
    return undefined
  }
  return !allowZero && Duration.isZero(decoded) ? undefined : decoded
}

const shown = (input: unknown) => typeof input === "bigint" ? `${input}n` : String(input)

/**
 * A duration option: a `Duration`, milliseconds, nanoseconds as a bigint, or
 * text such as `"5 seconds"` or `"500"` (milliseconds). A negative, infinite or
 * unreadable value is a configuration mistake, refused here with an
 * `InvalidOption` that names the option, not clamped or turned into zero.
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
    const duration = checkDuration(input, max, allowZero)
    if (duration !== undefined) return Effect.succeed(duration)
    return Effect.fail(new InvalidOption({ option, value: shown(input), expected: durationExpected(max, allowZero) }))
  })

interface NumberBounds {
  readonly min: number
  readonly max: number
  readonly minExclusive?: boolean | undefined
  readonly integer?: boolean | undefined
}

const numberExpected = ({ integer, max, min, minExclusive }: NumberBounds) =>
  `${integer ? "an integer" : "a number"} ${minExclusive ? "above" : "from"} ${min}${
    minExclusive ? ", at most" : " to"
  } ${max}`

const checkNumber = (input: unknown, bounds: NumberBounds): number | undefined => {
  const value = typeof input === "number"
    ? input
    : typeof input === "string" && input.trim() !== ""
    ? Number(input)
    : Number.NaN
  const tooLow = bounds.minExclusive ? !(value > bounds.min) : !(value >= bounds.min)
  if (tooLow || !(value <= bounds.max) || (bounds.integer && !Number.isInteger(value))) return undefined
  return value
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
    const bounds = { min, max, ...options }
    const value = checkNumber(input, bounds)
    if (value !== undefined) return Effect.succeed(value)
    return Effect.fail(new InvalidOption({ option, value: String(input), expected: numberExpected(bounds) }))
  })

/**
 * A duration read from configuration text, the one way every lazydial setting
 * reads one: `"5 seconds"` (any unit of `Duration`) or bare milliseconds
 * (`"500"`), within `[0, max]` (above 0 without `allowZero`). Text that is no
 * such duration fails with a `ConfigError` that names the variable. For
 * `layerConfig`: the caller picks the name.
 *
 * @example
 * ```ts
 * import { Options } from "@lazydial/core"
 * import { Duration } from "effect"
 *
 * const dialTimeout = Options.durationConfig("LAZYDIAL_DIAL_TIMEOUT", { max: Duration.minutes(10), allowZero: false })
 * ```
 *
 * @since 0.2.0
 * @category config
 */
export const durationConfig = (
  name: string,
  options: { readonly max: Duration.Duration; readonly allowZero?: boolean | undefined }
): Config.Config<Duration.Duration> => {
  const allowZero = options.allowZero ?? true
  const text = Schema.String.check(
    Schema.makeFilter((input: string) =>
      checkDuration(input, options.max, allowZero) !== undefined ||
      `expected ${durationExpected(options.max, allowZero)} ("5 seconds", or milliseconds), got ${
        JSON.stringify(input)
      }`
    )
  )
  return Config.schema(
    text.pipe(Schema.decodeTo(Schema.Duration, {
      // safe: the filter above let only text that `checkDuration` reads through
      decode: SchemaGetter.transform((input: string) => checkDuration(input, options.max, allowZero)!),
      encode: SchemaGetter.transform((duration: Duration.Duration) => `${Duration.toMillis(duration)}`)
    })),
    name
  )
}

/**
 * A number read from configuration text, within `[min, max]` (`(min, max]`
 * with `minExclusive`), an integer with `integer`. Anything else fails with a
 * `ConfigError` that names the variable.
 *
 * @since 0.2.0
 * @category config
 */
export const numberConfig = (name: string, bounds: NumberBounds): Config.Config<number> =>
  Config.schema(
    Schema.String.check(Schema.makeFilter((input: string) =>
      checkNumber(input, bounds) !== undefined || `expected ${numberExpected(bounds)}, got ${JSON.stringify(input)}`
    )).pipe(Schema.decodeTo(Schema.Number, {
      // safe: the filter above let only text that `checkNumber` reads through
      decode: SchemaGetter.transform((input: string) =>
        checkNumber(input, bounds)!
      ),
      encode: SchemaGetter.transform((value: number) => String(value))
    })),
    name
  )

/**
 * `config`, or `undefined` when its variable is not set: for the optional
 * fields of a `layerConfig`'s `Config.Wrap`, where unset means "the default".
 * A set but invalid value still fails.
 *
 * @since 0.2.0
 * @category config
 */
export const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> =>
  Config.withDefault(config as Config.Config<A | undefined>, undefined)
