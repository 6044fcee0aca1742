import { containsPattern } from '../../db/sql.js'
import { defineResource } from '../engine/define.js'
import { demoTodos } from './demo.js'
import { TodoCreateSchema, todoFilters, TodoPatchSchema, TodoSchema } from './schemas.js'

/** Todos: the Todo-Backend resource. Everything the engine (resources/engine/) needs to serve it. */
export default defineResource({
  singular: 'todo',
  plural: 'todos',
  path: '/todos',
  description: 'Todo items (Todo-Backend compatible)',
  table: 'todos',
  schemas: { item: TodoSchema, create: TodoCreateSchema, patch: TodoPatchSchema, filters: todoFilters },
  sorts: {
    // NULLs sort after every int4 order; after every date (indexes: migrations/0003).
    order: { type: 'integer', nulls: { cast: 'bigint', last: '2147483648' } },
    created_at: { type: 'timestamptz' },
    due_date: { type: 'timestamptz', nulls: { last: "'infinity'::timestamptz" } },
    title: { type: 'text' }
  },
  defaultSort: 'order',
  trim: ['title'],
  deleteAll: true,
  demo: { key: 'title', rows: demoTodos },
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
