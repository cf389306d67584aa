/**
 * The learned validation delay (issue 11 §3, RFC 8305 §5): `clamp(factor ×
 * quantile of the last `window` successful connect times, min, max)`.
 *
 * The sketch is a sliding window kept as log-spaced bucket counts: a ring of
 * the last `window` samples' bucket numbers (one byte each) and one counter per
 * bucket. Recording a sample is O(1) and allocates nothing; reading the
 * quantile walks the buckets, O(buckets), and is done only when the counts
 * changed in a way that can move it. The window forgets exactly: the sample
 * that falls out of the ring is taken out of its bucket. A histogram with
 * decay would forget gradually and never exactly, which makes "the window
 * forgets old samples" hard to state and to test; a ring of raw durations
 * would need a sort or a selection (O(window)) on every success, on the fast
 * path. The price of buckets is resolution: the quantile is rounded up to
 * the next bucket edge, at most 2^(1/4) ≈ 19% above the true value, which the
 * safety factor dwarfs. See docs/core.md.
 */
import * as Duration from "effect/Duration"
import * as Metric from "effect/Metric"

/** Four buckets per doubling: edges 2^(i/4) apart. */
const stepsPerDoubling = 4
/** The first bucket holds everything up to 1/16 ms. */
const baseMillis = 1 / 16
/**
 * The last edge is 2^(95/4) / 16 ms ≈ 881 s, above the largest delay a Layer
 * accepts (10 minutes), so every quantile that is not clamped has a bucket.
 * Fewer than 256 buckets, so a bucket number fits the ring's byte.
 */
const bucketCount = 96

const edges = Float64Array.from({ length: bucketCount }, (_, i) => baseMillis * 2 ** (i / stepsPerDoubling))

/**
 * The bucket of a sample: the first whose edge is at or above it. The small
 * epsilon keeps a sample that lies exactly on an edge in that edge's bucket
 * despite the rounding of `log2`.
 */
const bucketOf = (millis: number): number => {
  if (!(millis > baseMillis)) return 0
  const bucket = Math.ceil(stepsPerDoubling * Math.log2(millis / baseMillis) - 1e-9)
  return bucket < bucketCount ? bucket : bucketCount - 1
}

/**
 * How the delay is set: `fixed` or learned (`adaptive`). The one list of the
 * gauge's label values.
 *
 * @internal
 */
export const delayModes = ["fixed", "adaptive"] as const

/** @internal */
export type DelayMode = typeof delayModes[number]

/** One gauge per mode, each carrying its label, so an update allocates nothing. @internal */
export const delayGauges: Readonly<Record<DelayMode, Metric.Gauge<number>>> = Object.fromEntries(
  delayModes.map((mode) => [
    mode,
    Metric.gauge("lazydial_validation_delay_seconds", {
      description: "The validation delay LazyDial uses now: fixed, or learned from recent connect times",
      attributes: { delay_mode: mode }
    })
  ])
) as Record<DelayMode, Metric.Gauge<number>> // safe: built from the full `delayModes` list

/** Options, already checked by the public module. @internal */
export interface AdaptiveOptions {
  readonly initial: Duration.Duration
  readonly min: Duration.Duration
  readonly max: Duration.Duration
  readonly factor: number
  /** In (0, 1]. */
  readonly quantile: number
  /** An integer ≥ 1. */
  readonly window: number
}

/**
 * The number of samples before the learned delay replaces `initial`: enough
 * for the quantile to be more than the largest of a handful (1 / (1 − q),
 * 100 for p99), and never more than the window.
 *
 * @internal
 */
export const warmupOf = (quantile: number, window: number): number =>
  quantile >= 1 ? window : Math.min(window, Math.max(1, Math.ceil(1 / (1 - quantile) - 1e-9)))

/** One per LazyDial service: the delay its calls use now, and what it learned. @internal */
export class Sketch {
  /** The delay a call starting now uses. Replaced, never mutated, when it changes. */
  delay: Duration.Duration
  private delayMillis: number
  private readonly ring: Uint8Array
  private readonly counts = new Uint32Array(bucketCount)
  private next = 0
  private size = 0
  private readonly warmup: number
  private readonly minMillis: number
  private readonly maxMillis: number

  constructor(private readonly options: AdaptiveOptions) {
    this.ring = new Uint8Array(options.window)
    this.warmup = warmupOf(options.quantile, options.window)
    this.minMillis = Duration.toMillis(options.min)
    this.maxMillis = Duration.toMillis(options.max)
    this.delay = options.initial
    this.delayMillis = Duration.toMillis(options.initial)
  }

  /** Records one successful connect time of a bound agent; true when the delay changed. */
  record(millis: number): boolean {
    const bucket = bucketOf(millis)
    const at = this.next
    this.next = at + 1 === this.options.window ? 0 : at + 1
    if (this.size === this.options.window) {
      const old = this.ring[at]!
      this.ring[at] = bucket
      // The window is full and the sample replaces one of its own bucket: no count moves.
      if (old === bucket) return false
      this.counts[old]! -= 1
    } else {
      this.ring[at] = bucket
      this.size++
    }
    this.counts[bucket]! += 1
    return this.size >= this.warmup && this.update()
  }

  /** Nearest rank: the smallest bucket edge with at least ⌈q·n⌉ samples at or below it. */
  private update(): boolean {
    const rank = Math.max(1, Math.ceil(this.options.quantile * this.size - 1e-9))
    let seen = 0
    let bucket = 0
    for (; bucket < bucketCount - 1; bucket++) {
      seen += this.counts[bucket]!
      if (seen >= rank) break
    }
    const millis = Math.min(this.maxMillis, Math.max(this.minMillis, this.options.factor * edges[bucket]!))
    if (millis === this.delayMillis) return false
    this.delayMillis = millis
    this.delay = Duration.millis(millis)
    return true
  }
}
