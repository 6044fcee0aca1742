import { writableOf, type AnyResource } from './definition.js'
import { itemArrayExpression, itemJsonExpression, itemReader } from './item-json.js'
import type { SortKey } from './keyset.js'
import { ident } from './sql.js'

/** What the SQL of a resource needs from its definition, worked out once per definition. */
const compiled = new WeakMap<
  AnyResource,
  { table: string; sorts: Record<string, SortKey>; writable: string[]; itemJson: (urlParam: string) => string; itemArray: string; read: ReturnType<typeof itemReader> }
>()
export function compile(resource: AnyResource) {
  let parts = compiled.get(resource)
  if (parts === undefined) {
    parts = {
      table: ident(resource.table),
      sorts: sortKeysOf(resource),
      writable: writableOf(resource),
      itemJson: itemJsonExpression(resource),
      // The owner last: lists need it for their cursor.
      itemArray: itemArrayExpression(resource, ['t.version', 't.owner_id']),
      read: itemReader(resource)
    }
    compiled.set(resource, parts)
  }
  return parts
}

/** The sort keys by name, each with its column; every one must be an item property (the cursor reads it from the item). */
function sortKeysOf(resource: AnyResource): Record<string, SortKey> {
  for (const column of Object.keys(resource.sorts)) {
    if (!(column in resource.schemas.item.properties)) throw new Error(`${resource.plural}: sort key ${column} is not a property of the item schema`)
  }
  return Object.fromEntries(Object.entries(resource.sorts).map(([column, key]) => [column, { column, ...key }]))
}
