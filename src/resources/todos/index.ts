import { containsPattern, type QueryParts } from '../../db/sql.js'
import { defineResource } from '../engine/define.js'
import { demoTodos } from './demo.js'
import { TodoCreateSchema, todoFilters, TodoPatchSchema, TodoSchema } from './schemas.js'

/** `column = id`, or `column IS NULL` for `null`; an id past int4 matches nothing. */
const idOrNull = (column: 'list_id' | 'parent_id', value: string, parts: QueryParts) => {
  if (value === 'null') return `${column} IS NULL`
  const id = Number(value)
  return id > 2147483647 ? 'false' : `${column} = ${parts.param(id)}`
}

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
    title: { type: 'text' },
    priority: { type: 'integer' }
  },
  defaultSort: 'order',
  trim: ['title', 'labels'],
  deleteAll: true,
  // What only the database can check (migrations/0007, 0008): the same answer whether the
  // list or todo named does not exist or is another user's.
  constraints: {
    todos_list_fk: { field: 'list_id', code: 'LIST_NOT_FOUND', detail: 'list_id names no list of yours' },
    todos_parent_fk: { field: 'parent_id', code: 'PARENT_NOT_FOUND', detail: 'parent_id names no todo of yours' },
    todos_parent_list: { field: 'list_id', code: 'PARENT_IN_OTHER_LIST', detail: "a subtask is in its parent's list: move the parent, or set parent_id to null" },
    todos_parent_cycle: { field: 'parent_id', code: 'PARENT_CYCLE', detail: 'a todo cannot be a subtask of itself or of its own subtasks' },
    todos_parent_depth: { field: 'parent_id', code: 'TOO_DEEP', detail: 'subtasks nest at most 4 levels below a top-level todo' },
    todos_metadata_check: { field: 'metadata', code: 'METADATA_TOO_LARGE', detail: 'metadata, merged, would be over 8192 bytes as returned or over 50 keys' }
  },
  demo: { key: 'title', rows: demoTodos },
  filter(filters, parts) {
    if (filters.completed !== undefined) parts.where(`completed = ${parts.param(filters.completed)}`)
    if (filters.due_before !== undefined) parts.where(`due_date < ${parts.param(filters.due_before)}::timestamptz`)
    if (filters.due_after !== undefined) parts.where(`due_date > ${parts.param(filters.due_after)}::timestamptz`)
    if (filters.q !== undefined) {
      const pattern = parts.param(containsPattern(filters.q))
      parts.where(`(title ILIKE ${pattern} OR description ILIKE ${pattern})`)
    }
    if (filters.list_id !== undefined) parts.where(idOrNull('list_id', filters.list_id, parts))
    if (filters.parent_id !== undefined) parts.where(idOrNull('parent_id', filters.parent_id, parts))
    if (filters.label !== undefined) parts.where(`labels && ${parts.param(filters.label)}::text[]`)
    if (filters.priority !== undefined) parts.where(`priority = ${parts.param(filters.priority)}`)
  }
})
