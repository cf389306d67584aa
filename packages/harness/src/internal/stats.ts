/**
 * The nearest-rank quantile of numbers sorted ascending (0 when there are
 * none): the value below which a fraction `q` of them lie, one of them.
 *
 * @internal
 */
export const quantile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!

/** @internal */
export const round = (n: number, digits = 3): number => Math.round(n * 10 ** digits) / 10 ** digits
