import { ident } from '../../db/sql.js'
import { itemColumns, type AnyResource, type Column, type ColumnKind } from './define.js'

/**
 * The one form rows travel in between PostgreSQL and the service: each row's columns as
 * one JSON array PostgreSQL writes (`json_build_array`), which node-postgres reads with a
 * single JSON.parse (a page is one `json_agg` of them), and which becomes the item with
 * the item schema's properties in its order, so JSON.stringify writes exactly the bytes of
 * the schema's serializer (test/resources/rows.test.ts compares them). Every column kind
 * has its JSON form: date-times go out as UTC `timestamp` (`2026-12-24T17:00:00.5`, the
 * same whatever the session's time zone or DateStyle) and come back as ISO 8601 with
 * milliseconds; arrays and jsonb are JSON already.
 */
export interface RowCodec {
  /** The row as one JSON array, then `extra` expressions (the version and the owner). */
  select(extra: readonly string[]): string
  /** The item a client sees, from such an array: its url from `urlBase` and the id. */
  decode(values: unknown[], urlBase: string): Record<string, unknown>
}

export function rowCodec(resource: AnyResource): RowCodec {
  const columns = itemColumns(resource)
  const properties = Object.keys(resource.schemas.item.properties)
  const idIndex = columns.findIndex((column) => column.name === 'id')
  // For each property in the schema's order: where its value is in the array (-1: url), and whether it is a date-time.
  const sources = properties.map((name) => {
    const index = columns.findIndex((column) => column.name === name)
    return { name, index, timestamp: columns[index]?.kind === 'timestamp' }
  })
  return {
    select: (extra) =>
      `json_build_array(${[...columns.map(({ name, kind }) => (kind === 'timestamp' ? `t.${ident(name)} AT TIME ZONE 'UTC'` : `t.${ident(name)}`)), ...extra].join(', ')})`,
    decode(values, urlBase) {
      const item: Record<string, unknown> = {}
      for (const { name, index, timestamp } of sources) {
        const value = index === -1 ? `${urlBase}${String(values[idIndex])}` : values[index]
        item[name] = timestamp && typeof value === 'string' ? utcIso(value) : value
      }
      return item
    }
  }
}

/**
 * A value as a statement parameter of its column: node-postgres sends a JS array as a
 * PostgreSQL array, right for `text[]` but not for `jsonb`, which gets its JSON text.
 */
export const toParameter = (kind: ColumnKind, value: unknown) => (kind === 'json' && value !== null && value !== undefined ? JSON.stringify(value) : value)

/**
 * How a batch of rows sends one column: an array parameter of this SQL type, and what a
 * row's element becomes after `unnest` (`c`: the element). PostgreSQL arrays are
 * rectangular and unnest flattens them, so a batch sends a row's `text[]` as a jsonb
 * array and turns it back into `text[]` per row.
 */
export const BATCH_FORM: Record<ColumnKind, { type: string; element: (c: string) => string; value: (v: unknown) => unknown }> = {
  integer: { type: 'int[]', element: (c) => c, value: (v) => v },
  number: { type: 'float8[]', element: (c) => c, value: (v) => v },
  boolean: { type: 'boolean[]', element: (c) => c, value: (v) => v },
  text: { type: 'text[]', element: (c) => c, value: (v) => v },
  timestamp: { type: 'timestamptz[]', element: (c) => c, value: (v) => v },
  json: { type: 'jsonb[]', element: (c) => c, value: (v) => (v === null || v === undefined ? v : JSON.stringify(v)) },
  'text-array': {
    type: 'jsonb[]',
    element: (c) => `CASE WHEN ${c} IS NULL THEN NULL ELSE ARRAY(SELECT e FROM jsonb_array_elements_text(${c}) WITH ORDINALITY AS x(e, n) ORDER BY n) END`,
    value: (v) => (v === null || v === undefined ? v : JSON.stringify(v))
  }
}

export type { Column }

/**
 * PostgreSQL's JSON text of a UTC `timestamp` (`2026-12-24T17:00:00`, with the fraction
 * only as long as it needs) as the API's ISO 8601 (`2026-12-24T17:00:00.000Z`). Columns
 * are `timestamptz(3)`, so there are never more than three digits.
 */
const utcIso = (text: string) => (text.length === 19 ? `${text}.000Z` : `${`${text}00`.slice(0, 23)}Z`)
