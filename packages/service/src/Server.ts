/**
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"

/**
 * @since 0.1.0
 * @category running
 */
export const serveForever = (_options: { readonly port: number; readonly workspaces: number }) => Effect.never
