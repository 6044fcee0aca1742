import { validTokenUserSql, type Owner } from '../auth/owner.js'
import type { Database } from '../db/client.js'
import { perTurn, rejectAll, type Waiting } from './batch.js'
import { compile } from './compiled.js'
import type { AnyResource } from './definition.js'
import { ident } from './sql.js'

type Insert = Waiting<{ owner: Owner; columns: string[]; values: unknown[] }, unknown[] | undefined>

/**
 * Creates without an Idempotency-Key, batched as lookups are (lookups.ts): the creates
 * of one turn of the event loop with the same set of columns and the same kind of owner
 * go to PostgreSQL as one INSERT, one statement and one commit for them all, each row
 * with its own owner (an owner that is not valid inserts nothing, as alone). A create
 * alone in its turn runs the plain statement.
 *
 * Which row is whose: the INSERT takes its rows `ORDER BY` their place in the batch, so
 * the identity column numbers them in that order, and the new rows sorted by id are the
 * batch's rows in order (the form SQLAlchemy's `insertmanyvalues` uses on PostgreSQL to
 * give each parameter set its row); the statement also returns which places had a valid
 * owner. A batch is one statement, so it commits whole or not at all:
 * - a connection lost or a statement timed out is the same answer for each create it
 *   carried as for a create alone (503, or 504 OUTCOME_UNKNOWN when it may have committed);
 * - a value PostgreSQL refuses (a constraint or a data error: SQLSTATE class 22 or 23)
 *   made the whole statement fail with nothing written, so each create is then run alone
 *   and gets its own answer: one bad row never fails another request.
 */
export function createInserts(
  db: Database,
  resource: AnyResource,
  single: (columns: string[], owner: Owner) => string
): (owner: Owner, entries: Array<[string, unknown]>) => Promise<unknown[] | undefined> {
  const { table, itemArray } = compile(resource)
  const types = sqlTypes(resource)
  const statements = new Map<string, string>()
  const batchStatement = (kind: 'user' | 'token', columns: string[]) => {
    const key = `${kind}:${columns.join(',')}`
    let text = statements.get(key)
    if (text === undefined) {
      const arrays = [...columns.map((column, i) => `$${i + 1}::${types.get(column) as string}[]`), `$${columns.length + 1}::${kind === 'user' ? 'int' : 'bytea'}[]`]
      const names = columns.map((_, i) => `c${i + 1}`)
      const owner = kind === 'user' ? 'r.owner' : validTokenUserSql('r.owner')
      text =
        `WITH input AS (SELECT r.n, ${names.map((name) => `r.${name}`).join(', ')}, ${owner} AS owner_id ` +
        `FROM unnest(${arrays.join(', ')}) WITH ORDINALITY AS r(${[...names, 'owner', 'n'].join(', ')})), ` +
        `inserted AS (INSERT INTO ${table} AS t (${[...columns.map(ident), 'owner_id'].join(', ')}) ` +
        `SELECT ${names.join(', ')}, owner_id FROM input WHERE owner_id IS NOT NULL ORDER BY n RETURNING t.id, ${itemArray} AS item) ` +
        `SELECT (SELECT array_agg(n::int ORDER BY n) FROM input WHERE owner_id IS NOT NULL) AS places, (SELECT json_agg(item ORDER BY id) FROM inserted) AS items`
      statements.set(key, text)
    }
    return text
  }
  const ownerValue = (owner: Owner) => owner.tokenHash ?? owner.userId

  const alone = (insert: Insert) => {
    const { owner, columns, values } = insert.input
    db.write<{ item: unknown[] }>(single(columns, owner), [...values, ownerValue(owner)]).then(({ rows }) => insert.resolve(rows[0]?.item), insert.reject)
  }

  const enqueue = perTurn<Insert['input'], unknown[] | undefined>((_key, waiting) => {
    const { owner, columns } = (waiting[0] as Insert).input
    if (waiting.length === 1 || !columns.every((column) => types.has(column))) {
      for (const insert of waiting) alone(insert)
      return
    }
    const values: unknown[][] = [...columns.map(() => new Array<unknown>(waiting.length)), new Array<unknown>(waiting.length)]
    waiting.forEach((insert, i) => {
      insert.input.values.forEach((value, c) => ((values[c] as unknown[])[i] = value))
      ;(values[columns.length] as unknown[])[i] = ownerValue(insert.input.owner)
    })
    db.write<{ places: number[] | null; items: unknown[][] | null }>(batchStatement(owner.tokenHash === undefined ? 'user' : 'token', columns), values).then(
      ({ rows }) => {
        const { places, items } = rows[0] ?? { places: null, items: null }
        if ((places?.length ?? 0) !== (items?.length ?? 0)) return rejectAll(waiting)(new Error('a batched insert returned a row count that does not match its input'))
        const found = new Array<unknown[] | undefined>(waiting.length)
        places?.forEach((place, i) => (found[place - 1] = items?.[i]))
        waiting.forEach((insert, i) => insert.resolve(found[i]))
      },
      (error: unknown) => {
        if (/^2[23]/.test((error as { code?: string }).code ?? '')) for (const insert of waiting) alone(insert)
        else rejectAll(waiting)(error)
      }
    )
  })

  return (owner, entries) => {
    const columns = entries.map(([column]) => column)
    return enqueue(`${owner.tokenHash === undefined ? 'user' : 'token'}:${columns.join(',')}`, { owner, columns, values: entries.map(([, value]) => value) })
  }
}

/**
 * The SQL type of each writable column whose schema says it plainly (text, integer,
 * boolean, date-time): what a batch's arrays are cast to. A column not here is never
 * batched, and a value a type refuses (an integer past int4) fails the batch with a
 * data error, so its creates run alone.
 */
function sqlTypes(resource: AnyResource): Map<string, string> {
  const types = new Map<string, string>()
  for (const [name, schema] of Object.entries(resource.schemas.patch.properties)) {
    const { type, format } = schema as { type?: string | string[]; format?: string }
    const kind = (Array.isArray(type) ? type : [type]).find((candidate) => candidate !== 'null')
    const sql = kind === 'string' ? (format === 'date-time' ? 'timestamptz' : 'text') : kind === 'integer' ? 'int' : kind === 'boolean' ? 'boolean' : undefined
    if (sql !== undefined) types.set(name, sql)
  }
  return types
}
