import type { Database } from '../../plugins/db.js'
import { createTableRepository, type BaseRow } from '../../resource/repository.js'
import { containsPattern } from '../../resource/sql.js'
import type { TodoFilters } from './schemas.js'

export interface TodoRow extends BaseRow {
  title: string
  description: string | null
  completed: boolean
  order: number | null
  due_date: string | null
}

/** All SQL about todos: the table, its sort keys and its filters. */
export const todosRepository = (db: Database) =>
  createTableRepository<TodoRow, TodoFilters>(db, {
    table: 'todos',
    columns: ['title', 'description', 'completed', 'order', 'due_date'],
    writable: ['title', 'description', 'completed', 'order', 'due_date'],
    sorts: {
      // NULLs sort after every int4 order; after every date (indexes: migrations/0003).
      order: { column: 'order', type: 'integer', nulls: { cast: 'bigint', last: '2147483648' } },
      created_at: { column: 'created_at', type: 'timestamptz' },
      due_date: { column: 'due_date', type: 'timestamptz', nulls: { last: "'infinity'::timestamptz" } },
      title: { column: 'title', type: 'text' }
    },
    defaultSort: 'order',
    filter(filters, parts) {
      if (filters.completed !== undefined) parts.where(`completed = ${parts.param(filters.completed)}`)
      if (filters.due_before !== undefined) parts.where(`due_date < ${parts.param(filters.due_before)}::timestamptz`)
      if (filters.due_after !== undefined) parts.where(`due_date > ${parts.param(filters.due_after)}::timestamptz`)
      if (filters.q !== undefined) {
        const pattern = parts.param(containsPattern(filters.q))
        parts.where(`(title ILIKE ${pattern} OR description ILIKE ${pattern})`)
      }
    }
  })
