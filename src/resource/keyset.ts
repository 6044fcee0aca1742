import { badRequest } from '../lib/problem.js'
import { ident, type QueryParts } from './sql.js'

export type ColumnType = 'integer' | 'text' | 'timestamptz'

/** A column a listing can be sorted by. `id` always breaks ties, so every order is total. */
export interface SortKey {
  /** The column, which is also the row's property name. */
  column: string
  type: ColumnType
  nullable: boolean
}

export interface SortOrder {
  /** As given in `?sort=`, e.g. `-due_date`. */
  name: string
  key: SortKey
  descending: boolean
}

export interface Cursor {
  value: string | number | null
  id: number
}

export function parseSort(name: string, keys: Record<string, SortKey>): SortOrder {
  const descending = name.startsWith('-')
  const key = keys[descending ? name.slice(1) : name]
  if (key === undefined) throw badRequest('INVALID_SORT', `cannot sort by ${name}`)
  return { name, key, descending }
}

/**
 * Ascending puts NULLs last, descending is its exact mirror (NULLs first), so one B-tree
 * index on (column, id) serves both directions.
 */
export function orderBy({ key, descending }: SortOrder): string {
  const col = ident(key.column)
  return descending ? `${col} DESC NULLS FIRST, id DESC` : `${col} ASC NULLS LAST, id ASC`
}

/**
 * The rows after `cursor` in `sort` order: a keyset ("seek") condition, so each page is an
 * index range scan however deep it is, and rows inserted or deleted meanwhile never make a
 * later page skip or repeat a row (an OFFSET would).
 */
export function afterCursor({ key, descending }: SortOrder, cursor: Cursor, parts: QueryParts): string {
  const id = parts.param(cursor.id)
  const col = ident(key.column)
  if (cursor.value === null) {
    // Inside the NULL group, which is last ascending and first descending.
    return descending ? `(${col} IS NOT NULL OR id < ${id})` : `(${col} IS NULL AND id > ${id})`
  }
  const value = `${parts.param(cursor.value)}::${key.type}`
  // A row comparison is false for NULL columns: those rows come after (ascending) or
  // were already passed (descending).
  if (descending) return `(${col}, id) < (${value}, ${id})`
  return key.nullable ? `((${col}, id) > (${value}, ${id}) OR ${col} IS NULL)` : `(${col}, id) > (${value}, ${id})`
}

/** The opaque cursor for the page after `row`. */
export function encodeCursor(sort: SortOrder, value: unknown, id: number): string {
  return Buffer.from(JSON.stringify([sort.name, value, id])).toString('base64url')
}

/** Reads a cursor back, refusing one that is malformed or was made for another order. */
export function decodeCursor(token: string, sort: SortOrder): Cursor {
  const invalid = () => badRequest('INVALID_CURSOR', 'cursor is malformed or belongs to another sort order; start again without it')
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'))
  } catch {
    throw invalid()
  }
  if (!Array.isArray(decoded) || decoded.length !== 3) throw invalid()
  const [name, value, id] = decoded as [unknown, unknown, unknown]
  if (name !== sort.name || !Number.isSafeInteger(id) || (id as number) < 1) throw invalid()
  if (value === null ? !sort.key.nullable : !valueFits(value, sort.key.type)) throw invalid()
  return { value: value as Cursor['value'], id: id as number }
}

function valueFits(value: unknown, type: ColumnType): boolean {
  switch (type) {
    case 'integer':
      return Number.isInteger(value) && Math.abs(value as number) <= 2147483648
    case 'text':
      return typeof value === 'string'
    case 'timestamptz':
      return typeof value === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(value) && !Number.isNaN(Date.parse(value))
  }
}
