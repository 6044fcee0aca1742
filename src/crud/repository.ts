import { ownerIdSql, ownerKind, ownerRowSql, ownerValue, type Owner } from '../auth/owner.js'
import type { Database } from '../db/client.js'
import type { AnyResource } from './definition.js'
import { compile } from './compiled.js'
import { afterCursor, decodeCursor, encodeCursor, orderBy, parseSort } from './keyset.js'
import { keyedInsert } from './idempotency.js'
import { createInserts } from './inserts.js'
import { createLookups } from './lookups.js'
import { jsonUrlBase } from './item-json.js'
import { QueryParts, ident } from './sql.js'

/** Every resource table has these; the rest is the resource's own. Timestamps are ISO 8601 strings (db/timestamps.ts). */
export interface BaseRow {
  id: number
  version: number
  created_at: string
  updated_at: string
}

type Row = BaseRow & Record<string, unknown>
type Filters = Record<string, unknown>

/** What `If-Match` asked for: any current version (`*`) or one of these versions. */
export type Precondition = 'any' | number[]

export type WriteResult<T> = { status: 'ok'; row: T } | { status: 'not-found' } | { status: 'stale' }

export type { Owner }

export interface ListOptions {
  sort?: string | undefined
  limit: number
  cursor?: string | undefined
  /** What item URLs start with: `https://host/todos/`. */
  urlBase: string
}

export interface Page {
  /** The page's items, each with the item schema's properties in its order (JSON.stringify writes the serializer's bytes). */
  items: Array<Record<string, unknown>>
  /** Cursor of the next page; absent on the last one. */
  next?: string
}

/**
 * One item as the API sends it, with its id and version (the ETag): the item schema's
 * properties in its order (JSON.stringify writes the serializer's bytes), or, for an
 * answer recorded with an Idempotency-Key, JSON text PostgreSQL wrote in the same bytes.
 */
export interface Item {
  body: Record<string, unknown> | string
  id: number
  version: number
}

/**
 * Every read and write is one owner's: the owner is the first argument of each, and every
 * statement has `owner_id = <owner>` among its conditions, so no caller can forget it.
 * Another owner's row is simply not found. For a token that is not valid (unknown,
 * expired, revoked) nothing is found and nothing is written (`create` answers undefined);
 * the caller tells that apart from an empty result by checking the token then.
 * `urlBase` is what item URLs start with: `https://host/todos/`.
 */
export interface Repository {
  list(owner: Owner, filters: Filters, options: ListOptions): Promise<Page>
  count(owner: Owner, filters: Filters): Promise<number>
  get(owner: Owner, id: number, urlBase: string): Promise<Item | undefined>
  /**
   * With `idempotency` (a claimed Idempotency-Key), the row is written only while that
   * claim holds, and the answer is recorded with the key in the same statement.
   */
  create(owner: Owner, input: Record<string, unknown>, urlBase: string, idempotency?: { key: string; claim: string }): Promise<Item | undefined>
  update(owner: Owner, id: number, changes: Record<string, unknown>, precondition: Precondition | undefined, urlBase: string): Promise<WriteResult<Item>>
  remove(owner: Owner, id: number, precondition?: Precondition): Promise<WriteResult<undefined>>
  removeAll(owner: Owner): Promise<number>
}

/**
 * The statement `list` runs: the resource's filters, the keyset condition after the
 * cursor, the sort order and one row more than the page (to see whether there is a
 * next), each row's values as one JSON array, and the page as one json_agg of them: one
 * value for node-postgres to read instead of a row per item. json_agg keeps the order of
 * its sorted, limited subquery (PostgREST builds its pages the same way).
 */
