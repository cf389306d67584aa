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
 * A connection is kept across turns by core's `SharedConnections` (the
 * service wires it over this dialer); `probe` is the cheap round trip it runs
 * on a connection that sat idle: `ping`, answered `pong`. An exchange cut
 * between its request and its reply closes the socket, since the reply still
 * on its way would otherwise be read by the next exchange as its own. With a
 * `Hangups` service in its context, the dialer tells it each proven
 * connection that closed without its Scope closing it (the agent hung up, or
 * an exchange was cut), so that a kept connection is dropped at once, not
 * at the next turn's use.
 *
 * @since 0.1.0
 */
import { type AgentConnection, AgentDialer, type AgentDialError, type AgentId } from "@lazydial/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
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
 * The agents whose proven connections closed without the dialer closing
 * them: the agent hung up (it died, or left its port), or an exchange was cut
 * between request and reply. One consumer takes them (the service drops the
 * agent's shared connection); none is told when the service is absent.
 *
 * @since 0.2.0
 * @category tags
 */
export class Hangups extends Context.Service<Hangups, {
  readonly queue: Queue.Queue<AgentId>
}>()("@lazydial/service/SocketDialer/Hangups") {}

/**
 * A `Hangups` queue. Unbounded: a hang-up is one entry per closed
 * connection, and its consumer must be built with it (or the entries
 * accumulate for the life of the Layer). An effect, not a Layer: each
 * instance wraps it in a Layer of its own, so that two instances built in
 * one process never share one queue through Layer memoization.
 *
 * @since 0.2.0
 * @category constructors
 */
export const makeHangups: Effect.Effect<Hangups["Service"]> = Effect.map(
  Queue.unbounded<AgentId>(),
  (queue) => Hangups.of({ queue })
)

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
  Layer.effect(
    AgentDialer.AgentDialer,
    Effect.flatMap(
      Effect.serviceOption(Hangups),
      (hangups) => internal.make(counters, Option.map(hangups, (service) => service.queue))
    )
  )

/**
 * The probe of a shared connection (`SharedConnections.Options.probe`): one
 * `ping`, answered `pong`. It fails as the exchange does (`Closed` when the
 * agent is gone), or as `Protocol` on any other answer; core's
 * `SharedConnections` bounds it with its `probeTimeout` (a hung agent).
 *
 * @since 0.2.0
 * @category probes
 */
export const probe: (connection: AgentConnection) => Effect.Effect<void, AgentDialError> = internal.probe
