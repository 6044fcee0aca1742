import type { Owner } from '../accounts/owner.js'
import { ownerIdSql } from '../accounts/owner.js'
import type { Database } from '../db/client.js'
import { QueryParts, ident } from '../db/sql.js'
import { HttpProblem, badRequest } from '../lib/problem.js'
import type { AnyResource } from '../resources/engine/define.js'
import { rowCodec } from '../resources/engine/rows.js'

/**
 * Delta sync over the change log (migrations/0010, one row per item since 0012): what
 * changed for an owner since a cursor, each item once in its current state, or `null` once
 * deleted, ordered by the transaction that last changed it.
 *
 * A cursor holds a snapshot of PostgreSQL's (`pg_current_snapshot()`: which transactions
 * had committed when it was issued). The changes after it are those whose transaction is
 * not visible in that snapshot, so a transaction that began before a cursor was issued
 * and committed after it still arrives after it, which a sequence or a timestamp alone
 * would lose. Paging through one window keeps its far end fixed (`to`), so a page never
 * skips an item and never shows one twice. Without a cursor, the owner's whole state comes
 * first, one resource after another by id, then the changes since the snapshot it began at.
 */
export interface Change {
  type: string
  id: number
  deleted: boolean
  data: Record<string, unknown> | null
}

interface Cursor {
  /** The owner's id: a cursor is its owner's only. */
  o: number
  /** Issued at (ms since the epoch, the database's clock): older than the retention, it is gone. */
  at: number
  /** Changes already seen: those visible in this snapshot. */
  from: string
  /** Paging through a window: its far end, and the last change sent (seq). */
  to?: string
  /** When `to` was taken: the next window's cursor is as old as that, however long the paging took. */
  toAt?: number
  /** While paging: the last change sent, as the change log's key (transaction id, type, item id). */
  after?: [string, string, number]
  /** The initial state: the resource being sent (its index) and the last id sent. */
  kind?: number
  id?: number
}

/** `xmin:xmax:xip,…` of pg_snapshot's text; a snapshot lists at most the transactions open at once. */
const SNAPSHOT = /^\d{1,20}:\d{1,20}:(\d{1,20}(,\d{1,20}){0,999})?$/

const isLogKey = (v: unknown): v is [string, string, number] =>
  Array.isArray(v) && v.length === 3 && typeof v[0] === 'string' && /^\d{1,20}$/.test(v[0]) && typeof v[1] === 'string' && v[1].length <= 64 && Number.isSafeInteger(v[2])

const expired = () => new HttpProblem(410, 'CURSOR_EXPIRED', 'this cursor has expired or is not yours: sync again from the start (GET /changes without a cursor)')

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url')
}

/** A cursor as the client sent it, checked field by field: a 400 for anything else. */
export function decodeCursor(text: string): Cursor {
  const invalid = () => badRequest('INVALID_CURSOR', 'cursor is not one this service issued', [{ in: 'query', field: 'cursor', message: 'not a cursor from GET /changes' }])
  let value: Record<string, unknown>
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Record<string, unknown>
  } catch {
    throw invalid()
  }
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0
  const snapshot = (v: unknown) => typeof v === 'string' && SNAPSHOT.test(v)
  if (value === null || typeof value !== 'object' || !count(value.o) || !count(value.at) || !snapshot(value.from)) throw invalid()
  if (value.to !== undefined && !snapshot(value.to)) throw invalid()
  for (const name of ['kind', 'id', 'toAt'] as const) if (value[name] !== undefined && !count(value[name])) throw invalid()
  // A cursor from before the log kept one row per item (migrations/0012) paged by a sequence number.
  if (typeof value.after === 'number') throw expired()
  if (value.after !== undefined && !isLogKey(value.after)) throw invalid()
  // Only the checked fields travel on: nothing else a client adds comes back in a cursor.
  const { o, at, from, to, toAt, after, kind, id } = value as unknown as Cursor
  return { o, at, from, ...(to === undefined ? {} : { to }), ...(toAt === undefined ? {} : { toAt }), ...(after === undefined ? {} : { after }), ...(kind === undefined ? {} : { kind }), ...(id === undefined ? {} : { id }) }
}

/** A page of changes; with `ids`, also the cursor that resumes right after each change (GET /events' event ids). */
export interface ChangesPage {
  /** The owner's id; null when the caller's token is not valid (nothing is read then). */
  ownerId: number | null
  changes: Change[]
  cursor: string
  more: boolean
  ids?: string[]
}

