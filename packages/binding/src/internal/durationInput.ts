import type * as Duration from "effect/Duration"
import * as Schema from "effect/Schema"

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
 * A duration as the environment spells it: `"5 seconds"` (any unit of
 * `Duration`), or a bare number of milliseconds. It decodes to a
 * `Duration.DurationInput` and checks nothing else: the Layer that takes it
 * range-checks it like the option it stands for (`Options.boundedDuration`),
 * so a value out of range is an `InvalidOption` that shows the text as given,
 * and text that is no duration at all is a `ConfigError` naming the variable.
 *
 * @internal
 */
export const DurationInputFromString: Schema.Schema<`${number} ${Duration.Unit}` | number, string> = Schema.Union(
  Schema.TemplateLiteral(Schema.Number, " ", Schema.Literal(...units)),
  Schema.NumberFromString
)
