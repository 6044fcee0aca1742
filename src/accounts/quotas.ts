import { createHash } from 'node:crypto'
import type { Database } from '../db/client.js'
import { WINDOW_MS } from './limits.js'
import type { Owner } from './owner.js'

interface State {
  /** Hits counted in PostgreSQL, by every instance, as of the last flush. */
  hits: number
  /** When the window ends, on this process's clock (from the database's, at the last flush). */
  resetAt: number
  /** Hits made here and not yet flushed. */
  pending: number
}

/** How often the hits of every caller are sent to PostgreSQL, in one statement. */
export const FLUSH_MS = 200
/** Callers tracked at once; past it, those with nothing pending and a window ended are forgotten first. */
const MAX_TRACKED = 100_000

export interface QuotaVerdict {
  allowed: boolean
  remaining: number
  /** Seconds until the window ends. */
  resetSeconds: number
}

/**
 * Per-caller quotas (RATE_LIMIT_PER_MINUTE), shared by every instance through the
 * `rate_limits` table (migrations/0006), counted in batches: a request is checked against
 * what this instance last heard from PostgreSQL plus its own hits since, and its hit is
 * sent with everyone else's every FLUSH_MS, in one statement that answers the new totals.
 * So one statement per instance every 200 ms, not one per request; the price is that a
 * window can let through up to one flush interval's worth of requests per instance past
 * the limit. Only requests whose token proved valid are counted (after the answer), so a
 * made-up token costs no row.
 */
