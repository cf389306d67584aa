/**
 * Effect's metric registry as Prometheus text (exposition format 0.0.4).
 *
 * A serializer of ~60 lines over `Metric.snapshot`, rather than
 * `@effect/opentelemetry`'s PrometheusExporter: that one would make the OTel
 * SDK a run-time dependency of every replica, and start its own HTTP server on
 * another port, while this answers on the API's port with the same registry.
 *
 * @internal
 */
import type * as MetricLabel from "effect/MetricLabel"
import type * as MetricPair from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

/** Prometheus names allow `[a-zA-Z_:][a-zA-Z0-9_:]*`: anything else becomes `_`. */
const metricName = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/^(?=[0-9])/, "_")

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")

const labels = (tags: ReadonlyArray<MetricLabel.MetricLabel>, extra: ReadonlyArray<readonly [string, string]> = []) => {
  const all = [...tags.map((tag) => [tag.key, tag.value] as const), ...extra]
  return all.length === 0
    ? ""
    : `{${all.map(([key, value]) => `${metricName(key)}="${escapeLabel(value)}"`).join(",")}}`
}

const number = (value: number | bigint) =>
  typeof value === "bigint"
    ? value.toString()
    : Number.isNaN(value)
    ? "NaN"
    : value === Infinity
    ? "+Inf"
    : value === -Infinity
    ? "-Inf"
    : String(value)

/** The registry's metrics, grouped by name, each with its HELP and TYPE lines. */
export const serialize = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, { type: string; help: string; lines: Array<string> }>()
  const family = (name: string, type: string, description: Option.Option<string>) => {
    let found = families.get(name)
    if (found === undefined) {
      found = { type, help: Option.getOrElse(description, () => name), lines: [] }
      families.set(name, found)
    }
    return found.lines
  }
  for (const { metricKey: key, metricState: state } of pairs) {
    const name = metricName(key.name)
    if (MetricState.isCounterState(state)) {
      family(name, "counter", key.description).push(`${name}${labels(key.tags)} ${number(state.count)}`)
    } else if (MetricState.isGaugeState(state)) {
      family(name, "gauge", key.description).push(`${name}${labels(key.tags)} ${number(state.value)}`)
    } else if (MetricState.isHistogramState(state)) {
      const lines = family(name, "histogram", key.description)
      // Effect's buckets are cumulative already, as Prometheus wants them
      for (const [bound, count] of state.buckets) {
        lines.push(`${name}_bucket${labels(key.tags, [["le", number(bound)]])} ${count}`)
      }
      if (!state.buckets.some(([bound]) => bound === Infinity)) {
        lines.push(`${name}_bucket${labels(key.tags, [["le", "+Inf"]])} ${state.count}`)
      }
      lines.push(`${name}_sum${labels(key.tags)} ${number(state.sum)}`)
      lines.push(`${name}_count${labels(key.tags)} ${state.count}`)
    } else if (MetricState.isFrequencyState(state)) {
      // a frequency is a counter per observed value
      const lines = family(name, "counter", key.description)
      for (const [value, count] of state.occurrences) {
        lines.push(`${name}${labels(key.tags, [["value", value]])} ${count}`)
      }
    } else if (MetricState.isSummaryState(state)) {
      const lines = family(name, "summary", key.description)
      for (const [quantile, value] of state.quantiles) {
        if (Option.isSome(value)) {
          lines.push(`${name}${labels(key.tags, [["quantile", number(quantile)]])} ${number(value.value)}`)
        }
      }
      lines.push(`${name}_sum${labels(key.tags)} ${number(state.sum)}`)
      lines.push(`${name}_count${labels(key.tags)} ${state.count}`)
    }
  }
  return [...families].map(([name, { help, lines, type }]) =>
    `# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n# TYPE ${name} ${type}\n${lines.join("\n")}\n`
  ).join("")
}
