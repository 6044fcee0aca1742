import { Type } from '@sinclair/typebox'
import { DateTime, Nullable, NOT_BLANK } from '../../lib/schema.js'

const Name = Type.String({ maxLength: 200, pattern: NOT_BLANK, description: '1 to 200 characters, not blank; trimmed' })
const Breed = Type.String({ maxLength: 100, pattern: NOT_BLANK, description: 'e.g. bengal; matched case-insensitively by the breed filter' })
const Price = Type.Integer({ minimum: 0, maximum: 2147483647, description: 'In cents: 5000 is 50.00' })

export const CatSchema = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    breed: Nullable(Type.String()),
    price: Type.Integer({ description: 'In cents' }),
    url: Type.String({ format: 'uri', description: 'Absolute URL of this cat' }),
    created_at: DateTime(),
    updated_at: DateTime()
  },
  { $id: 'Cat', title: 'Cat' }
)

export const CatCreateSchema = Type.Object(
  { name: Name, breed: Type.Optional(Nullable(Breed)), price: Price },
  { additionalProperties: false, title: 'CatCreate' }
)

export const CatPatchSchema = Type.Object(
  { name: Type.Optional(Name), breed: Type.Optional(Nullable(Breed)), price: Type.Optional(Price) },
  { additionalProperties: false, title: 'CatPatch', description: 'Fields to change; null clears the breed' }
)

export const catFilters = {
  breed: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Exact breed, ignoring case' })),
  min_price: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647, description: 'Only cats costing at least this (cents)' })),
  max_price: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647, description: 'Only cats costing at most this (cents)' })),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Case-insensitive substring of the name' }))
}