export function listStatement(resource: AnyResource, owner: Owner, filters: Filters, options: Omit<ListOptions, 'urlBase'>) {
  const { table, sorts, itemArray } = compile(resource)
  const sort = parseSort(options.sort ?? resource.defaultSort, sorts)
  const parts = new QueryParts()
  parts.where(`t.owner_id = ${ownerIdSql(owner, parts)}`)
  resource.filter(filters, parts)
  if (options.cursor !== undefined) {
    const cursor = decodeCursor(options.cursor, sort)
    // A cursor is its owner's: anyone else's pages after it are empty.
    parts.where(`t.owner_id = ${parts.param(cursor.owner)}::int`)
    parts.where(afterCursor(sort, cursor, parts))
  }
  const limit = parts.param(options.limit + 1)
  return {
    sort,
    values: parts.values,
    text: `SELECT json_agg(p.item) AS page FROM (SELECT ${itemArray} AS item FROM ${table} t ${parts.whereClause()} ORDER BY ${orderBy(sort)} LIMIT ${limit}) p`
  }
}

/**
 * The SQL every resource shares, from its definition: keyset listing, counts, and writes
 * that check the row version in the same statement (optimistic concurrency: two editors
 * can never silently overwrite each other).
 */
export function createRepository(db: Database, resource: AnyResource): Repository {
  const { table, writable, itemJson, itemArray, read } = compile(resource)
  const lookup = createLookups(db, resource)

  // In the definition's order, not the client's: one statement text (and one prepared
  // statement) per set of columns, whatever order a body lists them in.
  const writableEntries = (input: Record<string, unknown>): Array<[string, unknown]> =>
    writable.filter((key) => input[key] !== undefined).map((key) => [key, input[key]])

  const versionCondition = (precondition: Precondition | undefined, parts: QueryParts) => {
    if (precondition !== undefined && precondition !== 'any') parts.where(`version = ANY(${parts.param(precondition)}::int[])`)
  }

  /**
   * The INSERT for a set of columns and a kind of owner, built once (at most one per
   * subset of the writable columns). Its row comes from a SELECT from the owner's row,
   * so an owner that is not valid inserts nothing.
   */
  const inserts = new Map<string, string>()
  const insertStatement = (columns: string[], owner: Owner, keyed: boolean) => {
    const key = `${ownerKind(owner)}:${keyed}:${columns.join(',')}`
    let sql = inserts.get(key)
    if (sql === undefined) {
      // $1..$n the columns, then the owner, and with a key: the item URLs' start (JSON),
      // the key, the claim and the item URLs' start (for Location). With a key the answer
      // is recorded in the same statement, so PostgreSQL writes its JSON text.
      const n = columns.length
      const names = [...columns.map(ident), 'owner_id'].join(', ')
      const values = [...columns.map((_, index) => `$${index + 1}`), 'o.id'].join(', ')
      const insert = (from: string, returning: string) => `INSERT INTO ${table} AS t (${names}) SELECT ${values} FROM ${from} RETURNING ${returning}`
      sql = keyed
        ? keyedInsert(insert('o', `${itemJson(`$${n + 2}`)} AS json, id, version`), {
            owner: ownerIdSql(owner, new QueryParts().skip(n)),
            key: `$${n + 3}`,
            claim: `$${n + 4}`,
            locationBase: `$${n + 5}`
          })
        : insert(`${ownerRowSql(owner, new QueryParts().skip(n))} o`, `${itemArray} AS item`)
      inserts.set(key, sql)
    }
    return sql
  }
  const insert = createInserts(db, resource, (columns, owner) => insertStatement(columns, owner, false))

  /** The condition every statement starts with: this owner's rows only. */
  const ownerParts = (owner: Owner, parts = new QueryParts()) => parts.where(`owner_id = ${ownerIdSql(owner, parts)}`)

  /** After a conditional write touched no row: was the owner's row missing, or was its version stale? */
  const missingOrStale = async (owner: Owner, id: number): Promise<WriteResult<never>> => {
    const parts = new QueryParts()
    parts.where(`id = ${parts.param(id)}`)
    ownerParts(owner, parts)
    const { rowCount } = await db.query(`SELECT 1 FROM ${table} ${parts.whereClause()}`, parts.values)
    return rowCount ? { status: 'stale' } : { status: 'not-found' }
  }

  /** An item from the array `itemArray` wrote (its version and owner last). */
  const toItem = (values: unknown[], urlBase: string): Item => {
    const body = read(values, urlBase)
    return { body, id: body.id as number, version: values[values.length - 2] as number }
  }

  return {
    async list(owner, filters, options) {
      const { text, values, sort } = listStatement(resource, owner, filters, options)
      const { rows } = await db.query<{ page: unknown[][] | null }>(text, values)
      const found = rows[0]?.page ?? []
      const more = found.length > options.limit
      const count = more ? options.limit : found.length
      const items = new Array<Record<string, unknown>>(count)
      for (let i = 0; i < count; i++) items[i] = read(found[i] as unknown[], options.urlBase)
      if (!more) return { items }
      const lastValues = found[count - 1] as unknown[]
      const last = items[count - 1] as Row
      return { items, next: encodeCursor(sort, last[sort.key.column], last.id, lastValues[lastValues.length - 1] as number) }
    },

    async count(owner, filters) {
      const parts = ownerParts(owner)
      resource.filter(filters, parts)
      const { rows } = await db.query<{ count: number }>(`SELECT count(*)::int AS count FROM ${table} ${parts.whereClause()}`, parts.values)
      return rows[0]?.count ?? 0
    },

    async get(owner, id, urlBase) {
      const values = await lookup(owner, id)
      return values && toItem(values, urlBase)
    },

    async create(owner, input, urlBase, idempotency) {
      const entries = writableEntries(input)
      if (idempotency === undefined) {
        const values = await insert(owner, entries)
        return values && toItem(values, urlBase)
      }
      const values = [...entries.map(([, value]) => value), ownerValue(owner)]
      values.push(jsonUrlBase(urlBase), idempotency.key, idempotency.claim, urlBase)
      const { rows } = await db.write<{ json: string; id: number; version: number }>(insertStatement(entries.map(([key]) => key), owner, true), values)
      const row = rows[0]
      return row && { body: row.json, id: row.id, version: row.version }
    },

    async update(owner, id, changes, precondition, urlBase) {
      const entries = writableEntries(changes)
      const parts = new QueryParts()
      parts.where(`id = ${parts.param(id)}`)
      ownerParts(owner, parts)
      versionCondition(precondition, parts)
      if (entries.length === 0) {
        // Nothing to change (an empty merge patch): answer with the current row, still
        // honouring If-Match.
        const { rows } = await db.query<{ item: unknown[] }>(`SELECT ${itemArray} AS item FROM ${table} t ${parts.whereClause()}`, parts.values)
        return rows[0] ? { status: 'ok', row: toItem(rows[0].item, urlBase) } : missingOrStale(owner, id)
      }
      const assignments = entries.map(([key, value]) => `${ident(key)} = ${parts.param(value)}`).join(', ')
      const { rows } = await db.write<{ item: unknown[] }>(`UPDATE ${table} AS t SET ${assignments} ${parts.whereClause()} RETURNING ${itemArray} AS item`, parts.values)
      return rows[0] ? { status: 'ok', row: toItem(rows[0].item, urlBase) } : missingOrStale(owner, id)
    },

    async remove(owner, id, precondition) {
      const parts = new QueryParts()
      parts.where(`id = ${parts.param(id)}`)
      ownerParts(owner, parts)
      versionCondition(precondition, parts)
      const { rowCount } = await db.write(`DELETE FROM ${table} ${parts.whereClause()}`, parts.values)
      return rowCount ? { status: 'ok', row: undefined } : missingOrStale(owner, id)
    },

    async removeAll(owner) {
      const parts = ownerParts(owner)
      const { rowCount } = await db.write(`DELETE FROM ${table} ${parts.whereClause()}`, parts.values)
      return rowCount ?? 0
    }
  }
}
