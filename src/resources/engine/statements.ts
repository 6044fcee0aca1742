import { ownerIdFor, ownerIdSql, ownerRowFor, type Owner, type OwnerKind } from '../../accounts/owner.js'
import { QueryParts, ident } from '../../db/sql.js'
import { writableColumns, type AnyResource, type Column } from './define.js'
import { afterCursor, decodeCursor, orderBy, parseSort, sortKeysOf, type SortOrder } from './keyset.js'
import { BATCH_FORM, rowCodec, type RowCodec } from './rows.js'

/** What `If-Match` asked for: any current version (`*`) or one of these versions. */
export type Precondition = 'any' | number[]

export interface Statement {
  text: string
  values: unknown[]
}

/**
 * Every SQL text of a resource, built from its definition: the statements are fixed texts
 * (one prepared statement each) but for the filters a list adds and the columns a write
 * names. Every statement has the owner among its conditions (a user id, or the user of a
 * token valid now: accounts/owner.ts), so another owner's row is simply not found. Rows
 * come back in the codec's one form (rows.ts), with their version and owner last.
 */
export interface ResourceStatements {
  codec: RowCodec
  /** One row by id. $1 the id, $2 the owner. */
  getOne: Record<OwnerKind, string>
  /** Many rows by id, each for its own owner. $1 the ids, $2 the owners; `n` numbers the row's place. */
  getMany: Record<OwnerKind, string>
  list(owner: Owner, filters: Record<string, unknown>, options: { sort?: string | undefined; cursor?: string | undefined; limit: number }): Statement & { sort: SortOrder }
  count(owner: Owner, filters: Record<string, unknown>): Statement
  /** The INSERT of one row: $1..$n the columns, then the owner. Nothing for an owner that is not valid. */
  insertOne(columns: string[], kind: OwnerKind): string
  /**
   * The INSERT of many rows, one per place of a batch, each with its own owner: arrays of
   * the columns, then of the owners. Rows come back sorted by id, which is the batch's
   * order (the identity column numbers them in the order they are selected, the form
   * SQLAlchemy's `insertmanyvalues` uses on PostgreSQL), with the places whose owner was
   * valid, and those owners.
   */
  insertMany(columns: string[], kind: OwnerKind): string
  /** Changes a row, or with no changes reads it, checking the version in the same statement. */
  update(owner: Owner, id: number, changes: Array<[string, unknown]>, precondition: Precondition | undefined): Statement & { write: boolean }
  remove(owner: Owner, id: number, precondition: Precondition | undefined): Statement
  removeAll(owner: Owner): Statement
  /** After a conditional write touched no row: whether the owner's row exists (then its version was stale). */
  exists(owner: Owner, id: number): Statement
  /** The writable columns, by name. */
  writable: Map<string, Column>
}

