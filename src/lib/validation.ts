import Ajv, { type ErrorObject, type Options, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'
import { MAX_JSON_BYTES, MAX_JSON_DEPTH } from './schema.js'

const shared: Options = { useDefaults: true, removeAdditional: false, strict: false }

/**
 * JSON bodies are typed strictly: `"true"` is not a boolean and `"5000"` is not a price.
 * Query strings, path parameters and headers are text by nature, so those are coerced.
 * Unknown body fields are rejected (never silently dropped) so a typo is a 400, not a
 * field that quietly did nothing.
 */
const bodyAjv = { first: addFormats.default(new Ajv.default({ ...shared, coerceTypes: false })), all: addFormats.default(new Ajv.default({ ...shared, coerceTypes: false, allErrors: true })) }
const textAjv = { first: addFormats.default(new Ajv.default({ ...shared, coerceTypes: 'array' })), all: addFormats.default(new Ajv.default({ ...shared, coerceTypes: 'array', allErrors: true })) }

/** The instants the API stores and returns (timestamptz(3), written as four-digit years). */
export const FIRST_INSTANT = Date.UTC(1000, 0, 1)
export const LAST_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59, 999)
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/

/**
 * `date-time` as the API can keep it: RFC 3339 with a zone, a real calendar date, no leap
 * second (PostgreSQL would move 23:59:60 to the next minute, possibly the next year), an
 * offset PostgreSQL accepts (up to ±15:59), and an instant, once rounded to the
 * millisecond as it is stored, from 1000-01-01 to 9999-12-31 UTC, so that every date the
 * API returns is one it accepts back.
 */
export function isStorableDateTime(text: string): boolean {
  const match = RFC3339.exec(text)
  if (!match) return false
  const [, year, month, day, hour, minute, second, fraction = '', , sign, offsetHour = '0', offsetMinute = '0'] = match
  const [y, mo, d, h, mi, s] = [year, month, day, hour, minute, second].map(Number) as [number, number, number, number, number, number]
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 || Number(offsetHour) > 15 || Number(offsetMinute) > 59) return false
  if (d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return false
  const offset = sign === undefined ? 0 : (sign === '-' ? -1 : 1) * (Number(offsetHour) * 60 + Number(offsetMinute))
  const millis = fraction ? Math.round(Number(`0${fraction}`) * 1000) : 0
  const instant = Date.UTC(y, mo - 1, d, h, mi, s, millis) - offset * 60_000
  return instant >= FIRST_INSTANT && instant <= LAST_INSTANT
}
for (const ajv of [bodyAjv.first, bodyAjv.all, textAjv.first, textAjv.all]) {
  ajv.addFormat('date-time', { type: 'string', validate: isStorableDateTime })
  ajv.addKeyword({ keyword: MAX_JSON_BYTES, schemaType: 'number', validate: fitsAsJson })
  ajv.addKeyword({ keyword: MAX_JSON_DEPTH, schemaType: 'number', validate: nestsAtMost })
}

/** The MAX_JSON_BYTES keyword: linear in the value, which the body limit already bounds. */
function fitsAsJson(max: number, data: unknown): boolean {
  // JSON.stringify runs out of stack past a few thousand levels, which no value within
  // these limits has (MAX_JSON_DEPTH names the depth).
  let fits: boolean
  try {
    fits = Buffer.byteLength(JSON.stringify(data)) <= max
  } catch {
    fits = false
  }
  fitsAsJson.errors = fits ? undefined : [{ keyword: MAX_JSON_BYTES, params: { limit: max }, message: `must be at most ${max} bytes written as JSON` }]
  return fits
}
fitsAsJson.errors = undefined as Array<Partial<ErrorObject>> | undefined

/** The MAX_JSON_DEPTH keyword: a walk with a stack of its own, linear in the value. */
function nestsAtMost(max: number, data: unknown): boolean {
  const stack: Array<[unknown, number]> = [[data, 1]]
  let fits = true
  while (fits && stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number]
    if (value === null || typeof value !== 'object') continue
    if (depth > max) fits = false
    else for (const child of Object.values(value)) stack.push([child, depth + 1])
  }
  nestsAtMost.errors = fits ? undefined : [{ keyword: MAX_JSON_DEPTH, params: { limit: max }, message: `must nest objects and arrays at most ${max} deep` }]
  return fits
}
nestsAtMost.errors = undefined as Array<Partial<ErrorObject>> | undefined