export function createQuotas(db: Database, options: { perMinute: number; onError: (error: unknown) => void }) {
  const states = new Map<string, State>()
  let flushing: Promise<void> | undefined
  let dirty = false
  // One timer for the life of the instance, made here rather than by the request that
  // counts first: a flush serves every caller, and must not run (nor be traced) as part
  // of whichever request happened to schedule it.
  const timer = setInterval(() => {
    if (!dirty || flushing) return
    dirty = false
    flushing = flush().finally(() => (flushing = undefined))
  }, FLUSH_MS).unref()
  /** Callers whose count is being read, the first time this instance sees them in a window. */
  const learning = new Map<string, Promise<void>>()
  const bucketOf = (key: string) => createHash('sha256').update(`quota:${key}`).digest()

  // A token's hash is one Buffer per token while it is in use (accounts/plugin.ts keeps them), so its key is made once.
  const tokenKeys = new WeakMap<Buffer, string>()
  const keyOf = (owner: Owner) => {
    const hash = owner.tokenHash
    if (hash === undefined) return `user:${owner.userId}`
    let key = tokenKeys.get(hash)
    if (key === undefined) tokenKeys.set(hash, (key = `token:${hash.toString('base64')}`))
    return key
  }

  async function flush(): Promise<void> {
    const batch = [...states].filter(([, state]) => state.pending > 0).map(([key, state]) => ({ key, state, sent: state.pending }))
    if (batch.length === 0) return
    for (const entry of batch) entry.state.pending -= entry.sent
    try {
      const buckets = batch.map((entry) => bucketOf(entry.key))
      const byBucket = new Map(batch.map((entry, i) => [(buckets[i] as Buffer).toString('hex'), entry]))
      const { rows } = await db.write<{ bucket: Buffer; hits: number; ms: number }>(
        `INSERT INTO rate_limits AS r (bucket, hits, resets_at)
         SELECT b, h, now() + $3::int * interval '1 millisecond' FROM unnest($1::bytea[], $2::int[]) AS t(b, h)
         ON CONFLICT (bucket) DO UPDATE SET
           hits = CASE WHEN r.resets_at <= now() THEN EXCLUDED.hits ELSE r.hits + EXCLUDED.hits END,
           resets_at = CASE WHEN r.resets_at <= now() THEN EXCLUDED.resets_at ELSE r.resets_at END
         RETURNING r.bucket, r.hits, greatest(0, extract(epoch FROM r.resets_at - now()) * 1000)::int AS ms`,
        [buckets, batch.map((entry) => entry.sent), WINDOW_MS]
      )
      const now = Date.now()
      for (const row of rows) {
        const entry = byBucket.get(row.bucket.toString('hex'))
        if (entry === undefined) continue
        entry.state.hits = row.hits
        entry.state.resetAt = now + row.ms
      }
    } catch (error) {
      // Counted again at the next flush; meanwhile this instance goes by what it knows.
      for (const entry of batch) entry.state.pending += entry.sent
      options.onError(error)
    }
    forgetIfFull()
  }

  function forgetIfFull() {
    if (states.size < MAX_TRACKED) return
    const now = Date.now()
    for (const [key, state] of states) if (state.pending === 0 && state.resetAt <= now) states.delete(key)
    if (states.size >= MAX_TRACKED) for (const [key, state] of states) if (state.pending === 0) states.delete(key)
  }

  /**
   * What the database counts for a caller this instance knows nothing of yet (a new
   * instance, a restart, a new window). Remembered only when there is a count: a token no
   * answer ever proved valid has none, and fills no entry here (it costs a read each time,
   * as its every statement costs one anyway).
   */
  function learn(key: string): Promise<void> {
    let reading = learning.get(key)
    if (reading === undefined) {
      reading = db
        .query<{ hits: number; ms: number }>(
          `SELECT hits, greatest(0, extract(epoch FROM resets_at - now()) * 1000)::int AS ms FROM rate_limits WHERE bucket = $1 AND resets_at > now()`,
          [bucketOf(key)]
        )
        .then(({ rows: [row] }) => {
          if (row === undefined) return
          const state = states.get(key)
          // In place: a flush under way writes its answer into this same object.
          if (state !== undefined) Object.assign(state, { hits: Math.max(state.hits, row.hits), resetAt: Date.now() + row.ms })
          else {
            if (states.size >= MAX_TRACKED) forgetIfFull()
            states.set(key, { hits: row.hits, resetAt: Date.now() + row.ms, pending: 0 })
          }
        })
        .catch(options.onError)
        .finally(() => learning.delete(key))
      learning.set(key, reading)
    }
    return reading
  }

  return {
    /**
     * Whether the caller may make one more request now, and what the headers say. The
     * first request of a caller this instance knows nothing of waits for one read of the
     * shared count, so a new or restarted instance does not start them at zero.
     */
    check(owner: Owner): QuotaVerdict | Promise<QuotaVerdict> {
      const key = keyOf(owner)
      const known = states.get(key)
      if (known === undefined || (known.resetAt <= Date.now() && known.pending === 0)) return learn(key).then(() => this.verdict(key))
      return this.verdict(key)
    },

    verdict(key: string): QuotaVerdict {
      const state = states.get(key)
      const now = Date.now()
      const live = state !== undefined && state.resetAt > now
      const used = (live ? state.hits : 0) + (state?.pending ?? 0)
      const resetSeconds = live ? Math.max(1, Math.ceil((state.resetAt - now) / 1000)) : WINDOW_MS / 1000
      return { allowed: used < options.perMinute, remaining: Math.max(0, options.perMinute - used - 1), resetSeconds }
    },

    /** Whether this instance has counted the caller in this window (so they proved valid before). */
    isKnown: (owner: Owner) => states.has(keyOf(owner)),

    /** Counts a request the caller made (sent to PostgreSQL with the next flush). */
    count(owner: Owner): void {
      const key = keyOf(owner)
      let state = states.get(key)
      if (state === undefined) {
        if (states.size >= MAX_TRACKED) forgetIfFull()
        states.set(key, (state = { hits: 0, resetAt: 0, pending: 0 }))
      }
      state.pending++
      dirty = true
    },

    /** Sends what is pending now, and stops the timer (on close). */
    async close(): Promise<void> {
      clearInterval(timer)
      await flushing
      await flush()
    }
  }
}

export type Quotas = ReturnType<typeof createQuotas>
