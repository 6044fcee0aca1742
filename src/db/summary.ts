/**
 * A statement's low-cardinality summary, as OpenTelemetry's `db.query.summary` has it:
 * its operation and main table (`SELECT todos`, `INSERT idempotency_keys`, `COMMIT`).
 * A write is named by what it writes, whatever it reads first; a read by the first table
 * it reads (not a function such as `unnest(...)`). Runs once per distinct statement text,
 * which is ours, never a client's.
 */
export function querySummary(text: string): string {
  const write = /\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?([A-Za-z_][\w.]*)/i.exec(text)
  if (write) return `${(write[1] as string).split(/\s+/)[0]?.toUpperCase()} ${write[2]}`.slice(0, 80)
  const verb = /^\s*([A-Za-z]+)/.exec(text)?.[1]?.toUpperCase() ?? 'OTHER'
  if (verb !== 'SELECT' && verb !== 'WITH') return verb
  const read = /\b(?:FROM|JOIN)\s+"?([A-Za-z_][\w.]*)\b(?!\s*\()/i.exec(text)
  return read ? `SELECT ${read[1]}`.slice(0, 80) : 'SELECT'
}
