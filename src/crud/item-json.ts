import type { AnyResource } from './definition.js'
import { ident } from './sql.js'

/**
 * The item as JSON text, written by PostgreSQL: the item schema's properties in its
 * order, `url` from $1 (the item URL's start, already a JSON string's opening) and the id,
 * timestamps as the ISO 8601 text the API sends everywhere (UTC, milliseconds, whatever
 * the session's time zone), text through to_json, which escapes as JSON.stringify does.
 * So the bytes are those the schema serializer writes for the same row
 * (test/list-json.test.ts compares them). Plain concatenation: a row_to_json over a
 * subquery per row costs PostgreSQL a fifth more.
 */
export function itemJsonExpression(resource: AnyResource): (urlParam: string) => string {
  const fields = Object.entries(resource.schemas.item.properties).map(([name, schema]) => {
    const key = JSON.stringify(name).replaceAll("'", "''") // inside an SQL string literal
    if (name === 'url') return `${key}:' || $URL || t.id || '"`
    const { type, format } = schema as { type?: string | string[]; format?: string }
    const types = Array.isArray(type) ? type : [type]
    const kind = types.find((candidate) => candidate !== 'null')
    const column = `t.${ident(name)}`
    let value: string
    if (kind === 'string' && format === 'date-time') value = `'"' || to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || '"'`
    else if (kind === 'string') value = `to_json(${column})::text`
    else if (kind === 'integer' || kind === 'boolean') value = `${column}::text`
    else {
      // Floats, numerics, objects and unions are written differently by PostgreSQL and by
      // the serializer (1e+20 vs 100000000000000000000, spacing, key order): refuse them
      // here rather than send bytes the schema does not promise.
      throw new Error(`${resource.plural}.${name}: the JSON writer handles string, date-time, integer and boolean properties, not ${JSON.stringify(type)}`)
    }
    // Every value falls back to null, so a NULL column can never make the whole item NULL.
    return `${key}:' || coalesce(${value}, 'null') || '`
  })
  const [before, after] = `'{${fields.join(',')}}'`.split('$URL') as [string, string]
  return (urlParam) => `${before}${urlParam}${after}`
}


/** What item URLs start with, as the opening of a JSON string (for $1 of the item expression). */
export const jsonUrlBase = (urlBase: string) => JSON.stringify(urlBase).slice(0, -1)

/**
 * The item's own columns as one JSON array written by PostgreSQL, in the item schema's
 * order (every property but `url`), then `extra` expressions: what reads and unkeyed
 * writes return. The cheapest form of a row for PostgreSQL to write and for node-postgres
 * to read: one json value (parsed with JSON.parse). The text above costs PostgreSQL about
 * twice as much per row (to_char above all: a 100-item page 580 µs against 305 µs), and a
 * row of columns costs node-postgres a parser per column. Date-times go out as UTC
 * `timestamp`, whose JSON text (`2026-12-24T17:00:00.5`) depends on neither the session's
 * time zone nor DateStyle; `itemReader` completes them.
 */
export function itemArrayExpression(resource: AnyResource, extra: readonly string[] = []): string {
  const values = ownColumns(resource).map(({ name, dateTime }) => (dateTime ? `t.${ident(name)} AT TIME ZONE 'UTC'` : `t.${ident(name)}`))
  return `json_build_array(${[...values, ...extra].join(', ')})`
}

/**
 * Reads the array `itemArrayExpression` wrote into the item as the API sends it, its
 * URL from `urlBase` (`https://host/todos/`) and the id, with the item schema's
 * properties in its order: JSON.stringify then writes exactly the bytes of the schema's
 * serializer (test/list-json.test.ts compares them, from a plain column read).
 */
export function itemReader(resource: AnyResource): (values: unknown[], urlBase: string) => Record<string, unknown> {
  // In the schema's order, `url` included, so JSON.stringify writes the serializer's bytes.
  const properties = Object.entries(resource.schemas.item.properties).map(([name, schema]) => ({ name, dateTime: (schema as { format?: string }).format === 'date-time' }))
  const sources = properties.map(({ name }) => ownColumns(resource).findIndex((column) => column.name === name))
  const idIndex = ownColumns(resource).findIndex((column) => column.name === 'id')
  return (values, urlBase) => {
    const item: Record<string, unknown> = {}
    for (let i = 0; i < properties.length; i++) {
      const { name, dateTime } = properties[i] as { name: string; dateTime: boolean }
      const source = sources[i] as number
      const value = source === -1 ? `${urlBase}${String(values[idIndex])}` : values[source]
      item[name] = dateTime && typeof value === 'string' ? utcIso(value) : value
    }
    return item
  }
}

/** The item properties that are columns (all but `url`), in the schema's order. */
const ownColumns = (resource: AnyResource) =>
  Object.entries(resource.schemas.item.properties)
    .filter(([name]) => name !== 'url')
    .map(([name, schema]) => ({ name, dateTime: (schema as { format?: string }).format === 'date-time' }))

/**
 * PostgreSQL's JSON text of a UTC `timestamp` (`2026-12-24T17:00:00`, with the fraction
 * only as long as it needs) as the API's ISO 8601 (`2026-12-24T17:00:00.000Z`). Columns
 * are `timestamptz(3)`, so there are never more than three digits.
 */
const utcIso = (text: string) => (text.length === 19 ? `${text}.000Z` : `${`${text}00`.slice(0, 23)}Z`)
