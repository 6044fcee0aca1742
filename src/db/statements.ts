/**
 * Splits SQL text into its statements, for a migration that runs outside a transaction:
 * CREATE INDEX CONCURRENTLY cannot share a query string with anything else (PostgreSQL
 * runs a multi-statement string as one implicit transaction). Semicolons inside quotes,
 * quoted identifiers, dollar-quoted bodies and comments do not split.
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = []
  let start = 0
  let i = 0
  while (i < sql.length) {
    const char = sql[i]
    const next = sql[i + 1]
    if (char === '-' && next === '-') {
      const end = sql.indexOf('\n', i)
      i = end === -1 ? sql.length : end + 1
    } else if (char === '/' && next === '*') {
      const end = sql.indexOf('*/', i + 2)
      i = end === -1 ? sql.length : end + 2
    } else if (char === "'" || char === '"') {
      // A doubled quote is an escaped one: skipping both keeps us inside.
      let j = i + 1
      while (j < sql.length && !(sql[j] === char && sql[j + 1] !== char)) j += sql[j] === char ? 2 : 1
      i = j + 1
    } else if (char === '$') {
      const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i))?.[0]
      if (tag) {
        const end = sql.indexOf(tag, i + tag.length)
        i = end === -1 ? sql.length : end + tag.length
      } else i++
    } else if (char === ';') {
      statements.push(sql.slice(start, i))
      i++
      start = i
    } else i++
  }
  statements.push(sql.slice(start))
  return statements.map((statement) => statement.trim()).filter((statement) => statement.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '').trim() !== '')
}
