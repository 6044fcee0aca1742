/** Work one statement carries at most; more waiting go in further statements. */
export const MAX_BATCH = 100

/** One caller's part of a batch: its input, and how its promise settles. */
export interface Waiting<In, Out> {
  input: In
  resolve(output: Out): void
  reject(error: unknown): void
}

/**
 * Gathers what callers ask for during one turn of the event loop (the requests whose
 * bytes one poll of the sockets read), by key, and hands each key's callers to `run`
 * when the turn ends (setImmediate), at most MAX_BATCH at a time. Nothing waits for
 * company: a caller alone in its turn is handed on alone, microseconds later. `run`
 * settles every caller it is given.
 */
export function perTurn<In, Out>(run: (key: string, waiting: Array<Waiting<In, Out>>) => void): (key: string, input: In) => Promise<Out> {
  let queues = new Map<string, Array<Waiting<In, Out>>>()
  const flush = () => {
    const ready = queues
    queues = new Map()
    for (const [key, queue] of ready) {
      for (let start = 0; start < queue.length; start += MAX_BATCH) {
        const waiting = queue.length <= MAX_BATCH ? queue : queue.slice(start, start + MAX_BATCH)
        try {
          run(key, waiting)
        } catch (error) {
          rejectAll(waiting)(error) // never a caller left waiting, nor the other batches of the turn unsent
        }
      }
    }
  }
  return (key, input) =>
    new Promise<Out>((resolve, reject) => {
      if (queues.size === 0) setImmediate(flush)
      let queue = queues.get(key)
      if (queue === undefined) queues.set(key, (queue = []))
      queue.push({ input, resolve, reject })
    })
}

/** Settles every caller with the same failure: one statement failed for them all. */
export const rejectAll = (waiting: ReadonlyArray<{ reject(error: unknown): void }>) => (error: unknown) => {
  for (const caller of waiting) caller.reject(error)
}
