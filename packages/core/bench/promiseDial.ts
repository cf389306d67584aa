/**
 * The same algorithm written with Promises, AbortController and setTimeout: the
 * baseline the issue compares against. Only the paths the benchmark uses are
 * written: the fast path and the stale switch.
 */
interface Connection {
  readonly agentId: string
}

const bound = "a"

const readyDial = (agentId: string, _signal?: AbortSignal): Promise<Connection> => Promise.resolve({ agentId })

const hangingDial = (_agentId: string, signal?: AbortSignal): Promise<Connection> =>
  new Promise((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason), { once: true }))

const lookup = (): Promise<string | undefined> => Promise.resolve("b")

const TIMEOUT = Symbol("timeout")

export const promiseDial = async (options: {
  readonly fast: boolean
  readonly abort: boolean
  /** Default: 1 minute on the fast path, 0 for the stale switch. */
  readonly delayMs?: number
  /** Called as the dial starts: the memory bench counts started dials. */
  readonly onDial?: () => void
  /** The caller's own cancellation, as a request handler would pass it. */
  readonly signal?: AbortSignal
}) => {
  const controller = options.abort ? new AbortController() : undefined
  const dial = options.fast ? readyDial : hangingDial
  const delayMs = options.delayMs ?? (options.fast ? 60_000 : 0)
  options.onDial?.()
  const pending = dial(bound, controller?.signal).then(
    (connection) => ({ ok: true as const, connection }),
    (error: unknown) => ({ ok: false as const, error })
  )
  let timer: ReturnType<typeof setTimeout> | undefined
  options.signal?.addEventListener("abort", () => {
    clearTimeout(timer)
    controller?.abort(options.signal?.reason)
  }, { once: true })
  const first = await Promise.race([
    pending,
    new Promise<typeof TIMEOUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMEOUT), delayMs)
    })
  ])
  clearTimeout(timer)
  if (first !== TIMEOUT && first.ok) return first.connection
  const current = await lookup()
  if (current === undefined) throw new Error("no current agent")
  if (current === bound) {
    const settled = await pending
    if (settled.ok) return settled.connection
    throw settled.error
  }
  controller?.abort()
  return readyDial(current)
}
