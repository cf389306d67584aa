import type * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"
import * as SchemaTransformation from "effect/SchemaTransformation"

const units = [
  "nano",
  "nanos",
  "micro",
  "micros",
  "milli",
  "millis",
  "second",
  "seconds",
  "minute",
  "minutes",
  "hour",
  "hours",
  "day",
  "days",
  "week",
  "weeks"
] as const satisfies ReadonlyArray<Duration.Unit>

/**
 * A number as the environment spells it. Effect 4's `NumberFromString` reads
 * blank text as 0 and any other text as `NaN`, so a typo would pass as a
 * number: here blank text and text that is no number are refused, and so are
 * a `ConfigError` naming the variable. `"Infinity"` stays a number, so that
 * the option's own range check refuses it as an `InvalidOption` that shows the
 * text.
 *
 * @internal
 */
export const NumberFromText: Schema.Codec<number, string> = Schema.String.check(Schema.isPattern(/\S/)).pipe(
  Schema.decodeTo(
    Schema.Number.check(Schema.makeFilter((n: number) => !Number.isNaN(n) || "a number")),
    SchemaTransformation.numberFromString
  )
)

/**
 * A duration as the environment spells it: `"5 seconds"` (any unit of
 * `Duration`), or a bare number of milliseconds. It decodes to a
 * `Duration.Input` and checks nothing else: the Layer that takes it
 * range-checks it like the option it stands for (`Options.boundedDuration`),
 * so a value out of range is an `InvalidOption` that shows the text as given,
 * and text that is no duration at all is a `ConfigError` naming the variable.
 *
 * @internal
 */
export const DurationInputFromString: Schema.Codec<`${number} ${Duration.Unit}` | number, string> = Schema.Union([
  Schema.TemplateLiteral([Schema.Number, " ", Schema.Literals(units)]),
  NumberFromText
])
