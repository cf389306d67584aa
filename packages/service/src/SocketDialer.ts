/**
 * An `AgentDialer` over real sockets: it opens a TCP connection with Node's
 * `net`, runs the handshake, and accepts the connection only when the agent
 * that answered proves it is the one it dialed. The socket is closed by a
 * finalizer of the Scope the dial runs in.
 *
 * The handshake is a challenge: the dialer sends `hello <nonce>`, 32 random
 * bytes fresh for each dial; the agent answers `agent <id> <proof>`, the proof
 * being HMAC-SHA256 of `<nonce> <id>` under the agent's secret, which the
 * dialer reads from the `AgentAddresses` book with the address, and compares
 * in constant time. The secret never crosses the wire; an answer replayed
 * from another dial, or made for another id, proves nothing. A process that
 * only claims the id (an impostor on a freed port) is refused before any
 * turn reaches it.
 *
 * | what the dial meets | error |
 * |---|---|
 * | no address (or no secret) for the agent | `AgentDialError` `Unreachable` |
 * | the port refuses the connection (a dead agent) | `AgentDialError` `Refused` |
 * | another agent answers (a reused port) | `AgentDialError` `WrongAgent` |
 * | the dialed id with no proof, or a proof that fails (an impostor, a replayed answer) | `AgentDialError` `WrongAgent` |
 * | a malformed answer | `AgentDialError` `Protocol` |
 * | the socket closes before the answer (or sends an endless line) | `AgentDialError` `Closed` |
 * | no answer at all (a hung agent) | nothing: the dial waits, and lazydial's validation decides |
 *
 * @since 0.1.0
 */
import { AgentDialer } from "@lazydial/core"
import * as Layer from "effect/Layer"
import type { AgentAddresses } from "./AgentAddresses.js"
import * as internal from "./internal/socketDialer.js"

/**
 * What the dialer did, counted from the sockets' own `connect` and `close`
 * events, so "still open" is the truth and not a guess.
 *
 * @since 0.1.0
 * @category models
 */
export interface DialerStats {
  readonly dials: number
  readonly opened: number
  readonly closed: number
  /** Sockets connected and not yet closed. */
  readonly stillOpen: number
  readonly errors: {
    readonly Unreachable: number
    readonly Refused: number
    readonly WrongAgent: number
    readonly Protocol: number
    readonly Closed: number
  }
}

/**
 * Counters shared between a dialer Layer and whoever reads them after it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeCounters: () => internal.DialerCounters = internal.makeCounters

/**
 * @since 0.1.0
 * @category constructors
 */
export const stats: (counters: internal.DialerCounters) => DialerStats = internal.snapshot

/**
 * Dials agents at the addresses of the `AgentAddresses` book: the in-process
 * fleet's, or the shared database's.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  counters: internal.DialerCounters
): Layer.Layer<AgentDialer.AgentDialer, never, AgentAddresses> =>
  Layer.effect(AgentDialer.AgentDialer, internal.make(counters))
