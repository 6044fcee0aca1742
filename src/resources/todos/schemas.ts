import { Type } from '@sinclair/typebox'
import { DateTime, DateTimeInput, Int32, MAX_JSON_BYTES, MAX_JSON_DEPTH, Nullable, NOT_BLANK } from '../../lib/schema.js'

const Title = Type.String({
  maxLength: 500,
  pattern: NOT_BLANK,
  description: '1 to 500 characters, not blank; surrounding whitespace is trimmed'
})
const Description = Type.String({ maxLength: 10_000 })
const Order = Int32({ description: 'Position for clients that order their list (Todo-Backend)' })
const DueDate = DateTimeInput({ description: 'RFC 3339 date-time with a time zone, e.g. 2026-12-24T18:00:00Z' })
const ListId = Int32({ minimum: 1, description: 'The list it is in (one of yours); null: your inbox' })
const ParentId = Int32({ minimum: 1, description: 'The todo it is a subtask of (yours, in the same list; at most 4 levels below a top-level todo); null: none' })
const Label = Type.String({ minLength: 1, maxLength: 60, pattern: NOT_BLANK, description: '1 to 60 characters; trimmed' })
const Labels = Type.Array(Label, { maxItems: 20, description: 'At most 20; stored once each, in the order first given' })
const Priority = Type.Integer({ minimum: 1, maximum: 4, description: '1 normal, 2 medium, 3 high, 4 urgent' })
/**
 * Clients' own data, kept as jsonb: key order and whitespace are not kept, values are.
 * The database has the last word on the size (migrations/0007), as a PATCH merges.
 */
const Metadata = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  maxProperties: 50,
  [MAX_JSON_BYTES]: 8192,
  [MAX_JSON_DEPTH]: 16,
  description:
    "A JSON object for the client's own data: at most 50 keys, 8 KiB as the API returns it, objects and arrays nested at most 16 deep. " +
    'Returned with the same values (key order is not kept). PATCH merges it as JSON Merge Patch does: keys set to null are removed, objects are merged'
})
/** An id filter that can also ask for none (`null`): the inbox, or top-level todos. */
const IdOrNull = (description: string) => Type.String({ pattern: '^(?:null|[1-9][0-9]{0,9})$', description })

export const TodoSchema = Type.Object(
  {
    id: Type.Integer(),
    title: Type.String(),
    description: Nullable(Type.String()),
    completed: Type.Boolean(),
    order: Nullable(Type.Integer()),
    due_date: Nullable(DateTime()),
    list_id: Nullable(Type.Integer()),
    parent_id: Nullable(Type.Integer()),
    labels: Type.Array(Type.String()),
    priority: Type.Integer(),
    completed_at: Nullable(DateTime({ description: 'When it was completed: set and cleared by the service as `completed` changes; read-only' })),
    metadata: Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true }),
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
  due_date: Type.Optional(Nullable(DueDate)),
  list_id: Type.Optional(Nullable(ListId)),
  parent_id: Type.Optional(Nullable(ParentId)),
  labels: Type.Optional(Labels),
  priority: Type.Optional(Priority),
  metadata: Type.Optional(Metadata)
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
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Case-insensitive substring of title or description' })),
  list_id: Type.Optional(IdOrNull('Only todos in this list; `null`: only the inbox')),
  parent_id: Type.Optional(IdOrNull('Only subtasks of this todo; `null`: only top-level todos')),
  label: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 60 }), { maxItems: 20, description: 'Only todos with any of these labels (repeat the parameter for more)' })),
  priority: Type.Optional(Type.Integer({ minimum: 1, maximum: 4, description: 'Only todos of this priority' }))
}
