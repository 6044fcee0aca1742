import { createHash } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'
import type { Database } from '../db/client.js'

/** A counter: what it counts (hashed before it is stored) and how many hits its window allows. */
export interface Bucket {
  name: string
  limit: number
}

export type LimitVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number }

/** The window every bucket counts in. */
export const WINDOW_MS = 60_000

/**
 * Rate limits counted in PostgreSQL (migrations/0006), so that every replica and worker
 * shares them and a restart forgets nothing: one statement per attempt counts a hit in
 * its buckets, on the database's clock, and says how many each holds now. A fixed
 * window: a bucket's count starts again at 1 once its window has ended. The buckets are
 * counted in order, each only while the ones before it allow the attempt: an attempt its
 * address may not make does not count against the email it names, so an attacker held
 * back at its own address cannot use up an account's attempts. Works through a
 * transaction pooler (no session state).
 */
export function createLimiter(db: Database) {
  const statements = new Map<number, string>()
  /** The statement for `count` buckets: a chain of upserts, each gated on the one before. */
  const statementFor = (count: number) => {
    let text = statements.get(count)
    if (text === undefined) {
      const steps = Array.from({ length: count }, (_, i) => {
        // $1..$count the buckets, then the limits of all but the last (the gates), then the window.
        const gate = i === 0 ? '' : ` WHERE (SELECT hits FROM b${i - 1}) <= $${count + i}::int`
        return (
          `b${i} AS (INSERT INTO rate_limits AS r (bucket, hits, resets_at) SELECT $${i + 1}::bytea, 1, now() + $${2 * count}::int * interval '1 millisecond'${gate} ` +
          'ON CONFLICT (bucket) DO UPDATE SET hits = CASE WHEN r.resets_at <= now() THEN 1 ELSE r.hits + 1 END, ' +
          'resets_at = CASE WHEN r.resets_at <= now() THEN EXCLUDED.resets_at ELSE r.resets_at END ' +
          `RETURNING ${i}::int AS n, hits, greatest(1, ceil(extract(epoch FROM resets_at - now())))::int AS retry_after)`
        )
      })
      text = `WITH ${steps.join(', ')} ${Array.from({ length: count }, (_, i) => `SELECT * FROM b${i}`).join(' UNION ALL ')}`
      statements.set(count, text)
    }
    return text
  }

  return {
    /** Counts an attempt in `buckets` (in this order); refused when any of them is past its limit. */
    async hit(buckets: Bucket[]): Promise<LimitVerdict> {
      const values = [...buckets.map((bucket) => createHash('sha256').update(bucket.name).digest()), ...buckets.slice(0, -1).map((bucket) => bucket.limit), WINDOW_MS]
      const { rows } = await db.write<{ n: number; hits: number; retry_after: number }>(statementFor(buckets.length), values)
      let retryAfterSeconds = 0
      for (const row of rows) {
        if (row.hits > (buckets[row.n]?.limit ?? Infinity)) retryAfterSeconds = Math.max(retryAfterSeconds, row.retry_after)
      }
      return retryAfterSeconds > 0 ? { allowed: false, retryAfterSeconds } : { allowed: true }
    },

    /** Deletes counters whose window ended, a batch at a time while batches come back full. */
    async reap(): Promise<number> {
      let count = 0
      for (let batch = 0; batch < 1000; batch++) {
        const { rowCount } = await db.write('DELETE FROM rate_limits WHERE ctid IN (SELECT ctid FROM rate_limits WHERE resets_at < now() LIMIT 1000)')
        count += rowCount ?? 0
        if ((rowCount ?? 0) < 1000) break
      }
      return count
    }
  }
}

export type Limiter = ReturnType<typeof createLimiter>

/**
 * What a client is counted by: its address, and the network around it. An IPv4 address
 * as it is (an IPv4-mapped IPv6 one too) and its /24; an IPv6 address by its first
 * `v6PrefixBits` bits (a /64 by default: one subscriber's network, from which it can take
 * any address) and the 8 bits shorter (a /56, what a home or a site is given), so that
 * many addresses of one network together count as more than one client but not as many.
 */
export function clientNetworks(ip: string, v6PrefixBits: number): { client: string; network: string } {
  const address = ip.replace(/%.*$/, '') // a zone index (fe80::1%eth0)
  if (isIPv4(address)) return { client: address, network: `${address.slice(0, address.lastIndexOf('.'))}.0/24` }
  if (!isIPv6(address)) return { client: address, network: address }
  const groups = expandIPv6(address)
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const v4 = [(groups[6] as number) >> 8, (groups[6] as number) & 255, (groups[7] as number) >> 8, (groups[7] as number) & 255]
    return { client: v4.join('.'), network: `${v4.slice(0, 3).join('.')}.0/24` }
  }
  return { client: prefixOf(groups, v6PrefixBits), network: prefixOf(groups, Math.max(0, v6PrefixBits - 8)) }
}

const prefixOf = (groups: number[], bits: number) => {
  const kept = groups.map((group, index) => {
    const keep = Math.min(16, Math.max(0, bits - index * 16))
    return keep === 0 ? 0 : group & (0xffff << (16 - keep)) & 0xffff
  })
  return `${kept.map((group) => group.toString(16)).join(':')}/${bits}`
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a trailing IPv4 part read as two groups). */
function expandIPv6(address: string): number[] {
  let text = address.toLowerCase()
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const part = (piece: string | undefined) => (piece ? piece.split(':').map((group) => parseInt(group, 16)) : [])
  const front = part(head)
  const back = part(tail)
  return tail === undefined ? front : [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back]
}
