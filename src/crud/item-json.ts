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
