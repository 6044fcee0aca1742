import { Type, type SchemaOptions, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox'

/**
 * A string limited to a fixed set of values, emitted as a plain JSON Schema `enum`.
 * TypeBox's union of literals becomes `anyOf` of `const`s, which gives one error per
 * branch and an unreadable OpenAPI document; `enum` gives one error naming the choices.
 */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: SchemaOptions = {}
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] })
}

/**
 * A primitive that may also be `null` (an optional column a PATCH can clear), written as
 * `type: [T, "null"]`: one validation error instead of an `anyOf` pair, OpenAPI 3.1 as it
 * is meant to be written, and the fast path of the response serialiser.
 */
export function Nullable<T extends TSchema & { type: string }>(schema: T, options: SchemaOptions = {}): TUnsafe<Static<T> | null> {
  return Type.Unsafe<Static<T> | null>({ ...schema, ...options, type: [schema.type, 'null'] })
}

/** A PostgreSQL `integer`: anything outside it is a 400 before it reaches the database. */
export const Int32 = (options: SchemaOptions & { minimum?: number; maximum?: number } = {}) =>
  Type.Integer({ minimum: -2147483648, maximum: 2147483647, ...options })

/** A positive `integer` id in a path; the router coerces the text, the schema bounds it. */
export const IdParams = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: 2147483647, description: 'The numeric id' })
})

export const DateTime = (options: SchemaOptions = {}) => Type.String({ format: 'date-time', ...options })

const FOUR_DIGIT_YEAR = '^[1-9]\\d{3}-'

/**
 * A date-time a client sends: RFC 3339 with a zone, years 1000 to 9999. Without the year
 * bound, 0001-01-01T00:30:00+01:00 is stored as a date BC that no client expects and that
 * does not survive a round trip.
 */
export const DateTimeInput = (options: SchemaOptions = {}) => DateTime({ pattern: FOUR_DIGIT_YEAR, ...options })

/**
 * Text with something besides whitespace, where whitespace is every Unicode White_Space
 * character (JavaScript's `\\S` lets U+0085 NEXT LINE through as if it were text).
 */
export const NOT_BLANK = '\\P{White_Space}'

/**
 * A keyword for the size of a value written as compact JSON, in bytes (lib/validation.ts
 * checks it): how big a client's own data may be, whatever its shape.
 */
export const MAX_JSON_BYTES = 'x-max-json-bytes'
/** A keyword for how deep objects and arrays nest in a value (lib/validation.ts checks it). */
export const MAX_JSON_DEPTH = 'x-max-json-depth'

/** Messages for the patterns above, so a 400 says what is wrong in words. */
export const PATTERN_MESSAGES: Record<string, string> = {
  [NOT_BLANK]: 'must not be blank',
  [FOUR_DIGIT_YEAR]: 'must have a year from 1000 to 9999'
}

/** `todos` → `Todos`, for titles and operation ids. */
export const capitalise = (word: string) => `${word.charAt(0).toUpperCase()}${word.slice(1)}`
