import type { Static, TObject, TProperties, TSchema } from '@sinclair/typebox'
import type { QueryParts } from '../../db/sql.js'

/** A column a listing can be sorted by, as its definition names it; `id` always breaks ties. */
export interface SortSpec {
  type: 'integer' | 'text' | 'timestamptz'
  /**
   * For a column that can be NULL: the value NULLs sort as, beyond every real value (and
   * the cast that makes room for it). The sort key is then never NULL, so one row
   * comparison is an index range on every page; the index must be on the same
   * expression, `coalesce(column::cast, last)` (see migrations/0003).
   */
  nulls?: { cast?: string; last: string }
}

/**
 * Everything about one resource, in one place: its names, its table, its schemas, how it
 * sorts and filters, and its demo data. The engine turns it into routes (routes.ts) and
 * SQL (statements.ts); the docs, the root document, seeding and the account texts read it
 * from the list of resources (resources/index.ts).
 */
export interface ResourceDefinition<
  Item extends TObject = TObject,
  Create extends TObject = TObject,
  Patch extends TObject = TObject,
  Filters extends TProperties = TProperties
> {
  /** For messages, OpenAPI operation ids and the docs tag (the plural). */
  singular: string
  plural: string
  /** The collection's path: `/todos`. */
  path: `/${string}`
  /** What the resource is, for the docs tag. */
  description: string
  table: string
  schemas: {
    /**
     * What a client sees: `id`, the table's own columns, `url` (added from the id),
     * `created_at`, `updated_at`. Every property but `url` is a column read back; its
     * schema says how (integer, boolean, text, date-time, an array of text, or JSON).
     */
    item: Item
    create: Create
    /** Every property is a column a client may write. */
    patch: Patch
    /** Query-string filters; sorting and pagination parameters are added to them. */
    filters: Filters
  }
  /** Sort keys by column name. */
  sorts: Record<string, SortSpec>
  defaultSort: string
  /** Text fields trimmed before validation, so length limits apply to what is stored. */
  trim?: readonly string[]
  /**
   * Database constraints a client's values can break, by name, each answered 422 naming
   * the field: what only the database can check (a reference to another row, a rule
   * over several rows). Any other constraint broken is the generic 409 or 400.
   */
  constraints?: Record<string, { field: string; code: string; detail: string }>
  /** Adds `DELETE <path>`, which empties the collection (the Todo-Backend spec needs it). */
  deleteAll?: boolean
  /** Adds the validated filters to a statement: the only SQL a resource writes. */
  filter(filters: Static<TObject<Filters>>, parts: QueryParts): void
  /** Demo data (`make seed`, `make dev` on an empty database): create bodies, each added once, told apart by `key`. */
  demo?: { key: string & keyof Static<Create>; rows(): Array<Static<Create>> }
}

/** A definition of any resource, as the engine handles it. */
export type AnyResource = ResourceDefinition<TObject, TObject, TObject, TProperties>

/** Types the definition's `filter` from its schemas. */
export const defineResource = <Item extends TObject, Create extends TObject, Patch extends TObject, Filters extends TProperties>(
  definition: ResourceDefinition<Item, Create, Patch, Filters>
) => definition

/** How a column's values travel: each kind has its SQL type, its form in JSON, and its own handling in a batch. */
export type ColumnKind = 'integer' | 'number' | 'boolean' | 'text' | 'timestamp' | 'text-array' | 'json'

export interface Column {
  name: string
  kind: ColumnKind
}

/** The kind of column a property's schema describes (a `null` alternative aside). */
export function kindOf(schema: TSchema): ColumnKind {
  const { type, format, items } = schema as { type?: string | string[]; format?: string; items?: { type?: string } }
  const kind = (Array.isArray(type) ? type : [type]).find((candidate) => candidate !== 'null')
  if (kind === 'integer') return 'integer'
  if (kind === 'number') return 'number'
  if (kind === 'boolean') return 'boolean'
  if (kind === 'string') return format === 'date-time' ? 'timestamp' : 'text'
  if (kind === 'array' && items?.type === 'string') return 'text-array'
  return 'json'
}

/** The columns an item is read from: every property of the item schema but `url`, in its order. */
export const itemColumns = (resource: AnyResource): Column[] =>
  Object.entries(resource.schemas.item.properties)
    .filter(([name]) => name !== 'url')
    .map(([name, schema]) => ({ name, kind: kindOf(schema) }))

/** The columns a client may write, in the definition's order. */
export const writableColumns = (resource: AnyResource): Column[] =>
  Object.entries(resource.schemas.patch.properties).map(([name, schema]) => ({ name, kind: kindOf(schema) }))
