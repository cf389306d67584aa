import * as Metric from "effect/Metric"

/**
 * Whether notices are heard (1) or not (0). While 0, every connector has
 * forgotten its view and turns validate lazily: an operator's alert belongs
 * here, not on the turns' latency, which only shows it once rebuilds happen.
 *
 * @internal
 */
export const listening = Metric.gauge("lazydial_notices_listening", {
  description: "1 while this process LISTENs for rebuild notices, else 0"
})

/** @internal */
export const sessions = Metric.counter("lazydial_notices_sessions_total", {
  description: "LISTEN sessions started: each one after the first is a reconnect, and each start forgot the views",
  incremental: true
})

/** @internal */
export const received = Metric.counter("lazydial_notices_received_total", {
  description: "Well-formed rebuild notices (a workspace id) received from the database",
  incremental: true
})

/** @internal */
export const malformed = Metric.counter("lazydial_notices_malformed_total", {
  description: "NOTIFY payloads on the notices channel that are no workspace id, ignored",
  incremental: true
})

/** @internal */
export const untracked = Metric.counter("lazydial_notices_untracked_total", {
  description: "Notices of workspaces no view of this process tracks: counted, nothing read",
  incremental: true
})

/** @internal */
export const dropped = Metric.counter("lazydial_notices_dropped_total", {
  description: "Notices dropped because too many workspaces already waited for a read",
  incremental: true
})

/** @internal */
export const reads = Metric.counter("lazydial_notices_reads_total", {
  description: "Reads of the directory that notices prompted (one query for up to 500 workspaces)",
  incremental: true
})
