import { Type } from '@sinclair/typebox'
import { DateTime, DateTimeInput, Int32, Nullable, NOT_BLANK } from '../../lib/schema.js'

const Title = Type.String({
  maxLength: 500,
  pattern: NOT_BLANK,
  description: '1 to 500 characters, not blank; surrounding whitespace is trimmed'
})
const Description = Type.String({ maxLength: 10_000 })
const Order = Int32({ description: 'Position for clients that order their list (Todo-Backend)' })
const DueDate = DateTimeInput({ description: 'RFC 3339 date-time with a time zone, e.g. 2026-12-24T18:00:00Z' })

export const TodoSchema = Type.Object(
  {
    id: Type.Integer(),
    title: Type.String(),
    description: Nullable(Type.String()),
    completed: Type.Boolean(),
    order: Nullable(Type.Integer()),
    due_date: Nullable(DateTime()),
    url: Type.String({ format: 'uri', description: 'Absolute URL of this todo' }),
    created_at: DateTime(),
    updated_at: DateTime()
  },
  { $id: 'Todo', title: 'Todo' }
)

const writable = {
  title: Title,
  description: Type.Optional(Nullable(Description)),
  completed: Type.Optional(Type.Boolean()),
  order: Type.Optional(Nullable(Order)),
  due_date: Type.Optional(Nullable(DueDate))
}

export const TodoCreateSchema = Type.Object(writable, { additionalProperties: false, title: 'TodoCreate' })

export const TodoPatchSchema = Type.Object(
  { ...writable, title: Type.Optional(Title) },
  { additionalProperties: false, title: 'TodoPatch', description: 'Fields to change; null clears an optional field' }
)

export const todoFilters = {
  completed: Type.Optional(Type.Boolean({ description: 'Only completed (true) or open (false) todos' })),
  due_before: Type.Optional(DateTimeInput({ description: 'Only todos due before this instant' })),
  due_after: Type.Optional(DateTimeInput({ description: 'Only todos due after this instant' })),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Case-insensitive substring of title or description' }))
}
