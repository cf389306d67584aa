import type { AgentId } from "@lazydial/core"
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"

// The agent's proof of identity. The dialer sends `hello <nonce>`, a fresh
// random nonce per dial; the agent answers `agent <id> <proof>`, where the
// proof is HMAC-SHA256(secret, "<nonce> <id>") in hex. The secret never
// crosses the wire, an answer recorded on one dial proves nothing on the next
// (its nonce differs), and an answer for one id proves nothing for another.

const secretBytes = 32
const nonceBytes = 32
const proofHexLength = 64

/** The longest handshake line either side accepts: the answer is about 140 bytes. */
export const maxHandshakeLine = 512

export const newSecret = (): Uint8Array => randomBytes(secretBytes)

export const newNonce = (): string => randomBytes(nonceBytes).toString("hex")

/** What the agent who holds `secret` answers to `hello <nonce>`. */
export const proof = (secret: Uint8Array, nonce: string, agentId: AgentId): string =>
  createHmac("sha256", secret).update(`${nonce} ${agentId}`).digest("hex")

export const hello = (nonce: string): string => `hello ${nonce}`

/**
 * The probe of a connection kept across turns, and its answer: a round trip
 * with no turn. It proves nothing about identity (the handshake did, once,
 * on this very socket), only that the agent still answers on it.
 */
export const ping = "ping"
export const pong = "pong"

/** The nonce of a `hello <nonce>` line; undefined for any other line (a bare `hello` included). */
export const nonceOf = (line: string): string | undefined => {
  if (!line.startsWith("hello ")) return undefined
  const nonce = line.slice("hello ".length)
  return nonce.length > 0 && nonce.length <= 2 * nonceBytes && /^[0-9a-f]+$/.test(nonce) ? nonce : undefined
}

export const answer = (secret: Uint8Array, nonce: string, agentId: AgentId): string =>
  `agent ${agentId} ${proof(secret, nonce, agentId)}`

/**
 * What an answer to `hello <nonce>` shows:
 *
 * | answer | verdict |
 * |---|---|
 * | `agent <dialed id> <proof from the dialed agent's secret and this nonce>` | `Proven` |
 * | `agent <another id> ...` (a reused port) | `WrongAgent` |
 * | `agent <dialed id>` with no proof, a malformed one, or one made with another secret or for another nonce (an impostor, a replayed answer) | `WrongAgent` |
 * | anything else | `Protocol` |
 */
export type Verdict =
  | { readonly _tag: "Proven" }
  | { readonly _tag: "WrongAgent"; readonly detail: string }
  | { readonly _tag: "Protocol"; readonly detail: string }

const shown = (text: string) => (text.length > 80 ? `${text.slice(0, 80)}...` : text)

export const verify = (agentId: AgentId, secret: Uint8Array, nonce: string, line: string): Verdict => {
  if (!line.startsWith("agent ")) return { _tag: "Protocol", detail: `unexpected handshake answer: ${shown(line)}` }
  const [answered = "", given, ...rest] = line.slice("agent ".length).split(" ")
  if (answered !== agentId) return { _tag: "WrongAgent", detail: `answered as agent ${shown(answered)}` }
  if (given === undefined || rest.length > 0 || given.length !== proofHexLength || !/^[0-9a-f]+$/.test(given)) {
    return { _tag: "WrongAgent", detail: "answered with this agent's id and no valid proof of it" }
  }
  const expected = Buffer.from(proof(secret, nonce, agentId), "hex")
  // constant time: how much of a forged proof matched must not show in the time taken
  return timingSafeEqual(Buffer.from(given, "hex"), expected)
    ? { _tag: "Proven" }
    : { _tag: "WrongAgent", detail: "answered with this agent's id and a proof made without its secret" }
}
