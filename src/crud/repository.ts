import type { Database } from '../db/client.js'
import { columnsOf, writableOf, type AnyResource } from './definition.js'
import { afterCursor, decodeCursor, encodeCursor, orderBy, parseSort, type SortKey } from './keyset.js'
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

export interface ListOptions {
  sort?: string | undefined
  limit: number
  cursor?: string | undefined
}

export interface Page {
  rows: Row[]
  /** Cursor of the next page; absent on the last one. */
  next?: string
}

export interface Repository {
  list(filters: Filters, options: ListOptions): Promise<Page>
  count(filters: Filters): Promise<number>
  get(id: number): Promise<Row | undefined>
  create(input: Record<string, unknown>): Promise<Row>
  update(id: number, changes: Record<string, unknown>, precondition?: Precondition): Promise<WriteResult<Row>>
  remove(id: number, precondition?: Precondition): Promise<WriteResult<undefined>>
  removeAll(): Promise<number>
}

/** What the SQL of a resource needs from its definition, worked out once per definition. */
const compiled = new WeakMap<AnyResource, { table: string; returning: string; sorts: Record<string, SortKey>; writable: Set<string> }>()
function compile(resource: AnyResource) {
  let parts = compiled.get(resource)
  if (parts === undefined) {
    parts = {
      table: ident(resource.table),
      returning: ['id', ...columnsOf(resource), 'version', 'created_at', 'updated_at'].map(ident).join(', '),
      sorts: Object.fromEntries(Object.entries(resource.sorts).map(([column, key]) => [column, { column, ...key }])),
      writable: new Set(writableOf(resource))
    }
    compiled.set(resource, parts)
  }
  return parts
}

/**
 * The statement `list` runs: the resource's filters, the keyset condition after the
 * cursor, the sort order and one row more than the page (to see whether there is a next).
 */
export function listStatement(resource: AnyResource, filters: Filters, options: ListOptions) {
  const { table, returning, sorts } = compile(resource)
  const sort = parseSort(options.sort ?? resource.defaultSort, sorts)
  const parts = new QueryParts()
  resource.filter(filters, parts)
  if (options.cursor !== undefined) parts.where(afterCursor(sort, decodeCursor(options.cursor, sort), parts))
  const limit = parts.param(options.limit + 1)
  return { sort, values: parts.values, text: `SELECT ${returning} FROM ${table} ${parts.whereClause()} ORDER BY ${orderBy(sort)} LIMIT ${limit}` }
}

/**
 * The SQL every resource shares, from its definition: keyset listing, counts, and writes
 * that check the row version in the same statement (optimistic concurrency: two editors
 * can never silently overwrite each other).
 */
export function createRepository(db: Database, resource: AnyResource): Repository {
  const { table, returning, writable } = compile(resource)

  const writableEntries = (input: Record<string, unknown>) =>
    Object.entries(input).filter(([key, value]) => writable.has(key) && value !== undefined)

  const versionCondition = (precondition: Precondition | undefined, parts: QueryParts) => {
    if (precondition !== undefined && precondition !== 'any') parts.where(`version = ANY(${parts.param(precondition)}::int[])`)
  }

  /** After a conditional write touched no row: was it missing, or was the version stale? */
  const missingOrStale = async (id: number): Promise<WriteResult<never>> => {
    const { rowCount } = await db.query(`SELECT 1 FROM ${table} WHERE id = $1`, [id])
    return rowCount ? { status: 'stale' } : { status: 'not-found' }
  }

  return {
    async list(filters, options) {
      const { text, values, sort } = listStatement(resource, filters, options)
      const { rows } = await db.query<Row>(text, values)
      if (rows.length <= options.limit) return { rows }
      rows.length = options.limit
      const last = rows[rows.length - 1] as Row
      return { rows, next: encodeCursor(sort, last[sort.key.column], last.id) }
    },

    async count(filters) {
      const parts = new QueryParts()
      resource.filter(filters, parts)
      const { rows } = await db.query<{ count: number }>(`SELECT count(*)::int AS count FROM ${table} ${parts.whereClause()}`, parts.values)
      return rows[0]?.count ?? 0
    },

    async get(id) {
      const { rows } = await db.query<Row>(`SELECT ${returning} FROM ${table} WHERE id = $1`, [id])
      return rows[0]
    },

    async create(input) {
      const entries = writableEntries(input)
      const columns = entries.map(([key]) => ident(key)).join(', ')
      const values = entries.map((_, index) => `$${index + 1}`).join(', ')
      const sql = entries.length
        ? `INSERT INTO ${table} (${columns}) VALUES (${values}) RETURNING ${returning}`
        : `INSERT INTO ${table} DEFAULT VALUES RETURNING ${returning}`
      const { rows } = await db.query<Row>(sql, entries.map(([, value]) => value))
      return rows[0] as Row
    },

    async update(id, changes, precondition) {
      const entries = writableEntries(changes)
      const parts = new QueryParts()
      parts.where(`id = ${parts.param(id)}`)
      versionCondition(precondition, parts)
      if (entries.length === 0) {
        // Nothing to change (an empty merge patch): answer with the current row, still
        // honouring If-Match.
        const { rows } = await db.query<Row>(`SELECT ${returning} FROM ${table} ${parts.whereClause()}`, parts.values)
        return rows[0] ? { status: 'ok', row: rows[0] } : missingOrStale(id)
      }
      const assignments = entries.map(([key, value]) => `${ident(key)} = ${parts.param(value)}`).join(', ')
      const { rows } = await db.query<Row>(`UPDATE ${table} SET ${assignments} ${parts.whereClause()} RETURNING ${returning}`, parts.values)
      return rows[0] ? { status: 'ok', row: rows[0] } : missingOrStale(id)
    },

    async remove(id, precondition) {
      const parts = new QueryParts()
      parts.where(`id = ${parts.param(id)}`)
      versionCondition(precondition, parts)
      const { rowCount } = await db.query(`DELETE FROM ${table} ${parts.whereClause()}`, parts.values)
      return rowCount ? { status: 'ok', row: undefined } : missingOrStale(id)
    },

    async removeAll() {
      const { rowCount } = await db.query(`DELETE FROM ${table}`)
      return rowCount ?? 0
    }
  }
}
