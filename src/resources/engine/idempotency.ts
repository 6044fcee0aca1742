import { ownerIdSql, type Owner } from '../../accounts/owner.js'
import type { Database, Statements } from '../../db/client.js'
import { QueryParts } from '../../db/sql.js'
import { HttpProblem } from '../../lib/problem.js'

/** An answer as it was sent, kept to be sent again to a retry. */
export interface Answer {
  status: number
  headers: Record<string, string>
  body: string
}

const keyInUse = () =>
  new HttpProblem(409, 'IDEMPOTENCY_KEY_IN_USE', 'a request with this Idempotency-Key is still being processed; retry shortly for its outcome', { retryAfterSeconds: 1 })

/** The advisory locks of keys, apart from every other lock's (db/client.ts LOCKS use the one-number form). */
const KEY_LOCKS = 1_769_235_329

/**
 * Idempotency-Key for creates (draft-ietf-httpapi-idempotency-key-header; Stripe's
 * semantics), each key its owner's, kept IDEMPOTENCY_KEY_TTL_HOURS. A request takes its
 * key with a transaction-scoped advisory lock, then writes its row and records its
 * answer with the key in the same transaction:
 * - a retry while it runs finds the lock taken: 409 IDEMPOTENCY_KEY_IN_USE;
 * - once it committed, a retry with the same body gets the recorded answer again, and
 *   with another body 422 IDEMPOTENCY_KEY_REUSED;
 * - if it failed, or its process or connection died, PostgreSQL ended its transaction,
 *   which released the lock and wrote nothing: the key is free at once.
 * Only COMMIT writes, so an attempt given up on can never commit late beside a retry.
 * Through a transaction pooler too (the lock is the transaction's, not the session's).
 */
export function createIdempotency(db: Database, options: { ttlHours: number; staleClaimSeconds: number }) {
  const ttlSeconds = options.ttlHours * 3600
  return {
    /**
     * `create` (which writes the row in `tx` and returns its answer) at most once for
     * `key`, or the answer recorded for it. Undefined when the owner is a token that is
     * not valid (nothing written).
     */
    async once(owner: Owner, key: string, print: Buffer, create: (tx: Statements) => Promise<Answer | undefined>): Promise<{ answer: Answer; replayed: boolean } | undefined> {
      return db.transaction(async (tx) => {
        const lock = new QueryParts()
        const ownerId = ownerIdSql(owner, lock)
        const { rows } = await tx.query<{ owner: number | null; locked: boolean | null }>(
          `SELECT o.id AS owner, pg_try_advisory_xact_lock(${KEY_LOCKS}, hashtext(o.id::text || ':' || ${lock.param(key)})) AS locked FROM (SELECT ${ownerId} AS id) o`,
          lock.values
        )
        const [taken] = rows
        if (taken?.owner === null || taken === undefined) return undefined
        if (!taken.locked) throw keyInUse()
        // A statement of its own, after the lock: its snapshot sees what the key's last holder committed.
        const { rows: recorded } = await tx.query<{ fingerprint: Buffer; status: number | null; headers: Record<string, string> | null; body: string | null; stale: boolean }>(
          `SELECT fingerprint, status, headers, body, (status IS NULL AND locked_at < now() - $3::int * interval '1 second') AS stale
           FROM idempotency_keys WHERE owner_id = $1 AND key = $2 AND expires_at > now()`,
          [taken.owner, key, options.staleClaimSeconds]
        )
        const previous = recorded[0]
        if (previous !== undefined && !previous.stale) {
          if (!previous.fingerprint.equals(print)) {
            throw new HttpProblem(422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for a different request; use a new key for a new request')
          }
          // A claim an earlier release made, whose request still runs.
          if (previous.status === null) throw keyInUse()
          return { answer: { status: previous.status, headers: previous.headers ?? {}, body: previous.body ?? '' }, replayed: true }
        }
        const answer = await create(tx)
        if (answer === undefined) return undefined
        const { rowCount } = await tx.write(
          `INSERT INTO idempotency_keys AS i (owner_id, key, fingerprint, claim, status, headers, body, expires_at)
           VALUES ($1, $2, $3, gen_random_uuid(), $4, $5, $6, now() + $7::int * interval '1 second')
           ON CONFLICT (owner_id, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, claim = EXCLUDED.claim, locked_at = NULL, status = EXCLUDED.status,
             headers = EXCLUDED.headers, body = EXCLUDED.body, created_at = now(), expires_at = EXCLUDED.expires_at
             WHERE i.expires_at <= now() OR (i.status IS NULL AND i.locked_at < now() - $8::int * interval '1 second')`,
          [taken.owner, key, print, answer.status, answer.headers, answer.body, ttlSeconds, options.staleClaimSeconds]
        )
        // Only a claim an earlier release made meanwhile can be in the way: nothing is committed.
        if (rowCount !== 1) throw keyInUse()
        return { answer, replayed: false }
      })
    },

    /**
     * Deletes expired keys, batch after batch while batches come back full (up to a
     * million a run), each batch a short statement of its own. Returns how many.
     */
    async reap(): Promise<number> {
      let count = 0
      for (let batch = 0; batch < 1000; batch++) {
        const { rowCount } = await db.write('DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT 1000)')
        count += rowCount ?? 0
        if ((rowCount ?? 0) < 1000) break
      }
      return count
    }
  }
}

export type Idempotency = ReturnType<typeof createIdempotency>
