import { Type } from '@sinclair/typebox'
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './passwords.js'
import { DateTime, NOT_BLANK } from '../lib/schema.js'

/** What the account routes (accounts.ts) read and answer. */
export const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254, description: 'Unique whatever its case' })
export const Name = Type.String({ minLength: 1, maxLength: 200, pattern: NOT_BLANK })
export const Password = Type.String({
  minLength: PASSWORD_MIN_LENGTH,
  maxLength: PASSWORD_MAX_LENGTH,
  description: `${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`
})

export const User = Type.Object(
  { id: Type.Integer(), email: Type.String(), name: Type.String(), created_at: DateTime(), updated_at: DateTime() },
  { $id: 'User', title: 'User' }
)
export const Token = Type.Object(
  {
    id: Type.Integer(),
    name: Type.String(),
    prefix: Type.String({ description: 'The first characters of the token, to tell tokens apart' }),
    created_at: DateTime(),
    last_used_at: Type.Union([DateTime(), Type.Null()], { description: 'Updated at most once a minute' }),
    expires_at: Type.Union([DateTime(), Type.Null()])
  },
  { $id: 'Token', title: 'Token' }
)
export const NewToken = Type.Object(
  { ...Token.properties, token: Type.String({ description: 'The token: shown this once, never again. Send it as `Authorization: Bearer <token>`.' }) },
  { title: 'NewToken' }
)
