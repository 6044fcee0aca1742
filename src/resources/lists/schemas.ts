import { Type } from '@sinclair/typebox'
import { DateTime, Int32, Nullable, NOT_BLANK, StringEnum } from '../../lib/schema.js'

/** The palette clients draw lists in; the same words as the database's CHECK (migrations/0007). */
export const COLOURS = ['grey', 'red', 'orange', 'yellow', 'green', 'teal', 'blue', 'purple', 'pink'] as const

const Title = Type.String({ maxLength: 200, pattern: NOT_BLANK, description: '1 to 200 characters, not blank; trimmed' })
const Colour = StringEnum(COLOURS, { description: `One of ${COLOURS.join(', ')}` })
const Position = Int32({ description: 'Where clients show the list among the others; lists without one sort last' })

export const ListSchema = Type.Object(
  {
    id: Type.Integer(),
    title: Type.String(),
    colour: Colour,
    archived: Type.Boolean(),
    position: Nullable(Type.Integer()),
    url: Type.String({ format: 'uri', description: 'Absolute URL of this list' }),
    created_at: DateTime(),
    updated_at: DateTime()
  },
  { $id: 'List', title: 'List' }
)

const writable = {
  title: Title,
  colour: Type.Optional(StringEnum(COLOURS, { description: `One of ${COLOURS.join(', ')}; grey unless given` })),
  archived: Type.Optional(Type.Boolean({ description: 'Archived lists stay, with their todos; clients usually hide them' })),
  position: Type.Optional(Nullable(Position))
}

export const ListCreateSchema = Type.Object(writable, { additionalProperties: false, title: 'ListCreate' })

export const ListPatchSchema = Type.Object(
  { ...writable, title: Type.Optional(Title) },
  { additionalProperties: false, title: 'ListPatch', description: 'Fields to change; null clears the position' }
)

export const listFilters = {
  archived: Type.Optional(Type.Boolean({ description: 'Only archived (true) or active (false) lists' })),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Case-insensitive substring of the title' }))
}