export function resourceStatements(resource: AnyResource): ResourceStatements {
  const table = ident(resource.table)
  const codec = rowCodec(resource)
  const sorts = sortKeysOf(resource)
  const writable = new Map(writableColumns(resource).map((column) => [column.name, column]))
  // The owner last: lists need it for their cursor.
  const item = codec.select(['t.version', 't.owner_id'])

  const ownerCondition = (owner: Owner, parts = new QueryParts()) => parts.where(`t.owner_id = ${ownerIdSql(owner, parts)}`)
  const versionCondition = (precondition: Precondition | undefined, parts: QueryParts) => {
    if (precondition !== undefined && precondition !== 'any') parts.where(`t.version = ANY(${parts.param(precondition)}::int[])`)
  }
  const byId = (owner: Owner, id: number, precondition?: Precondition) => {
    const parts = new QueryParts()
    parts.where(`t.id = ${parts.param(id)}`)
    ownerCondition(owner, parts)
    versionCondition(precondition, parts)
    return parts
  }

  const getMany = (kind: OwnerKind) =>
    `SELECT r.n::int AS n, ${item} AS item FROM unnest($1::int[], $2::${kind === 'user' ? 'int' : 'bytea'}[]) WITH ORDINALITY AS r(id, owner, n) ` +
    `JOIN ${table} t ON t.id = r.id WHERE t.owner_id = ${ownerIdFor(kind, 'r.owner')}`

  // At most one text per set of columns and kind of owner, built when first needed.
  const cached = (build: (columns: string[], kind: OwnerKind) => string) => {
    const texts = new Map<string, string>()
    return (columns: string[], kind: OwnerKind) => {
      const key = `${kind}:${columns.join(',')}`
      let text = texts.get(key)
      if (text === undefined) texts.set(key, (text = build(columns, kind)))
      return text
    }
  }

  return {
    codec,
    writable,
    getOne: {
      user: `SELECT ${item} AS item FROM ${table} t WHERE t.id = $1 AND t.owner_id = ${ownerIdFor('user', '$2')}`,
      token: `SELECT ${item} AS item FROM ${table} t WHERE t.id = $1 AND t.owner_id = ${ownerIdFor('token', '$2')}`
    },
    getMany: { user: getMany('user'), token: getMany('token') },

    // The page as one json_agg of its rows: one value for node-postgres to read instead of
    // a row per item. json_agg keeps the order of its sorted, limited subquery (PostgREST
    // builds its pages the same way). One row more than the page shows whether there is a next.
    list(owner, filters, options) {
      const sort = parseSort(options.sort ?? resource.defaultSort, sorts)
      const parts = ownerCondition(owner)
      resource.filter(filters, parts)
      if (options.cursor !== undefined) {
        const cursor = decodeCursor(options.cursor, sort)
        // A cursor is its owner's: anyone else's pages after it are empty.
        parts.where(`t.owner_id = ${parts.param(cursor.owner)}::int`)
        parts.where(afterCursor(sort, cursor, parts))
      }
      const limit = parts.param(options.limit + 1)
      return {
        sort,
        values: parts.values,
        text: `SELECT json_agg(p.item) AS page FROM (SELECT ${item} AS item FROM ${table} t ${parts.whereClause()} ORDER BY ${orderBy(sort)} LIMIT ${limit}) p`
      }
    },

    count(owner, filters) {
      const parts = ownerCondition(owner)
      resource.filter(filters, parts)
      return { text: `SELECT count(*)::int AS count FROM ${table} t ${parts.whereClause()}`, values: parts.values }
    },

    insertOne: cached((columns, kind) => {
      const names = [...columns.map(ident), 'owner_id'].join(', ')
      const values = [...columns.map((_, i) => `$${i + 1}`), 'o.id'].join(', ')
      return `INSERT INTO ${table} AS t (${names}) SELECT ${values} FROM ${ownerRowFor(kind, `$${columns.length + 1}`)} o RETURNING ${item} AS item`
    }),

    // Rows go in by owner, so that row triggers taking a per-owner lock (todos' subtasks,
    // migrations/0007) take them in one order in every batch and two batches cannot deadlock.
    insertMany: cached((columns, kind) => {
      const forms = columns.map((column) => BATCH_FORM[(writable.get(column) as Column).kind])
      const arrays = [...forms.map((form, i) => `$${i + 1}::${form.type}`), `$${columns.length + 1}::${kind === 'user' ? 'int' : 'bytea'}[]`]
      const names = columns.map((_, i) => `c${i + 1}`)
      return (
        `WITH input AS (SELECT r.n, ${names.map((name, i) => `${(forms[i] as (typeof forms)[number]).element(`r.${name}`)} AS ${name}`).join(', ')}, ` +
        `${ownerIdFor(kind, 'r.owner')} AS owner_id FROM unnest(${arrays.join(', ')}) WITH ORDINALITY AS r(${[...names, 'owner', 'n'].join(', ')})), ` +
        `inserted AS (INSERT INTO ${table} AS t (${[...columns.map(ident), 'owner_id'].join(', ')}) ` +
        `SELECT ${names.join(', ')}, owner_id FROM input WHERE owner_id IS NOT NULL ORDER BY owner_id, n RETURNING t.id, ${item} AS item) ` +
        `SELECT (SELECT array_agg(n::int ORDER BY owner_id, n) FROM input WHERE owner_id IS NOT NULL) AS places, ` +
        `(SELECT array_agg(owner_id ORDER BY owner_id, n) FROM input WHERE owner_id IS NOT NULL) AS owners, (SELECT json_agg(item ORDER BY id) FROM inserted) AS items`
      )
    }),

    update(owner, id, changes, precondition) {
      const parts = byId(owner, id, precondition)
      if (changes.length === 0) return { write: false, text: `SELECT ${item} AS item FROM ${table} t ${parts.whereClause()}`, values: parts.values }
      // A JSON column is merged as RFC 7396 says a merge patch is, in the statement itself
      // (jsonb_merge_patch: migrations/0007).
      const assignments = changes
        .map(([column, value]) =>
          writable.get(column)?.kind === 'json' && value !== null ? `${ident(column)} = jsonb_merge_patch(t.${ident(column)}, ${parts.param(value)}::jsonb)` : `${ident(column)} = ${parts.param(value)}`
        )
        .join(', ')
      return { write: true, text: `UPDATE ${table} AS t SET ${assignments} ${parts.whereClause()} RETURNING ${item} AS item`, values: parts.values }
    },

    remove(owner, id, precondition) {
      const parts = byId(owner, id, precondition)
      return { text: `DELETE FROM ${table} AS t ${parts.whereClause()}`, values: parts.values }
    },

    removeAll(owner) {
      const parts = ownerCondition(owner)
      return { text: `DELETE FROM ${table} AS t ${parts.whereClause()}`, values: parts.values }
    },

    exists(owner, id) {
      const parts = byId(owner, id)
      return { text: `SELECT 1 FROM ${table} t ${parts.whereClause()}`, values: parts.values }
    }
  }
}