type UrlBase = (resource: AnyResource) => string

export function changeFeed(db: Database, resources: readonly AnyResource[], options: { retentionDays: number }) {
  const kinds = resources.map((resource) => ({ resource, codec: rowCodec(resource), table: ident(resource.table) }))
  const byType = new Map(kinds.map((kind) => [kind.resource.singular, kind]))
  const retentionMs = options.retentionDays * 86_400_000

  /** The owner's id, the database's snapshot and clock; a 410 for a cursor not theirs or expired; undefined for a token not valid. */
  async function head(owner: Owner, cursor: Cursor | undefined) {
    const parts = new QueryParts()
    const me = ownerIdSql(owner, parts)
    const sql = `SELECT ${me} AS owner, pg_current_snapshot()::text AS now, (extract(epoch FROM now()) * 1000)::bigint AS at`
    const { rows: [state] = [] } = await db.query<{ owner: number | null; now: string; at: string }>(sql, parts.values)
    if (!state || state.owner === null) return undefined
    const at = Number(state.at)
    if (cursor && (cursor.o !== state.owner || cursor.at < at - retentionMs || cursor.at > at + 60_000)) throw expired()
    return { ownerId: state.owner, now: state.now, at }
  }

  /** The owner's whole state, one resource after another, by id, a page filled across them. */
  async function initial(ownerId: number, cursor: Cursor, limit: number, urlBase: UrlBase, withIds: boolean): Promise<ChangesPage> {
    const changes: Change[] = []
    const ids: string[] = []
    let index = cursor.kind ?? 0
    let after = cursor.id ?? 0
    for (let kind = kinds[index]; kind !== undefined; kind = kinds[++index], after = 0) {
      const room = limit - changes.length
      const { rows } = await db.query<{ item: unknown[] }>(
        `SELECT ${kind.codec.select([])} AS item FROM ${kind.table} t WHERE t.owner_id = $1 AND t.id > $2 ORDER BY t.id LIMIT $3`,
        [ownerId, after, room + 1]
      )
      for (const { item } of rows.slice(0, room)) {
        const data = kind.codec.decode(item, urlBase(kind.resource))
        changes.push({ type: kind.resource.singular, id: data.id as number, deleted: false, data })
        after = data.id as number
        if (withIds) ids.push(encodeCursor({ ...cursor, kind: index, id: after }))
      }
      // More of this resource than the page holds: the next page starts after the last one sent.
      if (rows.length > room) return { ownerId, changes, cursor: encodeCursor({ ...cursor, kind: index, id: after }), more: true, ...(withIds ? { ids } : {}) }
    }
    // Every resource sent: the cursor carries on with the changes since the start.
    const next = encodeCursor({ o: cursor.o, at: cursor.at, from: cursor.from })
    if (withIds && ids.length > 0) ids[ids.length - 1] = next
    return { ownerId, changes, cursor: next, more: false, ...(withIds ? { ids } : {}) }
  }

  /**
   * What changed after `cursor.from`, up to its window's end (now, unless paging): the log's
   * rows of the window (one per item, its latest change) in the order of the index, from
   * after the last one sent. A page reads its own rows, not the whole window again.
   */
  async function since(ownerId: number, cursor: Cursor, limit: number, urlBase: UrlBase, withIds: boolean): Promise<ChangesPage> {
    const items = kinds
      .map(({ resource, codec, table }) => `WHEN '${resource.singular}' THEN (SELECT ${codec.select([])} FROM ${table} t WHERE t.id = c.item_id AND t.owner_id = $1)`)
      .join(' ')
    // Before the first page, from the oldest transaction the cursor's snapshot may not have seen (its xmin).
    const [afterXid, afterKind, afterId] = cursor.after ?? [cursor.from.slice(0, cursor.from.indexOf(':')), '', 0]
    const { rows } = await db.query<{ upto: string; at: string; kind: string | null; id: number | null; xid: string | null; item: unknown[] | null }>(
      `WITH w AS (SELECT coalesce($3::pg_snapshot, pg_current_snapshot()) AS upto, $2::pg_snapshot AS from_),
       c AS (
         SELECT l.kind, l.item_id, l.xid FROM change_log l, w
         WHERE l.owner_id = $1 AND (l.xid, l.kind, l.item_id) > ($4::xid8, $7::text, $8::int) AND l.kind = ANY($6::text[])
           AND NOT pg_visible_in_snapshot(l.xid, w.from_) AND pg_visible_in_snapshot(l.xid, w.upto)
         ORDER BY l.xid, l.kind, l.item_id LIMIT $5
       )
       SELECT w.upto::text AS upto, (extract(epoch FROM now()) * 1000)::bigint AS at, c.kind, c.item_id AS id, c.xid::text AS xid,
              CASE c.kind ${items} END AS item
       FROM w LEFT JOIN c ON true ORDER BY c.xid, c.kind, c.item_id`,
      [ownerId, cursor.from, cursor.to ?? null, afterXid, limit + 1, kinds.map((kind) => kind.resource.singular), afterKind, afterId]
    )
    const upto = rows[0]?.upto ?? cursor.from
    const found = rows.filter((row) => row.kind !== null)
    const more = found.length > limit
    const sent = found.slice(0, limit)
    const changes = sent.map(({ kind, id, item }): Change => {
      const known = byType.get(kind as string)
      const data = item && known ? known.codec.decode(item, urlBase(known.resource)) : null
      return { type: kind as string, id: id as number, deleted: data === null, data }
    })
    const key = (row: (typeof sent)[number]): [string, string, number] => [row.xid as string, row.kind as string, row.id as number]
    // While paging, the window's far end stays fixed; once through, the next window starts there, as old as the moment it was taken.
    const paging = { o: cursor.o, at: cursor.at, from: cursor.from, to: upto, toAt: cursor.toAt ?? Number(rows[0]?.at) }
    const last = sent[sent.length - 1]
    const next: Cursor = more && last ? { ...paging, after: key(last) } : { o: cursor.o, at: cursor.toAt ?? Number(rows[0]?.at ?? cursor.at), from: upto }
    const ids = withIds ? sent.map((row, i) => (i === sent.length - 1 ? encodeCursor(next) : encodeCursor({ ...paging, after: key(row) }))) : undefined
    return { ownerId, changes, cursor: encodeCursor(next), more, ...(ids ? { ids } : {}) }
  }

  return {
    /**
     * A page of the owner's changes after `cursorText`; without one, their whole state.
     * `ownerId` is null when the token is not valid (nothing was read then).
     */
    async page(owner: Owner, cursorText: string | undefined, limit: number, urlBase: UrlBase, options: { ids?: boolean } = {}): Promise<ChangesPage> {
      const cursor = cursorText === undefined ? undefined : decodeCursor(cursorText)
      const state = await head(owner, cursor)
      if (state === undefined) return { ownerId: null, changes: [], cursor: '', more: false }
      const start: Cursor = cursor ?? { o: state.ownerId, at: state.at, from: state.now, kind: 0, id: 0 }
      const withIds = options.ids === true
      return start.kind !== undefined ? initial(state.ownerId, start, limit, urlBase, withIds) : since(state.ownerId, start, limit, urlBase, withIds)
    },

    /**
     * Where a stream starts: the cursor given (checked as a page would check it: 400, 410),
     * or one at the present, after which comes whatever changes from now on. Null when the
     * token is not valid.
     */
    async start(owner: Owner, cursorText: string | undefined): Promise<{ ownerId: number; cursor: string } | null> {
      const given = cursorText === undefined ? undefined : decodeCursor(cursorText)
      const state = await head(owner, given)
      if (state === undefined) return null
      return { ownerId: state.ownerId, cursor: cursorText ?? encodeCursor({ o: state.ownerId, at: state.at, from: state.now }) }
    },

    /** Deletes tombstones older than the retention, a batch at a time; how many. */
    async reap(): Promise<number> {
      let deleted = 0
      for (let batch = 0; batch < 50; batch++) {
        const { rowCount } = await db.write(
          // Tombstones only (an item's own row lasts as long as it does), an hour past the
          // retention: a change's time is its transaction's start, a little before its commit.
          `DELETE FROM change_log WHERE (kind, item_id) IN (
             SELECT kind, item_id FROM change_log WHERE deleted AND changed_at < now() - $1::float8 * interval '1 day' - interval '1 hour' LIMIT 1000 FOR UPDATE SKIP LOCKED
           ) AND deleted`,
          [options.retentionDays]
        )
        deleted += rowCount ?? 0
        if ((rowCount ?? 0) < 1000) break
      }
      return deleted
    }
  }
}

export type ChangeFeed = ReturnType<typeof changeFeed>
