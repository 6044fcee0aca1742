import { ownerKind, ownerValue, validTokenUserSql, type Owner, type OwnerKind } from '../auth/owner.js'
import type { Database } from '../db/client.js'
import { outcomeUnknown } from '../lib/problem.js'
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
 * - a value PostgreSQL refuses (a constraint, a data error, a type: SQLSTATE class 22,
 *   23 or 42) made the whole statement fail with nothing written, so each create is then
 *   run alone and gets its own answer: one bad row never fails another request.
 * The order holds because every resource's id is an identity column and no trigger
 * fires on insert (test/batches.test.ts checks both); and each row's owner is checked
 * against its place's, so even a broken order could never hand one owner another's row.
 * Rows one batch creates share their created_at (the statement's time).
 */
export function createInserts(
  db: Database,
  resource: AnyResource,
  single: (columns: string[], owner: Owner) => string
): (owner: Owner, entries: Array<[string, unknown]>) => Promise<unknown[] | undefined> {
  const { table, itemArray } = compile(resource)
  const types = sqlTypes(resource)
  const statements = new Map<string, string>()
  const batchStatement = (kind: OwnerKind, columns: string[]) => {
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
        `SELECT (SELECT array_agg(n::int ORDER BY n) FROM input WHERE owner_id IS NOT NULL) AS places, ` +
        `(SELECT array_agg(owner_id ORDER BY n) FROM input WHERE owner_id IS NOT NULL) AS owners, (SELECT json_agg(item ORDER BY id) FROM inserted) AS items`
      statements.set(key, text)
    }
    return text
  }

  const alone = (insert: Insert) => {
    const { owner, columns, values } = insert.input
    db.write<{ item: unknown[] }>(single(columns, owner), [...values, ownerValue(owner)])
      .then(({ rows }) => insert.resolve(rows[0]?.item))
      .catch(insert.reject)
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
    db.write<{ places: number[] | null; owners: number[] | null; items: unknown[][] | null }>(batchStatement(ownerKind(owner), columns), values)
      .then(
        ({ rows }) => {
          const { places = [], owners = [], items = [] } = nonNull(rows[0])
          // The rows are committed: if they cannot be told apart, nobody may be told "retry".
          if (places.length !== items.length || items.some((item, i) => item[item.length - 1] !== owners[i])) {
            throw outcomeUnknown(new Error('a batched INSERT returned rows that do not match its input'))
          }
          const found = new Array<unknown[] | undefined>(waiting.length)
          places.forEach((place, i) => (found[place - 1] = items[i]))
          waiting.forEach((insert, i) => insert.resolve(found[i]))
        },
        (error: unknown) => {
          if (REFUSED.test((error as { code?: string }).code ?? '')) for (const insert of waiting) alone(insert)
          else throw error
        }
      )
      .catch(rejectAll(waiting))
  })

  return (owner, entries) => {
    const columns = entries.map(([column]) => column)
    return enqueue(`${ownerKind(owner)}:${columns.join(',')}`, { owner, columns, values: entries.map(([, value]) => value) })
  }
}

/**
 * What PostgreSQL refused in the statement itself, so that nothing was written: a data
 * exception (22), a constraint (23), or a type or a name the statement got wrong (42:
 * a column whose type the batch's cast does not fit). Not a cancel (57014) or a lost
 * connection (the db plugin's 503 and 504): those are every create's answer alike.
 */
const REFUSED = /^(22|23|42)[0-9A-Z]{3}$/

const nonNull = <T extends object>(row: T | undefined): { [K in keyof T]?: NonNullable<T[K]> } =>
  Object.fromEntries(Object.entries(row ?? {}).filter(([, value]) => value !== null)) as { [K in keyof T]?: NonNullable<T[K]> }

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
