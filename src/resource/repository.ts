import type { Database } from '../plugins/db.js'
import { afterCursor, decodeCursor, encodeCursor, orderBy, parseSort, type SortKey } from './keyset.js'
import { QueryParts, ident } from './sql.js'

/** Every resource table has these; the rest is the resource's own. Timestamps are ISO 8601 strings (db/timestamps.ts). */
export interface BaseRow {
  id: number
  version: number
  created_at: string
  updated_at: string
}

/** What `If-Match` asked for: any current version (`*`) or one of these versions. */
export type Precondition = 'any' | number[]

export type WriteResult<T> = { status: 'ok'; row: T } | { status: 'not-found' } | { status: 'stale' }

export interface ListOptions {
  sort?: string | undefined
  limit: number
  cursor?: string | undefined
}

export interface Page<Row> {
  rows: Row[]
  /** Cursor of the next page; absent on the last one. */
  next?: string
}

/** A table as a resource: its columns, what a client may write, sort keys and filters. */
export interface TableSpec<Filters> {
  table: string
  /** Columns read back (besides id, version, created_at, updated_at). */
  columns: readonly string[]
  /** Columns a client may set; anything else in an input object is ignored. */
  writable: readonly string[]
  sorts: Record<string, SortKey>
  defaultSort: string
  /** Adds the resource's filters (from the validated query string) to `parts`. */
  filter(filters: Filters, parts: QueryParts): void
}

export interface TableRepository<Row extends BaseRow, Filters> {
  list(filters: Filters, options: ListOptions): Promise<Page<Row>>
  /** The statement `list` runs (it fetches one row more than the page, to see if there is a next). */
  listQuery(filters: Filters, options: ListOptions): { text: string; values: unknown[] }
  count(filters: Filters): Promise<number>
  get(id: number): Promise<Row | undefined>
  create(input: Record<string, unknown>): Promise<Row>
  update(id: number, changes: Record<string, unknown>, precondition?: Precondition): Promise<WriteResult<Row>>
  remove(id: number, precondition?: Precondition): Promise<WriteResult<undefined>>
  removeAll(): Promise<number>
}

/**
 * The SQL every resource shares, parameterised by its `TableSpec`: keyset listing, counts,
 * and writes that check the row version in the same statement (optimistic concurrency:
 * two editors can never silently overwrite each other).
 */
export function createTableRepository<Row extends BaseRow, Filters>(db: Database, spec: TableSpec<Filters>): TableRepository<Row, Filters> {
  const table = ident(spec.table)
  const returning = ['id', ...spec.columns, 'version', 'created_at', 'updated_at'].map(ident).join(', ')
  const writable = new Set(spec.writable)

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

  const buildList = (filters: Filters, options: ListOptions) => {
    const sort = parseSort(options.sort ?? spec.defaultSort, spec.sorts)
    const parts = new QueryParts()
    spec.filter(filters, parts)
    if (options.cursor !== undefined) parts.where(afterCursor(sort, decodeCursor(options.cursor, sort), parts))
    const limit = parts.param(options.limit + 1)
    return { sort, values: parts.values, text: `SELECT ${returning} FROM ${table} ${parts.whereClause()} ORDER BY ${orderBy(sort)} LIMIT ${limit}` }
  }

  return {
    listQuery(filters, options) {
      const { text, values } = buildList(filters, options)
      return { text, values }
    },

    async list(filters, options) {
      const { text, values, sort } = buildList(filters, options)
      // One row more than asked tells whether there is a next page, without a count.
      const { rows } = await db.query<Row>(text, values)
      if (rows.length <= options.limit) return { rows }
      rows.length = options.limit
      const last = rows[rows.length - 1] as Row
      return { rows, next: encodeCursor(sort, (last as unknown as Record<string, unknown>)[sort.key.column], last.id) }
    },

    async count(filters) {
      const parts = new QueryParts()
      spec.filter(filters, parts)
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
