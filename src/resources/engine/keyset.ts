import { ident, type QueryParts } from '../../db/sql.js'
import { badRequest } from '../../lib/problem.js'
import type { AnyResource, SortSpec } from './define.js'

/** A column a listing can be sorted by (also the item's property name). `id` always breaks ties, so every order is total. */
export interface SortKey extends SortSpec {
  column: string
}

/** The sort keys of a resource by name; each must be an item property (the cursor reads it from the item). */
export function sortKeysOf(resource: AnyResource): Record<string, SortKey> {
  for (const column of Object.keys(resource.sorts)) {
    if (!(column in resource.schemas.item.properties)) throw new Error(`${resource.plural}: sort key ${column} is not a property of the item schema`)
  }
  return Object.fromEntries(Object.entries(resource.sorts).map(([column, spec]) => [column, { column, ...spec }]))
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

function valueFits(value: unknown, type: SortSpec['type']): boolean {
  switch (type) {
    case 'integer':
      return Number.isInteger(value) && Math.abs(value as number) <= 2147483648
    case 'text':
      return typeof value === 'string'
    case 'timestamptz':
      return Number.isSafeInteger(value)
  }
}
