import pg from 'pg'

const TIMESTAMPTZ_OID = 1184
const UTC = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$/

/**
 * `timestamptz` values as ISO 8601 strings (`2026-12-24T17:00:00.000Z`) instead of Date
 * objects: what the API sends anyway, without a Date made and written again per value. The fast path needs the
 * session time zone to be UTC (the official image's default; a pooler's sessions may
 * carry another, and the service sets none); anything else takes a Date round trip,
 * slower but as exact.
 */
export function timestampAsIso(text: string): string {
  const match = UTC.exec(text)
  if (match) return `${match[1]}T${match[2]}.${(match[3] ?? '').padEnd(3, '0').slice(0, 3)}Z`
  const parsed: unknown = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text')(text)
  // 'infinity' and friends come back as text; keep them as they are.
  return parsed instanceof Date && !Number.isNaN(parsed.getTime()) ? parsed.toISOString() : text
}

/** Type parsers for a pool: node-postgres' own, but timestamptz as ISO strings. */
export const isoTimestampTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === TIMESTAMPTZ_OID && format !== 'binary') return timestampAsIso
    return pg.types.getTypeParser(oid, format)
  }
}
