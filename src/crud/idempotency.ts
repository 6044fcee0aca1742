import { createHash, randomUUID } from 'node:crypto'
import { ownerIdSql, type Owner } from '../auth/owner.js'
import type { Database } from '../db/client.js'
import { HttpProblem, badRequest } from '../lib/problem.js'
import { QueryParts } from './sql.js'

/**
 * Idempotency-Key for creates (draft-ietf-httpapi-idempotency-key-header; Stripe's
 * semantics). The first request with a key claims it; its write and its answer are
 * recorded in one statement (repository.ts `create`), so a retry with the same key and
 * body gets that answer again (`Idempotent-Replayed: true`), the same key with another
 * body is a 422, and the same key while the first request still runs is a 409. Keys are
 * each owner's own and expire after IDEMPOTENCY_KEY_TTL_HOURS.
 */
export const IDEMPOTENCY_HEADER = 'idempotency-key'

/** A key: 1 to 255 visible ASCII characters (what the draft's sf-string allows, quotes aside). */
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/

const keyInUse = () =>
  new HttpProblem(409, 'IDEMPOTENCY_KEY_IN_USE', 'a request with this Idempotency-Key is still being processed; retry shortly for its outcome', {
    retryAfterSeconds: 1
  })

export type Claim =
  | { outcome: 'claimed'; key: string; claim: string }
  | { outcome: 'replay'; status: number; headers: Record<string, string>; body: string }
  | { outcome: 'no-owner' }

/** The key from a header value (the draft writes it as a quoted sf-string; bare is accepted too). */
export function parseKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined
  const raw = Array.isArray(header) ? header.join(',') : header
  const key = /^"(.*)"$/.exec(raw.trim())?.[1] ?? raw.trim()
  if (!KEY_PATTERN.test(key)) {
    throw badRequest('INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key must be 1 to 255 visible ASCII characters', [
      { in: 'headers', field: 'idempotency-key', message: 'must be 1 to 255 visible ASCII characters' }
    ])
  }
  return key
}

/** JSON with sorted keys: the same body however its fields are ordered. */
const canonical = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** What a request is, for telling a retry from a different request under the same key. */
export const fingerprint = (method: string, path: string, body: unknown) => createHash('sha256').update(`${method} ${path}\n${canonical(body)}`).digest()

/**
 * `insert` (an INSERT ... SELECT ... FROM o ... RETURNING json, id, version) made to
 * write only while this request's claim on its key holds, and to record its answer with
 * the key in the same statement: the key's row is locked and its claim checked, so a
 * late commit of an attempt that was given up on and a retry can never both write.
 */
export const keyedInsert = (insert: string, p: { owner: string; key: string; claim: string; locationBase: string }) =>
  `WITH o AS (
     SELECT i.owner_id AS id FROM idempotency_keys i
     WHERE i.owner_id = ${p.owner} AND i.key = ${p.key} AND i.claim = ${p.claim}::uuid AND i.status IS NULL FOR UPDATE
   ), created AS (${insert}), answered AS (
     UPDATE idempotency_keys i SET status = 201, body = created.json, locked_at = NULL,
       headers = jsonb_build_object('location', ${p.locationBase}::text || created.id, 'etag', '"' || created.version || '"')
     FROM created, o WHERE i.owner_id = o.id AND i.key = ${p.key} AND i.claim = ${p.claim}::uuid
   )
   SELECT json, id, version FROM created`