/** Property names of a part's schema whose values are integers (path ids, `limit`, prices). */
function integerProperties(schema: unknown): string[] {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {}
  return Object.entries(properties)
    .filter(([, property]) => [property.type].flat().includes('integer'))
    .map(([name]) => name)
}

const DECIMAL = /^-?\d+$/

/**
 * Path and query integers are decimal digits: ajv's coercion alone reads `0x10` as 16,
 * `1e3` as 1000 and `1.0` as 1, so each such value is checked as text before it is coerced.
 */
function withDecimalIntegers(validate: ValidateFunction, names: string[]) {
  if (names.length === 0) return validate
  const notDecimal = (value: unknown) => typeof value === 'string' && !DECIMAL.test(value)
  const checked = (data: Record<string, unknown> | null | undefined) => {
    for (const name of names) {
      const value = data?.[name]
      if (Array.isArray(value) ? value.some(notDecimal) : notDecimal(value)) {
        const issue: ErrorObject = { instancePath: `/${name}`, schemaPath: '', keyword: 'type', params: { type: 'integer' }, message: 'must be an integer written in decimal digits' }
        checked.errors = [issue]
        return false
      }
    }
    const valid = validate(data)
    checked.errors = validate.errors
    return valid
  }
  checked.errors = null as ErrorObject[] | null | undefined
  return checked
}

/** The problems one answer lists at most: an answer never grows with what a client sent. */
export const MAX_VALIDATION_ERRORS = 10
/** Past this many values, a request that fails is not checked for every problem: the first one is reported. */
const FULL_CHECK_VALUES = 1000
/** The keyword of the last entry of a validator's errors when more problems exist than it lists. */
export const MORE_ERRORS = 'moreErrors'

/**
 * A validator that stops at the first problem (what a valid request costs, and all an
 * invalid one costs past FULL_CHECK_VALUES values), then, for a small request, looks again
 * for every problem, so that a client can fix them in one go. At most
 * MAX_VALIDATION_ERRORS are kept, followed by a MORE_ERRORS entry when some were cut:
 * 120 000 unknown fields cost one error, not 120 000 (nor an 11 MB answer).
 */
function firstThenAll(ajv: { first: Ajv.default; all: Ajv.default }, schema: object): ValidateFunction {
  const first = ajv.first.compile(schema)
  let all: ValidateFunction | undefined
  const validate = ((data: unknown) => {
    if (first(data)) {
      validate.errors = null
      return true
    }
    let errors = first.errors ?? []
    let cut = false
    if (countValues(data, FULL_CHECK_VALUES) <= FULL_CHECK_VALUES) {
      all ??= ajv.all.compile(schema)
      all(data)
      errors = all.errors ?? errors
    } else cut = true
    if (errors.length > MAX_VALIDATION_ERRORS) {
      errors = errors.slice(0, MAX_VALIDATION_ERRORS)
      cut = true
    }
    validate.errors = cut ? [...errors, { instancePath: '', schemaPath: '', keyword: MORE_ERRORS, params: {}, message: 'more problems were not listed' }] : errors
    return false
  }) as ValidateFunction
  validate.errors = null
  return validate
}

/** How many values `data` holds (objects, arrays and scalars), counting no further than `limit` + 1. */
function countValues(data: unknown, limit: number): number {
  let count = 0
  const stack: unknown[] = [data]
  while (stack.length > 0 && count <= limit) {
    const value = stack.pop()
    count++
    if (value !== null && typeof value === 'object') {
      for (const key in value) {
        stack.push((value as Record<string, unknown>)[key])
        if (stack.length + count > limit) return limit + 1
      }
    }
  }
  return count
}

export const httpValidatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  if (httpPart === 'body') return firstThenAll(bodyAjv, schema as object)
  const validate = firstThenAll(textAjv, schema as object)
  return httpPart === 'params' || httpPart === 'querystring' ? withDecimalIntegers(validate, integerProperties(schema)) : validate
}

/**
 * What anyone may make the service read and parse before it knows who they are: any JSON
 * of at most this size parses in well under a millisecond whatever its shape, while
 * 64 KiB of short keys take 5 ms and 1 MiB a tenth of a second.
 */
export const SMALL_BODY_BYTES = 16 * 1024
