import type { AnyResource } from '../crud/definition.js'
import cats from './cats/index.js'
import todos from './todos/index.js'

/**
 * The one list of resources: app.ts serves each with the CRUD plugin, the root document
 * links to each, and the docs give each a tag. Adding a resource is a migration, a folder
 * under routes/, and a line here.
 */
export const RESOURCES: readonly AnyResource[] = [todos, cats]