export function createIdempotency(db: Database, options: { ttlHours: number; lockSeconds: number }) {
  const ttl = options.ttlHours * 3600
  return {
    /**
     * Takes the key for this request, or says what happened to it. A key that expired,
     * or whose request was given up on long ago (locked for longer than any statement
     * can run) without recording an answer, is taken again.
     */
    async claim(owner: Owner, key: string, print: Buffer): Promise<Claim> {
      const parts = new QueryParts()
      const ownerId = ownerIdSql(owner, parts)
      const [k, f, c, ttlParam, lock] = [key, print, randomUUID(), ttl, options.lockSeconds].map((value) => parts.param(value))
      const { rows } = await db.write<{ claim: string }>(
        `INSERT INTO idempotency_keys AS i (owner_id, key, fingerprint, claim, locked_at, expires_at)
         SELECT o.id, ${k}, ${f}, ${c}::uuid, now(), now() + ${ttlParam}::int * interval '1 second' FROM (SELECT ${ownerId} AS id) o WHERE o.id IS NOT NULL
         ON CONFLICT (owner_id, key) DO UPDATE
           SET fingerprint = EXCLUDED.fingerprint, claim = EXCLUDED.claim, locked_at = now(), status = NULL, headers = NULL, body = NULL,
               created_at = now(), expires_at = EXCLUDED.expires_at
           WHERE i.expires_at < now()
              OR (i.status IS NULL AND i.fingerprint = EXCLUDED.fingerprint AND i.locked_at < now() - ${lock}::int * interval '1 second')
         RETURNING claim::text`,
        parts.values
      )
      if (rows[0]) return { outcome: 'claimed', key, claim: rows[0].claim }

      const lookup = new QueryParts()
      const existing = await db.query<{ fingerprint: Buffer; status: number | null; headers: Record<string, string> | null; body: string | null }>(
        `SELECT fingerprint, status, headers, body FROM idempotency_keys WHERE owner_id = ${ownerIdSql(owner, lookup)} AND key = ${lookup.param(key)}`,
        lookup.values
      )
      const row = existing.rows[0]
      if (row === undefined) return { outcome: 'no-owner' } // a token that is not valid (or a key reaped this instant)
      if (!row.fingerprint.equals(print)) {
        throw new HttpProblem(422, 'IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used for a different request; use a new key for a new request')
      }
      if (row.status === null) throw keyInUse()
      return { outcome: 'replay', status: row.status, headers: row.headers ?? {}, body: row.body ?? '' }
    },

    /**
     * Runs `write` (which records its answer with the claim, repository.ts `create`) at
     * most once for `key`: the stored answer if there is one, else this request's write.
     * `assertAuthenticated` tells a caller whose token is not valid (401) from a key that
     * is busy (409) when nothing could be claimed or written.
     */
    async once<T>(
      owner: Owner,
      key: string,
      print: Buffer,
      write: (claimed: { key: string; claim: string }) => Promise<T | undefined>,
      assertAuthenticated: () => Promise<void>
    ): Promise<{ item: T } | { replay: { status: number; headers: Record<string, string>; body: string } }> {
      const claimed = await this.claim(owner, key, print)
      if (claimed.outcome === 'replay') return { replay: claimed }
      if (claimed.outcome === 'no-owner') {
        await assertAuthenticated()
        throw keyInUse()
      }
      let item: T | undefined
      try {
        item = await write(claimed)
      } catch (error) {
        // Nothing was written: the key is free for a retry. Unless nobody knows (504):
        // then it stays taken, and a retry learns the outcome from it.
        if ((error as { code?: string }).code !== 'OUTCOME_UNKNOWN') await this.release(owner, claimed).catch(() => {})
        throw error
      }
      if (item === undefined) {
        // The claim was taken over meanwhile (this request had been given up on).
        await assertAuthenticated()
        throw keyInUse()
      }
      return { item }
    },

    /** Gives a key back after its request failed without writing (a 4xx or a 503): it can be retried. */
    async release(owner: Owner, claimed: { key: string; claim: string }): Promise<void> {
      const parts = new QueryParts()
      await db.write(
        `DELETE FROM idempotency_keys WHERE owner_id = ${ownerIdSql(owner, parts)} AND key = ${parts.param(claimed.key)} AND claim = ${parts.param(claimed.claim)}::uuid AND status IS NULL`,
        parts.values
      )
    },

    /**
     * Deletes expired keys, batch after batch while batches come back full (up to a
     * million a run), so a busy service's keys never pile up faster than they go; each
     * batch is a short statement of its own. Returns how many.
     */
    async reap(): Promise<number> {
      let count = 0
      for (let batch = 0; batch < 1000; batch++) {
        const { rowCount } = await db.write(
          'DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT 1000)'
        )
        count += rowCount ?? 0
        if ((rowCount ?? 0) < 1000) break
      }
      return count
    }
  }
}

export type Idempotency = ReturnType<typeof createIdempotency>
