import type { Static, TObject, TProperties } from '@sinclair/typebox'
import type { SortKey } from './keyset.js'
import type { QueryParts } from './sql.js'

/**
 * Everything about one resource, in one place: its names, its table, its schemas, how it
 * sorts and filters. The CRUD plugin (plugin.ts) turns it into routes, the repository
 * (repository.ts) into SQL, and the root document and the docs read it for links and tags.
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
  /** The collection's path, the plugin's prefix: `/todos`. */
  path: `/${string}`
  /** What the resource is, for the docs tag. */
  description: string
  table: string
  schemas: {
    /**
     * What a client sees: `id`, the table's own columns, `url` (added from the id),
     * `created_at`, `updated_at`. Its other properties are the columns read back.
     */
    item: Item
    create: Create
    /** Every property is a column a client may write. */
    patch: Patch
    /** Query-string filters; sorting and pagination parameters are added to them. */
    filters: Filters
  }
  /** Sort keys by column name; `id` breaks ties. */
  sorts: Record<string, Omit<SortKey, 'column'>>
  defaultSort: string
  /** Text fields trimmed before validation, so length limits apply to what is stored. */
  trim?: readonly string[]
  /** Adds `DELETE <path>`, which empties the collection (the Todo-Backend spec needs it). */
  deleteAll?: boolean
  /** Adds the validated filters to a statement: the only SQL a resource writes. */
  filter(filters: Static<TObject<Filters>>, parts: QueryParts): void
}

/** A definition of any resource, as the engine handles it. */
export type AnyResource = ResourceDefinition<TObject, TObject, TObject, TProperties>

/** Types the definition's `filter` from its schemas. */
export const defineResource = <Item extends TObject, Create extends TObject, Patch extends TObject, Filters extends TProperties>(
  definition: ResourceDefinition<Item, Create, Patch, Filters>
) => definition

/** Item properties that are not the resource's own columns. */
const ENGINE_PROPERTIES = new Set(['id', 'url', 'created_at', 'updated_at'])

/** The table's own columns, read back on every query (besides id, version and the timestamps). */
export const columnsOf = (resource: AnyResource) => Object.keys(resource.schemas.item.properties).filter((name) => !ENGINE_PROPERTIES.has(name))

/** The columns a client may write. */
export const writableOf = (resource: AnyResource) => Object.keys(resource.schemas.patch.properties)
