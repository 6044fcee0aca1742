import { containsPattern } from '../../db/sql.js'
import { defineResource } from '../engine/define.js'
import { demoLists } from './demo.js'
import { ListCreateSchema, listFilters, ListPatchSchema, ListSchema } from './schemas.js'

/**
 * Lists: the projects todos belong to (a todo without one is in its owner's inbox).
 * Deleting a list deletes its todos, in the same statement (a foreign key's cascade).
 */
export default defineResource({
  singular: 'list',
  plural: 'lists',
  path: '/lists',
  description: "A user's lists of todos. Deleting a list deletes its todos and their subtasks",
  table: 'lists',
  schemas: { item: ListSchema, create: ListCreateSchema, patch: ListPatchSchema, filters: listFilters },
  sorts: {
    // NULLs after every int4 position (indexes: migrations/0007).
    position: { type: 'integer', nulls: { cast: 'bigint', last: '2147483648' } },
    title: { type: 'text' },
    created_at: { type: 'timestamptz' }
  },
  defaultSort: 'position',
  trim: ['title'],
  demo: { key: 'title', rows: demoLists },
  filter(filters, parts) {
    if (filters.archived !== undefined) parts.where(`archived = ${parts.param(filters.archived)}`)
    if (filters.q !== undefined) parts.where(`title ILIKE ${parts.param(containsPattern(filters.q))}`)
  }
})
