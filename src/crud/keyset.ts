import { badRequest } from '../lib/problem.js'
import { ident, type QueryParts } from './sql.js'

export type ColumnType = 'integer' | 'text' | 'timestamptz'

/** A column a listing can be sorted by. `id` always breaks ties, so every order is total. */
export interface SortKey {
  /** The column, which is also the row's property name. */
  column: string
  type: ColumnType
  /**
   * For a column that can be NULL: the value NULLs sort as, beyond every real value (and
   * the cast that makes room for it). The sort key is then never NULL, so one row
   * comparison is an index range on every page; the index must be on the same
   * expression, `coalesce(column::cast, last)` (see migrations/0003).
   */
  nulls?: { cast?: string; last: string }
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
  /** Whose page it continues. */
  owner: number
}

export function parseSort(name: string, keys: Record<string, SortKey>): SortOrder {
  const descending = name.startsWith('-')
  const key = keys[descending ? name.slice(1) : name]
  if (key === undefined) throw badRequest('INVALID_SORT', `cannot sort by ${name}`)
  return { name, key, descending }
}

/** The sort key as SQL: the column, or for a nullable one the coalesce its index is on. */
function keyExpression(key: SortKey): string {
  const col = ident(key.column)
  return key.nulls ? `coalesce(${col}${key.nulls.cast ? `::${key.nulls.cast}` : ''}, ${key.nulls.last})` : col
}

/** A cursor value as SQL of the sort key's type (timestamps travel as epoch milliseconds). */
function valueExpression(key: SortKey, placeholder: string): string {
  const value = key.type === 'timestamptz' ? `to_timestamp(${placeholder}::float8 / 1000)` : `${placeholder}::${key.type}`
  return key.nulls ? `coalesce(${value}${key.nulls.cast ? `::${key.nulls.cast}` : ''}, ${key.nulls.last})` : value
}

/**
 * Ascending puts NULLs last, descending is its exact mirror (NULLs first), so one B-tree
 * index on (key, id) serves both directions.
 */
export function orderBy({ key, descending }: SortOrder): string {
  const expression = keyExpression(key)
  return descending ? `${expression} DESC, id DESC` : `${expression} ASC, id ASC`
}

/**
 * The rows after `cursor` in `sort` order: a keyset ("seek") condition, so each page is an
 * index range scan however deep it is, and rows inserted or deleted meanwhile never make a
 * later page skip or repeat a row (an OFFSET would).
 */
export function afterCursor({ key, descending }: SortOrder, cursor: Cursor, parts: QueryParts): string {
  const value = valueExpression(key, parts.param(cursor.value))
  return `(${keyExpression(key)}, id) ${descending ? '<' : '>'} (${value}, ${parts.param(cursor.id)})`
}

/** The opaque cursor for the page after `row` (of `owner`'s rows). */
export function encodeCursor(sort: SortOrder, value: unknown, id: number, owner: number): string {
  // Timestamps as epoch milliseconds: exact, and valid for any year PostgreSQL stores.
  const plain = sort.key.type === 'timestamptz' && typeof value === 'string' ? Date.parse(value) : value
  return Buffer.from(JSON.stringify([sort.name, plain, id, owner])).toString('base64url')
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
  if (!Array.isArray(decoded) || decoded.length !== 4) throw invalid()
  const [name, value, id, owner] = decoded as [unknown, unknown, unknown, unknown]
  const isId = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 1 && (n as number) <= 2147483647
  if (name !== sort.name || !isId(id) || !isId(owner)) throw invalid()
  if (value === null ? sort.key.nulls === undefined : !valueFits(value, sort.key.type)) throw invalid()
  return { value: value as Cursor['value'], id: id as number, owner: owner as number }
}

function valueFits(value: unknown, type: ColumnType): boolean {
  switch (type) {
    case 'integer':
      return Number.isInteger(value) && Math.abs(value as number) <= 2147483648
    case 'text':
      return typeof value === 'string'
    case 'timestamptz':
      return Number.isSafeInteger(value)
  }
}
