import { resourceRoutes } from '../../resource/routes.js'
import { todosRepository, type TodoRow } from './repository.js'
import { TodoCreateSchema, TodoFilters, TodoPatchSchema, TodoSchema, type TodoFilters as Filters } from './schemas.js'

/** The todos API: the shared resource routes with todos' schemas and repository. */
export default resourceRoutes<TodoRow, Filters>({
  singular: 'todo',
  plural: 'todos',
  path: '/todos',
  schemas: { item: TodoSchema, create: TodoCreateSchema, patch: TodoPatchSchema, filters: TodoFilters },
  sorts: ['order', 'created_at', 'due_date', 'title'],
  defaultSort: 'order',
  trim: ['title'],
  deleteAll: true,
  repository: (app) => todosRepository(app.db)
})
