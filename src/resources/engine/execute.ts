import { ownerKind, ownerValue, type Owner } from '../../accounts/owner.js'
import type { Database, Statements } from '../../db/client.js'
import { HttpProblem } from '../../lib/problem.js'
import type { AnyResource } from './define.js'
import { encodeCursor } from './keyset.js'
import { batchedCreates, batchedReads, createOne, readOne, type BatchWatch } from './batching.js'
import { toParameter } from './rows.js'
import type { Precondition, ResourceStatements } from './statements.js'

/** One item as the API sends it (the item schema's properties in its order), with its id and version (the ETag). */
export interface Item {
  body: Record<string, unknown>
  id: number
  version: number
}

export type WriteResult<T> = { status: 'ok'; row: T } | { status: 'not-found' } | { status: 'stale' }

export interface Page {
  items: Array<Record<string, unknown>>
  /** Cursor of the next page; absent on the last one. */
  next?: string
}

/**
 * A resource's statements run on `app.db`: reads and writes of one owner, each returning
 * items as the API sends them. With `batching`, lookups by id and creates of one turn of
 * the event loop share a statement (batching.ts); nothing above this seam can tell.
 * For a token that is not valid, nothing is found and nothing is written (`create`
 * answers undefined); the routes tell that apart from an empty result by checking the
 * token then.
 */
export function createExecutor(
  db: Database,
  sql: ResourceStatements,
  options: { batching: boolean; watch: { read: BatchWatch; create: BatchWatch }; constraints?: AnyResource['constraints'] }
) {
  const read = options.batching ? batchedReads(db, sql, options.watch.read) : readOne(db, sql)
  const create = options.batching ? batchedCreates(db, sql, options.watch.create) : createOne(db, sql)
  /** A write that broke one of the resource's named constraints (nothing was written): its 422. */
  const refused = (error: unknown): never => {
    const { code = '', constraint = '' } = error as { code?: string; constraint?: string }
    const known = code.startsWith('23') ? options.constraints?.[constraint] : undefined
    if (known) throw new HttpProblem(422, known.code, known.detail, { errors: [{ in: 'body', field: known.field, message: known.detail }], cause: error })
    throw error
  }

  /** An item from the array the codec wrote (its version and owner last). */
  const toItem = (values: unknown[], urlBase: string): Item => {
    const body = sql.codec.decode(values, urlBase)
    return { body, id: body.id as number, version: values[values.length - 2] as number }
  }
  // In the definition's order, not the client's: one statement text (and one prepared
  // statement) per set of columns, whatever order a body lists them in.
  const writableEntries = (input: Record<string, unknown>): Array<[string, unknown]> =>
    [...sql.writable.keys()].filter((name) => input[name] !== undefined).map((name) => [name, input[name]])
  /** After a conditional write touched no row: was the owner's row missing, or was its version stale? */
  const missingOrStale = async (owner: Owner, id: number): Promise<WriteResult<never>> => {
    const { text, values } = sql.exists(owner, id)
    return (await db.query(text, values)).rowCount ? { status: 'stale' } : { status: 'not-found' }
  }

  return {
    async list(owner: Owner, filters: Record<string, unknown>, options: { sort?: string | undefined; cursor?: string | undefined; limit: number; urlBase: string }): Promise<Page> {
      const { text, values, sort } = sql.list(owner, filters, options)
      const { rows } = await db.query<{ page: unknown[][] | null }>(text, values)
      const found = rows[0]?.page ?? []
      const more = found.length > options.limit
      const count = more ? options.limit : found.length
      const items = new Array<Record<string, unknown>>(count)
      for (let i = 0; i < count; i++) items[i] = sql.codec.decode(found[i] as unknown[], options.urlBase)
      if (!more) return { items }
      const lastValues = found[count - 1] as unknown[]
      const last = items[count - 1] as Record<string, unknown>
      return { items, next: encodeCursor(sort, last[sort.key.column], last.id as number, lastValues[lastValues.length - 1] as number) }
    },

    async count(owner: Owner, filters: Record<string, unknown>): Promise<number> {
      const { text, values } = sql.count(owner, filters)
      return (await db.query<{ count: number }>(text, values)).rows[0]?.count ?? 0
    },

    async get(owner: Owner, id: number, urlBase: string): Promise<Item | undefined> {
      const values = await read(owner, id)
      return values && toItem(values, urlBase)
    },

    async create(owner: Owner, input: Record<string, unknown>, urlBase: string): Promise<Item | undefined> {
      const entries = writableEntries(input)
      const values = await create(
        owner,
        entries.map(([name]) => name),
        entries.map(([, value]) => value)
      ).catch(refused)
      return values && toItem(values, urlBase)
    },

    /** A create inside a transaction of its caller's (an Idempotency-Key's): never batched. */
    async createIn(tx: Statements, owner: Owner, input: Record<string, unknown>, urlBase: string): Promise<Item | undefined> {
      const entries = writableEntries(input)
      const parameters = entries.map(([name, value]) => toParameter(sql.writable.get(name)?.kind ?? 'text', value))
      const columns = entries.map(([name]) => name)
      const { rows } = await tx.write<{ item: unknown[] }>(sql.insertOne(columns, ownerKind(owner)), [...parameters, ownerValue(owner)]).catch(refused)
      return rows[0] && toItem(rows[0].item, urlBase)
    },

    async update(owner: Owner, id: number, changes: Record<string, unknown>, precondition: Precondition | undefined, urlBase: string): Promise<WriteResult<Item>> {
      const entries = writableEntries(changes).map(([name, value]): [string, unknown] => [name, toParameter(sql.writable.get(name)?.kind ?? 'text', value)])
      const { text, values, write } = sql.update(owner, id, entries, precondition)
      const { rows } = await (write ? db.write<{ item: unknown[] }>(text, values) : db.query<{ item: unknown[] }>(text, values)).catch(refused)
      return rows[0] ? { status: 'ok', row: toItem(rows[0].item, urlBase) } : missingOrStale(owner, id)
    },

    async remove(owner: Owner, id: number, precondition: Precondition | undefined): Promise<WriteResult<undefined>> {
      const { text, values } = sql.remove(owner, id, precondition)
      return (await db.write(text, values)).rowCount ? { status: 'ok', row: undefined } : missingOrStale(owner, id)
    },

    async removeAll(owner: Owner): Promise<number> {
      const { text, values } = sql.removeAll(owner)
      return (await db.write(text, values)).rowCount ?? 0
    }
  }
}

export type Executor = ReturnType<typeof createExecutor>
