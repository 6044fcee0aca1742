import { AsyncLocalStorage } from 'node:async_hooks'

/** Where the database time of the code running now is credited: a request, or every request a batched statement serves. */
export interface TimingCredit {
  addDatabase(ms: number): void
}

// Entered only with SERVER_TIMING=true (plugins/server-timing.ts): otherwise no context is
// ever set and propagating one costs nothing.
const storage = new AsyncLocalStorage<TimingCredit>()

/** The credit of the code running now, if any. */
export const currentCredit = (): TimingCredit | undefined => storage.getStore()

/** Runs `fn` with `credit` as the current one. */
export const withCredit = <T>(credit: TimingCredit, fn: () => T): T => storage.run(credit, fn)

/** One credit for a statement that serves several requests: each is credited its whole duration, as each waited for all of it. */
export function sharedCredit(credits: ReadonlyArray<TimingCredit | undefined>): TimingCredit | undefined {
  if (credits.every((credit) => credit === undefined)) return undefined // SERVER_TIMING off: nothing to build
  const present = credits.filter((credit): credit is TimingCredit => credit !== undefined)
  if (present.length === 0) return undefined
  return { addDatabase: (ms) => { for (const credit of present) credit.addDatabase(ms) } }
}
